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

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.disco import DiscoInfo

from jabberd.capshash import HASHES, IllFormedInfo, verificationString

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

log = Logger()


class CapsMismatch(Exception):
    """The disco#info behind a caps C{ver} does not hash to that C{ver}."""

    def __init__(self, entity: str, ver: str, computed: str | None) -> None:
        super().__init__(entity, ver, computed)
        self.entity, self.ver, self.computed = entity, ver, computed

    def __str__(self) -> str:
        return f"{self.entity} advertised caps {self.ver} but its disco#info hashes to {self.computed}"


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
