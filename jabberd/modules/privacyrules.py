"""
The privacy runtime: the one store, cache and enforcement point that
privacy lists (XEP-0016, L{jabberd.modules.privacy}) and the blocking
command (XEP-0191, L{jabberd.modules.blocking}) share.  XEP-0191 §5: the
blocklist is the default privacy list seen through the simpler protocol,
so there is one set of lists per account and one rule engine
(L{jabberd.privacy}).

Either protocol module may run alone; both take the one L{PrivacyRules}
of their server with L{PrivacyRules.acquire} and give it back with
L{PrivacyRules.release}.  Its hooks are registered while at least one of
them runs.

What is kept in memory, and when the store is read
==================================================

- at startup, the set of accounts that have a default list at all
  (L{accounts_with_default_txn}): traffic to and from every other account
  with no active list is decided by one set lookup;
- an account's lists (L{PrivacyAccount}) are read once, when they are
  first needed: at login when it has a default list, at its first
  privacy or blocking request, or when a stanza reaches an offline account
  that has a default list.  They stay while the account has sessions or
  work queued; afterwards they go to a bounded LRU cache
  (L{OFFLINE_CACHE} accounts), from which traffic for offline accounts
  is decided.  Every change goes through this runtime, which writes it
  and updates memory, so the cache is never stale;
- a list is compiled (L{CompiledList}) when it is first used after a
  change, and shared by the default and every session that made it
  active (C{session.data["privacy"]} holds C{[name, compiled]}).

A check is a few dictionary lookups; a stanza waits only when its
account's lists are still loading, or when the list in force has group or
subscription items and the account's roster is not in memory (an offline
account): then the stanza is held, the lists or roster are loaded
(L{RosterModule.run}), and it is decided and routed again, in arrival
order with the account's other held stanzas and privacy requests.

Which list applies (XEP-0016 §2.2)
==================================

- a stanza a session sends, or one addressed to a session's full JID: the
  session's active list, else the account's default list;
- a stanza to the bare JID (or to a full JID without a session), or one
  the server sends for the account from its bare JID: the default list,
  except when some of the account's sessions have an active list: then a
  presence notification reaches each available resource whose own list
  allows it, and a chat, normal or headline message is delivered by the
  RFC 6121 §8.5.2 rules among the resources whose lists allow it (it
  bounces only if none does);
- a subscription stanza a client sends (subscribe, subscribed, unsubscribe,
  unsubscribed): the sending session's list, checked at
  C{presence("directed")} before the roster module changes any state for
  it (XEP-0016 rule 4); the copy the roster module then routes from the
  bare JID is not checked again;
- never between the account's own resources, nor between the account and
  its own server's domain (XEP-0016 §2.1 note: a user's resources always
  reach each other; the server must keep answering its own user).

What happens to a denied stanza (XEP-0016 §2.14, XEP-0191 §3.3)
=================================================================

- received presence of any type (notifications, subscriptions, probes):
  dropped, never answered;
- a received message: service-unavailable, unless it is an error;
- a received iq get or set: service-unavailable; results and errors are
  dropped;
- a sent message or iq get/set: not-acceptable to the sender, with
  C{<blocked xmlns='urn:xmpp:blocking:errors'/>} when the item that
  denied it is in the blocklist (a "jid, deny, everything" item of the
  default list);
- sent presence of any type, and sent errors and iq results: dropped.
  An error for every presence copy a broadcast makes would flood the
  user's own client; a presence error would reach all of its resources.

Presence when a list changes
============================

When the list in force for an available session changes (a list edited,
a new active or default list, a block or unblock), each contact whose
presence subscription or directed presence lets it see the session is
compared under the old and new lists: one that stops being allowed
presence-out gets unavailable presence from the session, one that starts
being allowed gets the session's current presence (XEP-0016 §2.12,
XEP-0191 §3.3 and §3.4).  Likewise for presence-in (XEP-0016 §2.11): a
contact whose presence the session stops receiving is shown to the
session as unavailable, and one it starts receiving again is probed.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any, Callable, Mapping
from weakref import WeakKeyDictionary

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd import router as R
from jabberd.module import Module
from jabberd.modules.messages import messageType, stripForgedDelay
from jabberd.modules.roster import SUBSCRIPTION_TYPES, copyStanza, presenceElement
from jabberd.privacy import (
    K_OTHER,
    K_PRESENCE_IN,
    K_PRESENCE_OUT,
    CompiledList,
    PrivacyItem,
    inboundKind,
    isNotification,
    outboundKind,
)
from jabberd.store.database import StoreUnavailable, logFailure
from jabberd.store.privacy import PrivacyData, accounts_with_default_txn, apply_privacy_changes_txn, load_privacy_txn
from jabberd.xmlstream import errorReply

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"

#: Offline accounts whose lists stay in memory after use (least recently used go first).
OFFLINE_CACHE = 10000

#: Fired (notify) when the definition of a list changed or the list was
#: removed: C{(bareJID, name)}.  The privacy module pushes the name.
LIST_CHANGED = B.event("privacy-list-changed")
#: Fired (notify) when the blocklist (the blocked JIDs of the default list)
#: changed: C{(bareJID, before, after)}, lists of JID strings.
BLOCKLIST_CHANGED = B.event("privacy-blocklist-changed")

_IN, _OUT = "in", "out"
_HELD = "held"
_NEED_ROSTER = object()  # a verdict: the roster is needed and not in memory
_CACHED = object()  # a roster argument: read the roster module's memory


class PrivacyError(Exception):
    """A request the rules refuse: answered with C{condition} (and C{text})."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text


