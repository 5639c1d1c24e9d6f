"""
Entity capabilities (XEP-0115) on the server.

The server reads the C{<c/>} of every broadcast presence its clients send
(and, for the PEP module, of presence remote contacts send to its
accounts).  A verification string the server has not seen is looked up
once: in memory, then in the store shared by every account, and only then
by asking one entity that advertised it for C{disco#info} of
C{node#ver}.  The answer is trusted only if it hashes to the advertised
string (§5.4); a mismatch, an ill-formed answer (duplicate identities,
features or form types), an error or no answer within
L{QUERY_TIMEOUT} seconds is neither cached nor used, and the next entity
waiting for the same string is asked in turn.  Verified answers go to a
bounded in-memory cache (least recently used dropped first, so a flood of
made-up strings costs a fixed amount of memory) and to the store.  Hashes
other than those of L{HASHES}, and the legacy format without a C{hash}
attribute, cannot be verified and are not trusted.

From the features of each session the module derives its notification
interests: the nodes it advertises as C{<node>+notify} (XEP-0163 §4.2,
XEP-0060 §9.2).  A change fires L{CAPS_CHANGED}.

The server's own capabilities are advertised in the stream features after
authentication (§6.3), hashed from exactly what disco#info of the domain
answers, and C{disco#info} of C{node#ver} is answered with the same.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.capshash import HASHES, IllFormedInfo, verificationString
from jabberd.inflight import InFlight
from jabberd.module import Module
from jabberd.modules.disco import HOST, NS_DISCO_INFO, DiscoRequest, discoInfo
from jabberd.modules.roster import parseStanza
from jabberd.store.caps import get_caps_txn, set_caps_txn
from jabberd.store.database import logFailure
from jabberd.xmlstream import NS_CLIENT

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession

NS_CAPS = "http://jabber.org/protocol/caps"

#: The node of the server's own capabilities: the URI of the software (§4).
CAPS_NODE = "https://pypi.org/project/jabberd/server"

#: Verified verification strings kept in memory (the store keeps them all).
CACHE_SIZE = 10000
#: Seconds an entity has to answer the disco#info query.
QUERY_TIMEOUT = 30.0
#: Entities waiting for one verification string at once; more are not asked for.
MAX_WAITERS = 1000
#: Verification strings being looked up at once; more are not trusted until some finish.
MAX_LOOKUPS = 1000

#: Fired (notify) when the notification interests of a local session change:
#: C{(session, previous)}, C{previous} the frozenset of nodes it had before.
CAPS_CHANGED = B.event("caps-changed")

_NOTIFY = "+notify"


class CapsKey(NamedTuple):
    """What a C{<c/>} says: the hash name, the verification string and the software's node."""

    algorithm: str
    ver: str
    node: str


def capsOf(stanza: domish.Element) -> CapsKey | None:
    """The C{<c/>} of a presence, or None (none, or the legacy format without 'hash')."""
    for c in stanza.elements(NS_CAPS, "c"):
        algorithm, ver = c.getAttribute("hash"), c.getAttribute("ver")
        if not algorithm or not ver:
            return None
        return CapsKey(algorithm, ver, c.getAttribute("node", ""))
    return None


def featuresOf(query: domish.Element) -> frozenset[str]:
    """The feature vars of a disco#info C{<query/>}."""
    return frozenset(f.getAttribute("var", "") for f in query.elements(NS_DISCO_INFO, "feature"))


def interestsOf(features: frozenset[str] | None) -> frozenset[str]:
    """The nodes C{features} ask notifications for (C{node+notify})."""
    if not features:
        return frozenset()
    return frozenset(f[: -len(_NOTIFY)] for f in features if f.endswith(_NOTIFY) and len(f) > len(_NOTIFY))


class SessionCaps:
    """What the server knows of one session's capabilities (in C{session.data["caps"]})."""

    __slots__ = ("key", "features", "interests")

    def __init__(self, key: CapsKey, interests: frozenset[str]) -> None:
        self.key = key
        self.features: frozenset[str] | None = None  # None until verified (or when it failed)
        self.interests = interests  # kept from the previous caps until these are known


class _Lookup:
    """One verification string being looked up, and who waits for it."""

    __slots__ = ("key", "waiters", "asked", "queryId", "entity", "off", "timer")

    def __init__(self, key: CapsKey) -> None:
        self.key = key
        # (entity full JID, address to ask from, the entity's <c node>, Deferred)
        self.waiters: list[tuple[str, str, str, defer.Deferred]] = []
        self.asked: set[str] = set()
        self.queryId = ""
        self.entity = ""
        self.off: list[Any] = []
        self.timer: Any = None


