"""
Entity capabilities (XEP-0115): a hash of one's disco#info in presence.

A contact's presence carries C{<c hash='sha-1' node=... ver=.../>}; whoever
has seen that C{ver} before knows the contact's features without asking.
Because the value is a hash of the disco#info, anyone can check it (§5.4):
we ask the contact once, recompute the hash, and only a match is cached
for everyone advertising the same C{ver}. The cache is bounded (LRU), so a
flood of made-up values costs a fixed amount of memory.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.disco import NS_DISCO_INFO, DiscoInfo

if TYPE_CHECKING:
    from jabberd.client.disco import Disco

__all__ = [
    "NS_CAPS",
    "Caps",
    "CapsCache",
    "CapsMismatch",
    "IllFormedInfo",
    "HASHES",
    "verificationString",
]

NS_CAPS = "http://jabber.org/protocol/caps"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_DATA = "jabber:x:data"

#: IANA hash names (as in the 'hash' attribute) -> hashlib names.
HASHES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}

log = Logger()


class IllFormedInfo(ValueError):
    """A disco#info result that §5.4 says must not be hashed (duplicates)."""


class CapsMismatch(Exception):
    """The disco#info behind a caps C{ver} does not hash to that C{ver}."""

    def __init__(self, entity: str, ver: str, computed: str | None) -> None:
        super().__init__(entity, ver, computed)
        self.entity, self.ver, self.computed = entity, ver, computed

    def __str__(self) -> str:
        return f"{self.entity} advertised caps {self.ver} but its disco#info hashes to {self.computed}"


def _octets(s: str) -> bytes:
    # XEP-0115 §5.1: "i;octet" collation, i.e. compare UTF-8 bytes.
    return s.encode("utf-8")