class PrivacyAccount:
    """An account's privacy lists in memory, and the work waiting for them."""

    __slots__ = (
        "bare",
        "host",
        "username",
        "lists",
        "defaultName",
        "default",
        "compiled",
        "loaded",
        "exists",
        "queue",
        "running",
        "held",
        "actives",
    )

    def __init__(self, bare: str) -> None:
        self.bare = bare
        self.username, _, self.host = bare.partition("@")
        self.lists: dict[str, tuple[PrivacyItem, ...]] = {}
        self.defaultName: str | None = None
        self.default: CompiledList | None = None  # the default list, compiled
        self.compiled: dict[str, CompiledList] = {}
        self.loaded = False
        self.exists = False
        # Work in arrival order: ("job", fn, Deferred) and (_HELD, edge, stanza, fromJID, toJID).
        self.queue: deque[tuple] = deque()
        self.running = False
        self.held = 0  # held stanzas in the queue
        self.actives = 0  # sessions with an active list

    def __repr__(self) -> str:
        return f"<privacy {self.bare} lists={sorted(self.lists)} default={self.defaultName!r}>"

    def compiledList(self, name: str) -> CompiledList:
        """The compiled form of the list C{name} (compiled on first use after a change)."""
        compiled = self.compiled.get(name)
        if compiled is None:
            compiled = self.compiled[name] = CompiledList(name, self.lists[name])
        return compiled

    def blocklist(self) -> list[str]:
        """The blocked JIDs (XEP-0191): those of the default list."""
        return self.default.blockedJIDs() if self.default is not None else []


def activeName(session: ClientSession) -> str | None:
    """The name of the session's active list, if it has one."""
    active = session.data.get("privacy")
    return active[0] if active else None