class CapsModule(Module):
    """XEP-0115 for the server: verified caps of entities, interests of sessions, the server's own caps."""

    name = "caps"
    features = (NS_CAPS,)

    def __init__(self, server) -> None:
        super().__init__(server)
        self._cache: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
        self._lookups: dict[tuple[str, str], _Lookup] = {}
        # host -> (ver, the disco#info <query/> it hashes)
        self._own: dict[str, tuple[str, domish.Element]] = {}
        self._work = InFlight()
        #: Seconds an entity has to answer (an attribute so a test can shorten it).
        self.queryTimeout = QUERY_TIMEOUT

    def hooks(self):
        return [
            # High: read before the presence module broadcasts, never claim it.
            (B.presence("outbound"), self.outbound, B.PRIORITY_HIGH),
            (B.STREAM_FEATURES, self.streamFeatures, B.PRIORITY_NORMAL),
            (discoInfo(HOST), self.hostInfo, B.PRIORITY_NORMAL),
            (B.SERVER_STARTED, self.serverStarted, B.PRIORITY_NORMAL),
        ]

    def stop(self):
        for lookup in list(self._lookups.values()):
            self._finish(lookup, None)
        return self.whenIdle()

    def _store(self, desc: str, fn: Any, *args: Any) -> defer.Deferred:
        return self._work.track(self.server.store.runInteraction(desc, fn, *args))

    def whenIdle(self) -> defer.Deferred:
        """Fires once no store read or write of the caps cache is in progress (tests, shutdown)."""
        return self._work.whenIdle()

    # -- sessions -------------------------------------------------------------

    @staticmethod
    def interests(session: ClientSession) -> frozenset[str]:
        """The nodes C{session} wants notifications for (empty until its caps are verified)."""
        state = session.data.get("caps")
        return state.interests if state is not None else frozenset()

    @staticmethod
    def sessionFeatures(session: ClientSession) -> frozenset[str] | None:
        """The verified features of C{session}, or None."""
        state = session.data.get("caps")
        return state.features if state is not None else None

    def outbound(self, stanza: domish.Element, session: ClientSession) -> bool:
        """A client's broadcast presence: note a new C{<c/>} and look it up."""
        if stanza.getAttribute("type") is not None:
            return False
        key = capsOf(stanza)
        if key is None:
            return False  # caps left out of an update: what was known stays
        old = session.data.get("caps")
        if old is not None and old.key == key:
            return False
        state = SessionCaps(key, old.interests if old is not None else frozenset())
        session.data["caps"] = state
        d = self.lookup(key, session.jid.full(), session.host)  # type: ignore[union-attr]
        d.addCallback(self._resolved, session, state)
        d.addErrback(lambda f: logFailure(self.log, f, "caps lookup failed"))
        return False

    def _resolved(self, features: frozenset[str] | None, session: ClientSession, state: SessionCaps) -> None:
        if session.data.get("caps") is not state:
            return  # newer caps arrived meanwhile
        state.features = features
        previous = state.interests
        state.interests = interestsOf(features)
        if state.interests != previous:
            self.server.bus.notify(CAPS_CHANGED, session, previous)

    # -- looking a verification string up ----------------------------------------------

    def known(self, key: CapsKey) -> frozenset[str] | None:
        """The features behind C{key} if they are verified and in memory (no I/O)."""
        features = self._cache.get((key.algorithm, key.ver))
        if features is not None:
            self._cache.move_to_end((key.algorithm, key.ver))
        return features

    def lookup(self, key: CapsKey, entity: str, askFrom: str) -> defer.Deferred:
        """
        The verified features behind C{key}, which C{entity} (a full JID)
        advertised: from memory (fires at once), the store, or by asking
        C{entity} from the address C{askFrom}; None when they cannot be
        trusted.
        """
        if key.algorithm not in HASHES:
            return defer.succeed(None)
        features = self.known(key)
        if features is not None:
            return defer.succeed(features)
        d: defer.Deferred = defer.Deferred()
        k = (key.algorithm, key.ver)
        lookup = self._lookups.get(k)
        if lookup is not None:
            if len(lookup.waiters) >= MAX_WAITERS:
                return defer.succeed(None)
            lookup.waiters.append((entity, askFrom, key.node, d))
            return d
        if len(self._lookups) >= MAX_LOOKUPS:
            return defer.succeed(None)  # a flood of made-up strings: not trusted, not asked
        lookup = self._lookups[k] = _Lookup(key)
        lookup.waiters.append((entity, askFrom, key.node, d))
        stored = self._store("get_caps", get_caps_txn, key.algorithm, key.ver)
        stored.addCallback(self._fromStore, lookup)
        stored.addErrback(self._storeFailed, lookup)
        return d

    def _fromStore(self, xml: str | None, lookup: _Lookup) -> None:
        if self._lookups.get((lookup.key.algorithm, lookup.key.ver)) is not lookup:
            return
        if xml is not None:
            query = parseStanza(xml)
            if query is not None:
                self._finish(lookup, featuresOf(query))
                return
        self._askNext(lookup)

    def _storeFailed(self, failure, lookup: _Lookup) -> None:
        logFailure(self.log, failure, "reading the caps cache failed")
        if self._lookups.get((lookup.key.algorithm, lookup.key.ver)) is lookup:
            self._askNext(lookup)

    def _askNext(self, lookup: _Lookup) -> None:
        """Ask the first waiting entity not asked yet; nobody left: give up."""
        for entity, askFrom, node, _ in lookup.waiters:
            if entity not in lookup.asked:
                self._ask(lookup, entity, askFrom, node)
                return
        self._finish(lookup, None)

    def _ask(self, lookup: _Lookup, entity: str, askFrom: str, node: str) -> None:
        lookup.asked.add(entity)
        lookup.entity = entity
        lookup.queryId = queryId = "caps-" + secrets.token_hex(8)
        try:
            replyTo = {J.parse(askFrom).userhost()}
            asked = J.parse(entity)
        except J.InvalidJID:
            self._failed(lookup)
            return
        if asked.host in self.server.hosts:
            # A client may leave 'to' out of its answer: it comes to its account.
            replyTo.add(asked.userhost())

        def answered(iq: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
            if iq.getAttribute("id") != queryId or fromJID is None or fromJID.full() != entity:
                return False
            self._answer(lookup, iq)
            return True

        lookup.off = [self.server.bus.on(("iq-response", address), answered) for address in sorted(replyTo)]
        lookup.timer = self.server.reactor.callLater(self.queryTimeout, self._failed, lookup)
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "get"
        iq["id"] = queryId
        iq["from"] = askFrom
        iq["to"] = entity
        iq.addElement((NS_DISCO_INFO, "query"))["node"] = f"{node}#{lookup.key.ver}"
        self.server.router.route(iq)

    def _stopAsking(self, lookup: _Lookup) -> None:
        for off in lookup.off:
            off()
        lookup.off = []
        if lookup.timer is not None and lookup.timer.active():
            lookup.timer.cancel()
        lookup.timer = None

    def _answer(self, lookup: _Lookup, iq: domish.Element) -> None:
        self._stopAsking(lookup)
        key = lookup.key
        query = next(iq.elements(NS_DISCO_INFO, "query"), None) if iq.getAttribute("type") == "result" else None
        if query is not None:
            try:
                verified = verificationString(query, key.algorithm) == key.ver
            except IllFormedInfo:
                verified = False
            if verified:
                features = featuresOf(query)
                when = datetime.fromtimestamp(self.server.reactor.seconds(), timezone.utc)
                d = self._store("set_caps", set_caps_txn, key.algorithm, key.ver, query.toXml(), when)
                d.addErrback(lambda f: logFailure(self.log, f, "storing verified caps failed"))
                self._finish(lookup, features)
                return
            self.log.info(
                "{entity} advertised caps {ver} but its disco#info does not hash to it: not trusted",
                entity=lookup.entity,
                ver=key.ver,
            )
        self._failed(lookup)

    def _failed(self, lookup: _Lookup) -> None:
        """The asked entity did not give a verifiable answer: it gets nothing; ask the next one."""
        self._stopAsking(lookup)
        entity = lookup.entity
        keep = []
        for waiter in lookup.waiters:
            if waiter[0] == entity:
                waiter[3].callback(None)
            else:
                keep.append(waiter)
        lookup.waiters = keep
        self._askNext(lookup)

    def _finish(self, lookup: _Lookup, features: frozenset[str] | None) -> None:
        self._stopAsking(lookup)
        k = (lookup.key.algorithm, lookup.key.ver)
        if self._lookups.get(k) is lookup:
            del self._lookups[k]
        if features is not None:
            self._cache[k] = features
            self._cache.move_to_end(k)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        waiters, lookup.waiters = lookup.waiters, []
        for _, _, _, d in waiters:
            d.callback(features)

    # -- the server's own capabilities -------------------------------------------------

    def serverStarted(self) -> None:
        """Hash each hosted domain's disco#info once every module is loaded."""
        disco = self.server.modules.modules.get("disco")
        if disco is None:
            return
        for host in sorted(self.server.hosts):
            d = disco.hostInfoQuery(host)  # type: ignore[attr-defined]
            d.addCallback(self._ownInfo, host)
            d.addErrback(lambda f: logFailure(self.log, f, "hashing the server's disco#info failed"))

    def _ownInfo(self, query: domish.Element, host: str) -> None:
        try:
            ver = verificationString(query, "sha-1")
        except IllFormedInfo:
            self.log.error("the disco#info of {host} has duplicates: no caps advertised", host=host)
            return
        self._own[host] = (ver, query)

    def ownCaps(self, host: str) -> str | None:
        """The verification string of C{host}'s disco#info (None until computed)."""
        own = self._own.get(host)
        return own[0] if own is not None else None

    def streamFeatures(self, session: ClientSession, features: domish.Element) -> None:
        """§6.3: the server's caps in the stream features after authentication."""
        own = self._own.get(session.host)
        if own is None:
            return
        c = features.addElement((NS_CAPS, "c"))
        c["hash"] = "sha-1"
        c["node"] = CAPS_NODE
        c["ver"] = own[0]

    def hostInfo(self, request: DiscoRequest) -> None:
        """disco#info of C{node#ver} for the server's own caps: the same answer as without a node."""
        own = self._own.get(request.toJID.host)
        if own is None or request.node != f"{CAPS_NODE}#{own[0]}":
            return
        for child in own[1].elements():
            request.query.addChild(child)
        request.found = True