def verificationString(query: domish.Element, algorithm: str = "sha-1") -> str:
    """
    The XEP-0115 §5.1 verification string of a disco#info C{<query/>}.

    Identities "category/type/lang/name<", sorted; features "<", sorted;
    then each extended form (XEP-0128) with a hidden FORM_TYPE, sorted by
    FORM_TYPE: the FORM_TYPE, then each other field's var and its sorted
    values. Forms without a hidden FORM_TYPE are ignored (§5.4 3.6).

    @raise IllFormedInfo: duplicate identities, features or FORM_TYPEs,
        or a FORM_TYPE with differing values (§5.4 3.3-3.5).
    @raise ValueError: an unknown hash name.
    """
    if algorithm not in HASHES:
        raise ValueError(f"unsupported caps hash {algorithm!r}")
    identities: list[str] = []
    features: list[str] = []
    forms: dict[str, list[tuple[str, list[str]]]] = {}
    for child in query.elements():
        if child.uri == NS_DISCO_INFO and child.name == "identity":
            identities.append(
                "/".join(
                    (
                        child.getAttribute("category", ""),
                        child.getAttribute("type", ""),
                        child.getAttribute((NS_XML, "lang"), ""),
                        child.getAttribute("name", ""),
                    )
                )
            )
        elif child.uri == NS_DISCO_INFO and child.name == "feature":
            features.append(child.getAttribute("var", ""))
        elif child.uri == NS_DATA and child.name == "x":
            formType, fields = _form(child)
            if formType is None:
                continue
            if formType in forms:
                raise IllFormedInfo(f"two forms with FORM_TYPE {formType}")
            forms[formType] = fields
    if len(set(identities)) != len(identities):
        raise IllFormedInfo("duplicate identity")
    if len(set(features)) != len(features):
        raise IllFormedInfo("duplicate feature")

    parts = [i + "<" for i in sorted(identities, key=_octets)]
    parts += [f + "<" for f in sorted(features, key=_octets)]
    for formType in sorted(forms, key=_octets):
        parts.append(formType + "<")
        for var, values in sorted(forms[formType], key=lambda f: _octets(f[0])):
            parts.append(var + "<")
            parts += [v + "<" for v in sorted(values, key=_octets)]
    digest = hashlib.new(HASHES[algorithm], "".join(parts).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def _form(x: domish.Element) -> tuple[str | None, list[tuple[str, list[str]]]]:
    """(FORM_TYPE or None when it has no hidden one, [(var, values)] of the other fields)."""
    formType: str | None = None
    fields: list[tuple[str, list[str]]] = []
    for field in x.elements(NS_DATA, "field"):
        var = field.getAttribute("var", "")
        values = [str(v) for v in field.elements(NS_DATA, "value")]
        if var == "FORM_TYPE":
            if field.getAttribute("type") != "hidden" or not values:
                return None, []
            if len(set(values)) > 1:
                raise IllFormedInfo("FORM_TYPE with differing values")
            formType = values[0]
        else:
            fields.append((var, values))
    return formType, fields


class CapsCache:
    """
    Verified (hash, ver) -> DiscoInfo, least recently used dropped first.

    Only verified entries go in: an unverifiable C{ver} is never shared
    between JIDs (§5.4).
    """

    def __init__(self, maxEntries: int = 1000) -> None:
        self.maxEntries = maxEntries
        self._entries: OrderedDict[tuple[str, str], DiscoInfo] = OrderedDict()

    def get(self, algorithm: str, ver: str) -> DiscoInfo | None:
        info = self._entries.get((algorithm, ver))
        if info is not None:
            self._entries.move_to_end((algorithm, ver))
        return info

    def put(self, algorithm: str, ver: str, info: DiscoInfo) -> None:
        self._entries[(algorithm, ver)] = info
        self._entries.move_to_end((algorithm, ver))
        while len(self._entries) > self.maxEntries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entries


class Caps:
    """
    Our own caps (the C{<c/>} put into presence) and the verified caps of others.

    @param node: our software's caps node (a URI naming the application).
    @param autoDiscover: look up the disco#info behind every new C{ver}
        seen in presence; the result lands in the cache.
    """

    def __init__(self, disco: Disco, node: str, maxEntries: int = 1000, autoDiscover: bool = True) -> None:
        self.disco = disco
        self.node = node
        self.cache = CapsCache(maxEntries)
        self.autoDiscover = autoDiscover
        #: full JID -> (hash, ver) last advertised, bounded like the cache
        self._advertised: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._pending: dict[tuple[str, str], list[defer.Deferred]] = {}

    # -- ours ------------------------------------------------------------------

    @property
    def ver(self) -> str:
        """Our verification string (SHA-1, the one every client understands)."""
        return verificationString(self.disco.ownInfo().toElement(), "sha-1")

    def element(self) -> domish.Element:
        """The C{<c/>} for our presence."""
        c = domish.Element((NS_CAPS, "c"))
        c["hash"] = "sha-1"
        c["node"] = self.node
        c["ver"] = self.ver
        return c

    # -- theirs ----------------------------------------------------------------

    def advertised(self, entity: JID, c: domish.Element) -> defer.Deferred | None:
        """
        Note the C{<c/>} of a presence from C{entity}; look it up if new.

        Returns the lookup's Deferred when one was started (for tests), else None.
        """
        algorithm, ver, node = c.getAttribute("hash"), c.getAttribute("ver"), c.getAttribute("node", "")
        if not algorithm or not ver:
            return None  # legacy (pre-1.5) caps: nothing we can verify
        self._advertised[entity.full()] = (algorithm, ver)
        self._advertised.move_to_end(entity.full())
        while len(self._advertised) > self.cache.maxEntries:
            self._advertised.popitem(last=False)
        if algorithm == "sha-1" and ver == self.ver:
            # Our own caps (our presence reflected, or another instance of
            # this software): no need to ask anyone.
            self.cache.put(algorithm, ver, self.disco.ownInfo())
            return None
        if not self.autoDiscover or (algorithm, ver) in self.cache or algorithm not in HASHES:
            return None
        d = self.lookup(entity, node, ver, algorithm)
        d.addErrback(lambda f: log.debug("caps lookup for {entity} failed: {f}", entity=entity.full(), f=f.value))
        return d

    def infoFor(self, entity: JID) -> DiscoInfo | None:
        """The verified disco#info of C{entity} from its last caps, if known."""
        key = self._advertised.get(entity.full())
        return self.cache.get(*key) if key else None

    def lookup(self, entity: JID, node: str, ver: str, algorithm: str = "sha-1") -> defer.Deferred:
        """
        The disco#info behind C{ver}: from the cache, or asked of C{entity}
        at C{node#ver} and verified (§5.4) before it is cached.

        Fires with a L{DiscoInfo}; fails with L{CapsMismatch} when the
        answer does not hash to C{ver} (or is ill-formed), or with the
        StanzaError of the query.
        """
        if algorithm not in HASHES:
            return defer.fail(ValueError(f"unsupported caps hash {algorithm!r}"))
        cached = self.cache.get(algorithm, ver)
        if cached is not None:
            return defer.succeed(cached)
        key = (algorithm, ver)
        mine: defer.Deferred = defer.Deferred()
        if key in self._pending:
            # One query per ver, however many contacts advertise it at once.
            self._pending[key].append(mine)
            return mine
        self._pending[key] = [mine]

        def verify(query: domish.Element) -> DiscoInfo:
            try:
                computed = verificationString(query, algorithm)
            except IllFormedInfo:
                computed = None
            if computed != ver:
                raise CapsMismatch(entity.full(), ver, computed)
            info = DiscoInfo.fromElement(query)
            self.cache.put(algorithm, ver, info)
            return info

        d = self.disco.infoElement(entity, f"{node}#{ver}" if node else "")
        d.addCallback(verify)
        d.addBoth(self._done, key)
        return mine

    def _done(self, result: Any, key: tuple[str, str]) -> None:
        for waiter in self._pending.pop(key, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