class PrivacyRules:
    """The privacy runtime of one server; see the module docstring."""

    log = Logger()
    _instances: WeakKeyDictionary = WeakKeyDictionary()

    # -- sharing between the two protocol modules -------------------------------

    @classmethod
    def acquire(cls, server: Any) -> PrivacyRules:
        """The runtime of C{server}, started on first use; call L{release} when done."""
        rules = cls._instances.get(server)
        if rules is None:
            rules = cls._instances[server] = cls(server)
        rules._users += 1
        if rules._users == 1:
            rules._start()
        return rules

    def release(self) -> defer.Deferred:
        """Give the runtime back; the last user stops it, once its writes are done."""
        self._users -= 1
        if self._users > 0:
            return defer.succeed(None)
        for off in self._offs:
            off()
        self._offs = []
        if self._instances.get(self.server) is self:
            del self._instances[self.server]
        return self.whenIdle()

    def __init__(self, server: Any) -> None:
        self.server = server
        self._users = 0
        self._offs: list[Callable[[], None]] = []
        self._online: dict[str, PrivacyAccount] = {}
        self._cache: OrderedDict[str, PrivacyAccount] = OrderedDict()
        self._withDefault: set[str] = set()
        self._started: defer.Deferred | None = None
        self._busy = 0
        self._idleWaiters: list[defer.Deferred] = []
        # The stanza being routed again after a check: the filters let it by.
        self._skipOut: domish.Element | None = None
        self._skipIn: domish.Element | None = None
        self._skipDirected: domish.Element | None = None
        self._cachedRoster: Callable[[str], Mapping[str, Any] | None] | None = None

    def _start(self) -> None:
        bus = self.server.bus
        self._offs = [
            bus.on(R.OUTBOUND_FILTER, self.outbound, B.PRIORITY_FIRST),
            bus.on(R.INBOUND_FILTER, self.inbound, B.PRIORITY_FIRST),
            bus.on(B.presence("directed"), self.directed, B.PRIORITY_FIRST),
            bus.on(B.SESSION_BOUND, self.sessionBound, B.PRIORITY_HIGH),
            bus.on(B.SESSION_ENDED, self.sessionEnded, B.PRIORITY_LOW),
            bus.on(B.ACCOUNT_CREATED, self.accountCreated, B.PRIORITY_NORMAL),
            bus.on(B.ACCOUNT_DELETED, self.accountDeleted, B.PRIORITY_NORMAL),
        ]
        d = self.server.store.runInteraction("privacy_defaults", accounts_with_default_txn)

        def loaded(bares: list[str]) -> None:
            self._withDefault.update(bares)

        def failed(failure: Failure) -> None:
            logFailure(self.log, failure, "reading which accounts have a default privacy list failed")

        d.addCallbacks(loaded, failed)
        self._started = d

    def whenStarted(self) -> defer.Deferred:
        """Fires once the runtime knows which accounts have a default list."""
        assert self._started is not None
        d: defer.Deferred = defer.Deferred()
        self._started.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def whenIdle(self) -> defer.Deferred:
        """Fires once no list is loading or being written and nothing is held (tests, shutdown)."""
        if self._busy == 0:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idleWaiters.append(d)
        return d

    def _done(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._idleWaiters:
            waiters, self._idleWaiters = self._idleWaiters, []
            for d in waiters:
                d.callback(None)

    # -- limits ----------------------------------------------------------------------

    @property
    def maxLists(self) -> int:
        return self.server.config.limits.max_privacy_lists

    @property
    def maxItems(self) -> int:
        return self.server.config.limits.max_privacy_items

    # -- accounts in memory ----------------------------------------------------------

    def account(self, bare: str) -> PrivacyAccount | None:
        """The account's lists if they are in memory (loaded or loading)."""
        acct = self._online.get(bare)
        if acct is None:
            acct = self._cache.get(bare)
        return acct

    def hasDefault(self, bare: str) -> bool:
        """Whether the account has a default list (known without reading the store)."""
        return bare in self._withDefault

    def _lookup(self, bare: str) -> PrivacyAccount | None:
        acct = self._online.get(bare)
        if acct is None:
            acct = self._cache.get(bare)
            if acct is not None:
                self._cache.move_to_end(bare)
        return acct

    def _load(self, bare: str) -> PrivacyAccount:
        """Start reading an account's lists; the account stays pinned in memory until idle."""
        acct = PrivacyAccount(bare)
        self._cache.pop(bare, None)
        self._online[bare] = acct
        self._busy += 1
        d = self.server.store.runInteraction("load_privacy", load_privacy_txn, acct.host, acct.username)

        def loaded(data: PrivacyData | None) -> None:
            self._fill(acct, data)
            self._run(acct)

        def failed(failure: Failure) -> None:
            logFailure(self.log, failure, "loading the privacy lists of {bare} failed", bare=bare)
            if self._online.get(bare) is acct:
                del self._online[bare]
            queue, acct.queue = acct.queue, deque()
            for entry in queue:
                if entry[0] == _HELD:
                    # Fail closed: what the lists might deny is not delivered.
                    self._bounce(entry[2], "internal-server-error", errorType="wait")
                else:
                    entry[2].errback(failure)
                self._done()

        d.addCallbacks(loaded, failed)
        d.addBoth(lambda _: self._done())
        return acct

    def _fill(self, acct: PrivacyAccount, data: PrivacyData | None) -> None:
        acct.exists = data is not None
        if data is not None:
            acct.lists = dict(data.lists)
            acct.defaultName = data.default if data.default in acct.lists else None
        acct.default = acct.compiledList(acct.defaultName) if acct.defaultName is not None else None
        if acct.defaultName is not None:
            self._withDefault.add(acct.bare)
        else:
            self._withDefault.discard(acct.bare)
        acct.loaded = True

    def preload(self, bare: str, data: PrivacyData) -> PrivacyAccount:
        """Put an account's lists in memory as if just read from the store (benchmarks, tools)."""
        acct = PrivacyAccount(bare)
        self._fill(acct, data)
        self._cache.pop(bare, None)
        self._online[bare] = acct
        return acct

    def _settle(self, acct: PrivacyAccount) -> None:
        """Unpin an idle account without sessions: into the LRU cache."""
        if acct.queue or acct.running or not acct.loaded:
            return
        if self.server.sessions.resources(acct.bare):
            return
        if self._online.get(acct.bare) is acct:
            del self._online[acct.bare]
            self._cache[acct.bare] = acct
            while len(self._cache) > OFFLINE_CACHE:
                self._cache.popitem(last=False)

    def _pin(self, acct: PrivacyAccount) -> None:
        if self._cache.get(acct.bare) is acct:
            del self._cache[acct.bare]
            self._online[acct.bare] = acct

    # -- ordered work per account ----------------------------------------------------

    def serially(self, bare: str, fn: Callable[[PrivacyAccount], Any]) -> defer.Deferred:
        """
        Call C{fn(account)} once the account's lists are in memory, after
        the account's earlier work and held stanzas; C{fn} may return a
        Deferred, which the next work waits for.  The result fires with
        C{fn}'s result.
        """
        acct = self._lookup(bare)
        if acct is None:
            acct = self._load(bare)
        self._pin(acct)
        d: defer.Deferred = defer.Deferred()
        acct.queue.append(("job", fn, d))
        self._busy += 1
        self._run(acct)
        return d

    def _hold(self, acct: PrivacyAccount, edge: str, stanza: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        self._pin(acct)
        acct.queue.append((_HELD, edge, stanza, fromJID, toJID))
        acct.held += 1
        self._busy += 1
        self._run(acct)
        return True

    def _run(self, acct: PrivacyAccount) -> None:
        if acct.running or not acct.loaded:
            return
        # Running while the loop runs: work queued by a callback inside it
        # (a job's caller queueing the next one) waits its turn here.
        acct.running = True
        waiting: defer.Deferred | None = None
        try:
            queue = acct.queue
            while queue and waiting is None:
                if queue[0][0] == _HELD:
                    d = self._releaseHeld(acct)
                else:
                    _, fn, result = queue.popleft()
                    d = defer.maybeDeferred(fn, acct)
                    d.addBoth(self._jobDone, result)
                if d is not None and not d.called:
                    waiting = d
        finally:
            if waiting is None:
                acct.running = False
        if waiting is not None:
            waiting.addBoth(self._resume, acct)
            return
        self._settle(acct)

    def _jobDone(self, outcome: Any, result: defer.Deferred) -> None:
        # The caller's callbacks (its reply) first: idle means answered.
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)
        self._done()

    def _resume(self, _: Any, acct: PrivacyAccount) -> None:
        acct.running = False
        self._run(acct)

    def _releaseHeld(self, acct: PrivacyAccount) -> defer.Deferred | None:
        """Decide the held stanzas at the front of the queue; a Deferred if the roster must be loaded first."""
        queue = acct.queue
        while queue and queue[0][0] == _HELD:
            _, edge, stanza, fromJID, toJID = queue[0]
            verdict = self._decideHeld(acct, edge, stanza, fromJID, toJID, _CACHED)
            if verdict is _NEED_ROSTER:
                break
            queue.popleft()
            self._heldDone(acct)
        else:
            return None
        # The roster is needed: decide this one and the held stanzas behind
        # it with the roster loaded once (an offline account).
        batch = []
        while queue and queue[0][0] == _HELD:
            batch.append(queue.popleft())
        roster = self._rosterModule()
        assert roster is not None  # only group/subscription items need it

        def decide(racct: Any) -> None:
            items = racct.state.items if racct.exists else {}
            for _, edge, stanza, fromJID, toJID in batch:
                self._decideHeld(acct, edge, stanza, fromJID, toJID, items)
                self._heldDone(acct)

        def failed(failure: Failure) -> None:
            for entry in batch:
                self._bounce(entry[2], "internal-server-error", errorType="wait")
                self._heldDone(acct)

        return roster.run(acct.bare, decide).addErrback(failed)

    def _decideHeld(self, acct: PrivacyAccount, edge: str, stanza: domish.Element, fromJID: J.JID, toJID: J.JID, roster: Any) -> Any:
        """Decide a held stanza and route it on if it passes; a broken stanza is logged and dropped."""
        try:
            verdict = self._decide(acct, edge, stanza, fromJID, toJID, roster)
            if verdict is _NEED_ROSTER:
                return verdict
            if not verdict:
                self._routeAgain(edge, stanza)
            return verdict
        except Exception:
            self.log.failure("deciding a held stanza for {bare} failed", bare=acct.bare)
            return True

    def _heldDone(self, acct: PrivacyAccount) -> None:
        acct.held -= 1
        self._done()

    def _routeAgain(self, edge: str, stanza: domish.Element) -> None:
        """Route a held stanza that passed: its own edge (and, inbound, the sender's) is not checked again."""
        previous = self._skipOut, self._skipIn
        self._skipOut = stanza
        if edge == _IN:
            self._skipIn = stanza
        try:
            self.server.router.route(stanza)
        finally:
            self._skipOut, self._skipIn = previous

    def _routeBypass(self, stanza: domish.Element) -> None:
        """Route a stanza this runtime made (an error, an unavailable) past both privacy edges."""
        previous = self._skipOut, self._skipIn
        self._skipOut = self._skipIn = stanza
        try:
            self.server.router.route(stanza)
        finally:
            self._skipOut, self._skipIn = previous

    # -- the roster ------------------------------------------------------------------

    def _rosterModule(self) -> Any:
        return self.server.modules.modules.get("roster")

    def _roster(self, bare: str) -> Mapping[str, Any] | None:
        """The account's roster items in memory; None when not loaded; {} without a roster module."""
        cached = self._cachedRoster
        if cached is None:
            roster = self._rosterModule()
            if roster is None:
                return {}
            cached = self._cachedRoster = roster.cachedRoster
        return cached(bare)

    # -- the filters -----------------------------------------------------------------

    def outbound(self, stanza: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        """The sender's lists: router.OUTBOUND_FILTER (the sender is local)."""
        if stanza is self._skipOut:
            return False
        user = fromJID.user
        if user is None:
            return False  # the server itself
        host = fromJID.host
        if toJID.host == host and (toJID.user == user or toJID.user is None):
            return False  # to one's own resources, or to one's own server
        if fromJID.resource is None and stanza.name == "presence" and stanza.getAttribute("type") in SUBSCRIPTION_TYPES:
            return False  # stamped by the roster module: checked when the client sent it (directed)
        bare = f"{user}@{host}"
        acct = self._online.get(bare)
        if acct is None:
            acct = self._cache.get(bare)
            if acct is None:
                if bare not in self._withDefault:
                    return False
                acct = self._load(bare)
            else:
                self._cache.move_to_end(bare)
        if not acct.loaded or acct.held:
            return self._hold(acct, _OUT, stanza, fromJID, toJID)
        if acct.default is None and not acct.actives:
            return False
        verdict = self._outboundVerdict(acct, stanza, fromJID, toJID, _CACHED)
        if verdict is _NEED_ROSTER:
            return self._hold(acct, _OUT, stanza, fromJID, toJID)
        return verdict  # type: ignore[return-value]

    def inbound(self, stanza: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
        """The recipient's lists: router.INBOUND_FILTER (the recipient is local)."""
        if stanza is self._skipIn or fromJID is None:
            return False
        user = toJID.user
        if user is None:
            return False  # to the server itself
        host = toJID.host
        if fromJID.host == host and (fromJID.user == user or fromJID.user is None):
            return False  # from one's own resources, or from one's own server
        bare = f"{user}@{host}"
        acct = self._online.get(bare)
        if acct is None:
            acct = self._cache.get(bare)
            if acct is None:
                if bare not in self._withDefault:
                    return False
                if isNotification(stanza) and not self.server.sessions.resources(bare):
                    return False  # nobody to show it to: ignored anyway (RFC 6121 §8.5.2.2.2)
                acct = self._load(bare)
            else:
                self._cache.move_to_end(bare)
        if not acct.loaded or acct.held:
            return self._hold(acct, _IN, stanza, fromJID, toJID)
        if not acct.actives:
            # The usual case: no session has an active list, the default decides.
            compiled = acct.default
            if compiled is None:
                return False
            kind = inboundKind(stanza)
            roster = self._roster(bare) if compiled.needsRoster(kind) else {}
            if roster is not None:
                if compiled.allows(kind, fromJID, roster):
                    return False
                self._denyInbound(stanza)
                return True
        verdict = self._inboundVerdict(acct, stanza, fromJID, toJID, _CACHED)
        if verdict is _NEED_ROSTER:
            return self._hold(acct, _IN, stanza, fromJID, toJID)
        return verdict  # type: ignore[return-value]

    def directed(self, stanza: domish.Element, session: ClientSession) -> bool:
        """
        A client's subscription stanza (presence("directed"), before the
        roster module changes any state for it): the sending session's
        list decides, and a denied one is dropped (XEP-0016 rule 4).  The
        roster module routes it from the bare JID, which the outbound
        filter then leaves alone.
        """
        if stanza is self._skipDirected or stanza.getAttribute("type") not in SUBSCRIPTION_TYPES:
            return False
        try:
            toJID = J.parse(stanza.getAttribute("to") or "")
        except J.InvalidJID:
            return False  # the Router answers jid-malformed
        if toJID.host == session.host and (toJID.user == session.username or toJID.user is None):
            return False
        bare = session.bareJID
        acct = self._lookup(bare)
        if acct is None:
            if bare not in self._withDefault:
                return False
            acct = self._load(bare)
        if not acct.loaded or acct.held:
            self.serially(bare, lambda acct: self._directedLater(acct, stanza, session, toJID))
            return True
        return self._directedDenied(acct, session, toJID)

    def _directedDenied(self, acct: PrivacyAccount, session: ClientSession, toJID: J.JID) -> bool:
        compiled = self.effective(acct, session)
        if compiled is None:
            return False
        return not compiled.allows(K_OTHER, toJID, self._roster(acct.bare) or {})

    def _directedLater(self, acct: PrivacyAccount, stanza: domish.Element, session: ClientSession, toJID: J.JID) -> None:
        """A subscription stanza that waited for the lists: decide, then hand it on as the session would have."""
        if self._directedDenied(acct, session, toJID):
            return
        previous, self._skipDirected = self._skipDirected, stanza
        try:
            if not self.server.bus.fire(B.presence("directed"), stanza, session):
                self.server.router.route(stanza)
        finally:
            self._skipDirected = previous

    def _decide(self, acct: PrivacyAccount, edge: str, stanza: domish.Element, fromJID: J.JID, toJID: J.JID, roster: Any) -> Any:
        if edge == _OUT:
            return self._outboundVerdict(acct, stanza, fromJID, toJID, roster)
        return self._inboundVerdict(acct, stanza, fromJID, toJID, roster)

    def effective(self, acct: PrivacyAccount, session: ClientSession | None) -> CompiledList | None:
        """The list in force for C{session} (None: the account as a whole): active, else default."""
        if session is not None:
            active = session.data.get("privacy")
            if active:
                return active[1]
        return acct.default

    def _outboundVerdict(self, acct: PrivacyAccount, stanza: domish.Element, fromJID: J.JID, toJID: J.JID, roster: Any) -> Any:
        """True: denied (and answered); False: allowed; _NEED_ROSTER."""
        if acct.actives and fromJID.resource is not None:
            compiled = self.effective(acct, self.server.sessions.get(acct.bare, fromJID.resource))
        else:
            compiled = acct.default
        if compiled is None:
            return False
        kind = outboundKind(stanza)
        if not compiled.needsRoster(kind):
            roster = None
        elif roster is _CACHED:
            roster = self._roster(acct.bare)
            if roster is None:
                return _NEED_ROSTER
        item = compiled.match(kind, toJID, roster)
        if item is None or item.allow:
            return False
        name, type_ = stanza.name, stanza.getAttribute("type")
        if (name == "message" and type_ != "error") or (name == "iq" and type_ in ("get", "set")):
            blocked = None
            if item.blocks and compiled is acct.default:
                blocked = domish.Element((NS_BLOCKING_ERRORS, "blocked"))
            self._bounce(stanza, "not-acceptable", errorType="cancel", appCondition=blocked)
        return True

    def _inboundVerdict(self, acct: PrivacyAccount, stanza: domish.Element, fromJID: J.JID, toJID: J.JID, roster: Any) -> Any:
        """True: denied or delivered here; False: allowed, route on; _NEED_ROSTER."""
        kind = inboundKind(stanza)
        if roster is _CACHED:
            # Read the roster only if a list that may apply needs it.
            if acct.actives or (acct.default is not None and acct.default.needsRoster(kind)):
                roster = self._roster(acct.bare)
            else:
                roster = None
        resources = self.server.sessions.resources(acct.bare)
        session = resources.get(toJID.resource) if toJID.resource is not None and resources else None
        if session is not None or not acct.actives or not resources:
            compiled = self.effective(acct, session)
            allowed = self._allows(compiled, kind, fromJID, roster)
            if allowed is _NEED_ROSTER or allowed:
                return _NEED_ROSTER if allowed is _NEED_ROSTER else False
            self._denyInbound(stanza)
            return True
        # To the bare JID (or an unbound resource) while some session has
        # an active list: each resource by its own list.
        available = [s for s in resources.values() if s.available]
        if kind == K_PRESENCE_IN and toJID.resource is None:
            verdicts = [(s, self._allows(self.effective(acct, s), kind, fromJID, roster)) for s in available]
            if any(v is _NEED_ROSTER for _, v in verdicts):
                return _NEED_ROSTER
            if all(v for _, v in verdicts):
                return False
            for s, v in verdicts:
                if v:
                    s.deliver(stanza)
            return True
        type_ = messageType(stanza) if stanza.name == "message" else None
        candidates = [s for s in available if s.priority >= 0]
        if type_ in ("chat", "normal", "headline") and candidates and (toJID.resource is None or type_ == "chat"):
            verdicts = [(s, self._allows(self.effective(acct, s), kind, fromJID, roster)) for s in candidates]
            if any(v is _NEED_ROSTER for _, v in verdicts):
                return _NEED_ROSTER
            allowed = [s for s, v in verdicts if v]
            if len(allowed) == len(candidates):
                return False
            if not allowed:
                self._denyInbound(stanza)
                return True
            if fromJID.user is not None or fromJID.host != toJID.host:
                stripForgedDelay(stanza, toJID.host)
            if type_ != "headline":
                top = max(s.priority for s in allowed)
                allowed = [s for s in allowed if s.priority == top]
            for s in allowed:
                s.deliver(stanza)
            return True
        allowed = self._allows(acct.default, kind, fromJID, roster)
        if allowed is _NEED_ROSTER or allowed:
            return _NEED_ROSTER if allowed is _NEED_ROSTER else False
        self._denyInbound(stanza)
        return True

    @staticmethod
    def _allows(compiled: CompiledList | None, kind: int, jid: J.JID, roster: Mapping[str, Any] | None) -> Any:
        """Whether C{compiled} allows; _NEED_ROSTER if it needs a roster that is not in memory."""
        if compiled is None:
            return True
        if compiled.needsRoster(kind):
            if roster is None:
                return _NEED_ROSTER
            return compiled.allows(kind, jid, roster)
        return compiled.allows(kind, jid, None)

    def _denyInbound(self, stanza: domish.Element) -> None:
        """A received stanza the lists deny: presence silently, message and iq get/set with service-unavailable."""
        name, type_ = stanza.name, stanza.getAttribute("type")
        if (name == "message" and type_ != "error") or (name == "iq" and type_ in ("get", "set")):
            self._bounce(stanza, "service-unavailable")

    def _bounce(self, stanza: domish.Element, condition: str, **kw: Any) -> None:
        """Answer C{stanza} with an error past the privacy edges (never an error to an error or a result)."""
        type_ = stanza.getAttribute("type")
        if type_ == "error" or not stanza.getAttribute("from") or stanza.name == "presence":
            return
        if stanza.name == "iq" and type_ == "result":
            return
        self._routeBypass(errorReply(stanza, condition, **kw))

    # -- lifecycle -------------------------------------------------------------------

    def sessionBound(self, session: ClientSession) -> None:
        bare = session.bareJID
        acct = self._lookup(bare)
        if acct is not None:
            self._pin(acct)
        elif bare in self._withDefault:
            self._load(bare)

    def sessionEnded(self, session: ClientSession) -> None:
        active = session.data.pop("privacy", None)
        acct = self.account(session.bareJID)
        if acct is None:
            return
        if active:
            acct.actives -= 1
        self._settle(acct)

    def accountCreated(self, host: str, username: str) -> None:
        bare = f"{username}@{host}"
        acct = self.account(bare)
        if acct is not None and acct.loaded and not acct.exists and not acct.queue and not acct.running:
            self._online.pop(bare, None)
            self._cache.pop(bare, None)

    def accountDeleted(self, host: str, username: str) -> None:
        bare = f"{username}@{host}"
        self._withDefault.discard(bare)
        acct = self.account(bare)
        if acct is None:
            return
        # The rows went with the account; nothing applies any more.
        acct.lists, acct.compiled, acct.defaultName, acct.default, acct.exists = {}, {}, None, None, False
        for session in self.server.sessions.resources(bare).values():
            if session.data.pop("privacy", None):
                acct.actives -= 1

    # -- changes (called from work run by L{serially}) -------------------------------

    def usedByOthers(self, acct: PrivacyAccount, name: str, session: ClientSession | None) -> bool:
        """Whether the list C{name} applies to a connected resource other than C{session} (XEP-0016 rule 11)."""
        for other in self.server.sessions.resources(acct.bare).values():
            if other is session:
                continue
            active = activeName(other)
            if active == name or (active is None and acct.defaultName == name):
                return True
        return False

    def defaultUsedByOthers(self, acct: PrivacyAccount, session: ClientSession | None) -> bool:
        """Whether the default list applies to a connected resource other than C{session} (§2.5)."""
        return acct.defaultName is not None and self.usedByOthers(acct, acct.defaultName, session)

    def setActive(self, acct: PrivacyAccount, session: ClientSession, name: str | None, then: Callable[[], None] | None = None) -> None:
        """
        Make C{name} the session's active list (None: decline one; the
        caller checked it exists), call C{then} (the reply), then send the
        presence the change calls for.
        """
        before = self._snapshot(acct, [session])
        had = session.data.pop("privacy", None)
        if had:
            acct.actives -= 1
        if name is not None:
            session.data["privacy"] = [name, acct.compiledList(name)]
            acct.actives += 1
        if then is not None:
            then()
        self._presenceChanged(acct, before)

    def commit(
        self,
        acct: PrivacyAccount,
        changes: list[tuple],
        then: Callable[[], None] | None = None,
    ) -> defer.Deferred:
        """
        Write C{changes} (see L{apply_privacy_changes_txn}) and then apply
        them in memory: recompile, call C{then} (the reply to the request:
        it goes out before pushes and presence), tell the protocol modules
        and send the presence the new rules call for.  Fires with None once
        applied.
        """
        self._busy += 1
        d = self.server.store.runInteraction("privacy_changes", apply_privacy_changes_txn, acct.host, acct.username, changes)

        def written(ok: bool) -> None:
            if not ok:
                raise PrivacyError("item-not-found", "the account no longer exists")
            self._apply(acct, changes, then)

        d.addCallback(written)
        d.addBoth(lambda r: (self._done(), r)[1])
        return d

    def _apply(self, acct: PrivacyAccount, changes: list[tuple], then: Callable[[], None] | None) -> None:
        sessions = list(self.server.sessions.resources(acct.bare).values())
        before = self._snapshot(acct, sessions)
        blockedBefore = acct.blocklist()
        changed: list[str] = []
        for change in changes:
            if change[0] == "list":
                _, name, items = change
                acct.lists[name] = tuple(items)
                acct.compiled.pop(name, None)
                changed.append(name)
            elif change[0] == "remove":
                _, name = change
                acct.lists.pop(name, None)
                acct.compiled.pop(name, None)
                if acct.defaultName == name:
                    acct.defaultName = None
                for s in sessions:
                    if activeName(s) == name:
                        del s.data["privacy"]
                        acct.actives -= 1
                changed.append(name)
            elif change[0] == "default":
                acct.defaultName = change[1]
        acct.default = acct.compiledList(acct.defaultName) if acct.defaultName is not None else None
        for s in sessions:
            active = s.data.get("privacy")
            if active:
                active[1] = acct.compiledList(active[0])
        if acct.defaultName is not None:
            self._withDefault.add(acct.bare)
        else:
            self._withDefault.discard(acct.bare)
        if then is not None:
            then()
        for name in changed:
            self.server.bus.notify(LIST_CHANGED, acct.bare, name)
        self._presenceChanged(acct, before)
        blockedAfter = acct.blocklist()
        if blockedAfter != blockedBefore:
            self.server.bus.notify(BLOCKLIST_CHANGED, acct.bare, blockedBefore, blockedAfter)

    # -- presence when the rules change ----------------------------------------------

    def _snapshot(self, acct: PrivacyAccount, sessions: list[ClientSession]) -> list[tuple[ClientSession, CompiledList | None]]:
        return [(s, self.effective(acct, s)) for s in sessions if s.available]

    def _presenceChanged(self, acct: PrivacyAccount, before: list[tuple[ClientSession, CompiledList | None]]) -> None:
        """Send the presence a change of the list in force calls for (see the module docstring)."""
        route = self.server.router.route
        roster = self._roster(acct.bare) or {}
        probes: set[str] = set()
        for session, old in before:
            new = self.effective(acct, session)
            if new is old or not session.available or session.jid is None:
                continue
            full = session.jid.full()
            targets = {jid for jid, item in roster.items() if item.hasFrom}
            targets.update(session.directed or ())
            for target in sorted(targets):
                try:
                    tj = J.parse(target)
                except J.InvalidJID:
                    continue
                was = old is None or old.allows(K_PRESENCE_OUT, tj, roster)
                now = new is None or new.allows(K_PRESENCE_OUT, tj, roster)
                if was and not now:
                    self._routeBypass(presenceElement("unavailable", full, target))
                elif now and not was and session.presence is not None:
                    route(copyStanza(session.presence, to=target))
            for contact, item in sorted(roster.items()):
                if not item.hasTo:
                    continue
                try:
                    cj = J.parse(contact)
                except J.InvalidJID:
                    continue
                was = old is None or old.allows(K_PRESENCE_IN, cj, roster)
                now = new is None or new.allows(K_PRESENCE_IN, cj, roster)
                if was and not now:
                    self._showUnavailable(session, cj)
                elif now and not was:
                    probes.add(cj.userhost())
        for contact in sorted(probes):
            route(presenceElement("probe", acct.bare, contact))

    def _showUnavailable(self, session: ClientSession, contact: J.JID) -> None:
        """Tell C{session} a contact whose presence it no longer receives is unavailable (XEP-0016 §2.11)."""
        to = session.jid.full()  # type: ignore[union-attr]
        bare = contact.userhost()
        if contact.host in self.server.hosts:
            for other in self.server.sessions.available(bare):
                session.deliver(presenceElement("unavailable", other.jid.full(), to))
        else:
            session.deliver(presenceElement("unavailable", bare, to))


class PrivacyProtocolModule(Module):
    """
    What the XEP-0016 and XEP-0191 modules share: a hold on the one
    L{PrivacyRules} runtime while loaded, per-account serialised requests
    whose failures become error replies, and C{forbidden} for requests to
    another account.  Unnamed, so it is never offered as a module itself.
    """

    #: What the protocol manages, for error texts ("privacy lists", "blocklist").
    subject = ""

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.rules: PrivacyRules | None = None
        self._pushId = 0

    def start(self) -> defer.Deferred:
        self.rules = PrivacyRules.acquire(self.server)
        return self.rules.whenStarted()

    def stop(self) -> defer.Deferred | None:
        rules, self.rules = self.rules, None
        return rules.release() if rules is not None else None

    def _session(self, fromJID: J.JID) -> ClientSession | None:
        if fromJID.resource is None:
            return None
        return self.server.sessions.get(fromJID.userhost(), fromJID.resource)

    def _serve(self, iq: domish.Element, fromJID: J.JID, work: Callable[[PrivacyAccount], Any]) -> bool:
        """Run C{work(acct)} in the account's order; PrivacyError and failures become error replies."""
        assert self.rules is not None
        route = self.server.router.route

        def failed(failure: Failure) -> None:
            if failure.check(PrivacyError):
                route(errorReply(iq, failure.value.condition, failure.value.text))
            else:
                logFailure(self.log, failure, "{name} request failed", name=self.name)
                route(errorReply(iq, "internal-server-error", StoreUnavailable.clientText, errorType="wait"))

        self.rules.serially(fromJID.userhost(), work).addErrback(failed)
        return True

    def forbidden(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        """A request about another account's data."""
        self.server.router.bounce(iq, "forbidden", f"you can only read and change your own {self.subject}")
        return True
