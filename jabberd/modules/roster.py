"""
Rosters (RFC 6121 §2) and the presence subscription state machine (§3,
Appendix A).

The roster of an account is loaded once, when its first session binds, and
kept in memory while it has sessions; every change updates memory at once
and is written to the store in the background (one transaction per change,
in order per account).  The rosters of offline accounts are loaded only for
the moment a subscription stanza for them is processed.

Everything that touches an account's roster runs through L{RosterModule.run},
which queues work until the roster is loaded and then runs it in order, so
a client's stanzas are processed in the order it sent them even while its
roster is still coming from the store.

Subscription stanzas are processed here on both sides (the presence module
hands them over): L{RosterModule.outbound} for what a local user sends
(Appendix A.2) and L{RosterModule.inbound} for what reaches a local user
from anywhere (Appendix A.3).  Outbound subscription stanzas are stamped
with the sender's bare JID (§3.1.2) and routed through the Router, so a
local contact, a remote one and a component are all the same here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.module import Module
from jabberd.store.database import StoreUnavailable, logFailure
from jabberd.store.roster import (
    RosterItem,
    RosterState,
    apply_changes_txn,
    itemsByVersion,
    load_roster_txn,
    subscriptionOf,
)
from jabberd.xmlstream import NS_CLIENT, StreamParser, errorReply, iqResult

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_PREAPPROVAL = "urn:xmpp:features:pre-approval"

SUBSCRIPTION_TYPES = frozenset(("subscribe", "subscribed", "unsubscribe", "unsubscribed"))

#: The server-configured limits of RFC 6121 §2.3.3 on a name and a group name (characters).
MAX_NAME_LENGTH = 1023


def copyStanza(stanza: domish.Element, **attributes: str | None) -> domish.Element:
    """
    A shallow copy of C{stanza} with some attributes changed (None removes
    one): one payload shared by many recipients, only the addresses differ.
    """
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri, dict(stanza.attributes))
    copy.children = list(stanza.children)
    for key, value in attributes.items():
        key = "from" if key == "from_" else key
        if value is None:
            copy.attributes.pop(key, None)
        else:
            copy.attributes[key] = value
    return copy


def presenceElement(type_: str | None, from_: str, to: str) -> domish.Element:
    """A C{<presence/>} with just addresses and a type."""
    p = domish.Element((NS_CLIENT, "presence"))
    p["from"] = from_
    p["to"] = to
    if type_ is not None:
        p["type"] = type_
    return p


_OPEN = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def parseStanza(xml: str) -> domish.Element | None:
    """Parse one stored stanza (written by C{toXml()}) back into an element."""
    found: list[domish.Element] = []
    parser = StreamParser(lambda a: None, found.append, lambda: None, 10**6, 64)
    try:
        parser.feed(_OPEN + xml.encode("utf-8"))
    except Exception:
        return None
    return found[0] if found else None


class RosterError(Exception):
    """A roster set that breaks RFC 6121 §2.3.3 / §2.5.3: answered with C{condition}."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text


class Account:
    """An account's roster while it is in memory, and the work waiting for it."""

    __slots__ = ("bare", "host", "username", "state", "exists", "loading", "queue", "running", "sessions", "writes", "writing")

    def __init__(self, bare: str, host: str, username: str) -> None:
        self.bare = bare
        self.host = host
        self.username = username
        self.state: RosterState | None = None  # None until loaded
        self.exists = False
        self.loading: defer.Deferred | None = None
        self.queue: list[tuple[Callable[[Account], Any], defer.Deferred]] = []
        self.running = False
        self.sessions = 0
        self.writes: list[list[tuple]] = []
        self.writing = False

    def __repr__(self) -> str:
        return f"<roster {self.bare} sessions={self.sessions} loaded={self.state is not None}>"


class RosterModule(Module):
    """RFC 6121 rosters, roster versioning, pre-approvals and the subscription state machine."""

    name = "roster"
    # Roster versioning and pre-approval are stream features, not disco
    # features, and jabber:iq:roster is not advertised in disco either.
    features = ()
    accountFeatures = ()

    def __init__(self, server) -> None:
        super().__init__(server)
        self._accounts: dict[str, Account] = {}
        self._busy = 0
        self._idleWaiters: list[defer.Deferred] = []
        self._pushId = 0

    def hooks(self):
        return [
            (B.iq("get", B.SELF, NS_ROSTER, "query"), self.rosterGet, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_ROSTER, "query"), self.rosterSet, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_ROSTER, "query"), self.forbidden, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_ROSTER, "query"), self.forbidden, B.PRIORITY_NORMAL),
            (B.STREAM_FEATURES, self.streamFeatures, B.PRIORITY_NORMAL),
            (B.SESSION_BOUND, self.sessionBound, B.PRIORITY_HIGH),
            # Low: the presence module's unavailable broadcast reads the roster first.
            (B.SESSION_ENDED, self.sessionEnded, B.PRIORITY_LOW),
            (B.ACCOUNT_CREATED, self.accountCreated, B.PRIORITY_NORMAL),
            (B.ACCOUNT_DELETED, self.accountDeleted, B.PRIORITY_NORMAL),
        ]

    @property
    def maxItems(self) -> int:
        return self.server.config.limits.max_roster_size

    # -- the in-memory rosters -------------------------------------------------

    def cachedRoster(self, bareJID: str) -> dict[str, RosterItem] | None:
        """
        The items of an account's roster by JID, read from memory (do not
        mutate); None when it is not loaded (the account is offline).
        """
        acct = self._accounts.get(bareJID)
        if acct is None or acct.state is None or not acct.exists:
            return None
        return acct.state.items

    def loaded(self, bareJID: str) -> Account | None:
        """The in-memory roster of an account, if loaded and nothing waits for it."""
        acct = self._accounts.get(bareJID)
        if acct is None or acct.state is None or acct.queue or acct.running:
            return None
        return acct

    def run(self, bareJID: str, fn: Callable[[Account], Any]) -> defer.Deferred:
        """
        Call C{fn(account)} once the roster of the local account C{bareJID}
        is in memory, after the work queued before it; the Deferred fires
        with C{fn}'s result.  When the roster is loaded and idle C{fn} runs
        before this returns.
        """
        acct = self._accounts.get(bareJID)
        if acct is None:
            user, _, host = bareJID.partition("@")
            acct = self._accounts[bareJID] = Account(bareJID, host, user)
        d: defer.Deferred = defer.Deferred()
        acct.queue.append((fn, d))
        self._busy += 1
        if acct.state is None:
            if acct.loading is None:
                self._load(acct)
        elif not acct.running:
            self._drain(acct)
        return d

    def _load(self, acct: Account) -> None:
        self._busy += 1
        d = self.server.store.runInteraction("load_roster", load_roster_txn, acct.host, acct.username)
        acct.loading = d

        def loaded(state: RosterState | None) -> None:
            acct.loading = None
            acct.exists = state is not None
            acct.state = state if state is not None else RosterState.empty()
            self._drain(acct)

        def failed(failure) -> None:
            acct.loading = None
            logFailure(self.log, failure, "loading the roster of {bare} failed", bare=acct.bare)
            queue, acct.queue = acct.queue, []
            for _, waiting in queue:
                self._busy -= 1
                waiting.errback(failure)
            self._maybeDrop(acct)

        d.addCallbacks(loaded, failed)
        d.addBoth(self._done)

    def _drain(self, acct: Account) -> None:
        acct.running = True
        try:
            while acct.queue:
                fn, d = acct.queue.pop(0)
                try:
                    result = fn(acct)
                except Exception:
                    self.log.failure("roster work for {bare} failed", bare=acct.bare)
                    d.errback()
                else:
                    d.callback(result)
                finally:
                    self._busy -= 1
        finally:
            acct.running = False
        self._maybeDrop(acct)
        self._checkIdle()

    def _maybeDrop(self, acct: Account) -> None:
        if (
            acct.sessions <= 0
            and not acct.queue
            and not acct.running
            and acct.loading is None
            and not acct.writing
            and self._accounts.get(acct.bare) is acct
        ):
            del self._accounts[acct.bare]

    def _done(self, result: Any) -> None:
        self._busy -= 1
        self._checkIdle()

    def _checkIdle(self) -> None:
        if self._busy == 0 and self._idleWaiters:
            waiters, self._idleWaiters = self._idleWaiters, []
            for d in waiters:
                d.callback(None)

    def whenIdle(self) -> defer.Deferred:
        """Fires once no roster is loading, waiting or being written (tests, shutdown)."""
        if self._busy == 0:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idleWaiters.append(d)
        return d

    def stop(self):
        return self.whenIdle()

    # -- changes: memory now, the store in order --------------------------------

    def _bump(self, acct: Account) -> int:
        assert acct.state is not None
        acct.state.version += 1
        return acct.state.version

    def _setItem(self, acct: Account, item: RosterItem) -> tuple:
        state = acct.state
        assert state is not None
        version = self._bump(acct)
        state.items[item.jid] = item
        state.itemVersions[item.jid] = version
        state.tombstones.pop(item.jid, None)
        return ("item", item, version)

    def _removeItem(self, acct: Account, jid: str) -> tuple:
        state = acct.state
        assert state is not None
        version = self._bump(acct)
        state.items.pop(jid, None)
        state.itemVersions.pop(jid, None)
        state.tombstones[jid] = version
        # Keep the tombstones bounded: clients older than the newest pruned
        # one get the whole roster instead of pushes (§2.6.3 allows both).
        excess = len(state.tombstones) - self.maxItems
        if excess > 0:
            for old in sorted(state.tombstones, key=state.tombstones.__getitem__)[:excess]:
                state.floor = max(state.floor, state.tombstones.pop(old))
        return ("remove", jid, version)

    def _setPending(self, acct: Account, jid: str, stanza: domish.Element) -> tuple:
        assert acct.state is not None
        xml = stanza.toXml()
        acct.state.pending[jid] = xml
        received = datetime.fromtimestamp(self.server.reactor.seconds(), timezone.utc)
        return ("pending", jid, xml, received)

    def _unpend(self, acct: Account, jid: str) -> tuple:
        assert acct.state is not None
        acct.state.pending.pop(jid, None)
        return ("unpending", jid)

    def _save(self, acct: Account, changes: list[tuple]) -> None:
        """Queue C{changes} (plus the roster version) as one transaction after the account's earlier ones."""
        if not changes or not acct.exists:
            return
        state = acct.state
        assert state is not None
        if any(c[0] in ("item", "remove") for c in changes) or not state.stored:
            changes = changes + [("version", state.epoch, state.version, state.floor)]
            state.stored = True
        self._queueWrite(acct, changes)

    def _queueWrite(self, acct: Account, changes: list[tuple]) -> None:
        acct.writes.append(changes)
        self._busy += 1
        if not acct.writing:
            self._writeNext(acct)

    def _writeNext(self, acct: Account) -> None:
        if not acct.writes:
            acct.writing = False
            self._maybeDrop(acct)
            return
        acct.writing = True
        changes = acct.writes.pop(0)
        d = self.server.store.runInteraction("roster_changes", apply_changes_txn, acct.host, acct.username, changes)
        d.addErrback(self._writeFailed, acct, changes)
        d.addBoth(lambda _: self._writeNext(acct))
        d.addBoth(self._done)

    def _writeFailed(self, failure, acct: Account, changes: list[tuple]) -> None:
        """
        A change already applied in memory could not be stored.  If the
        database was down, write it again when it is back (in order: the
        waiters fire in the order they were added); shutting down meanwhile
        loses it, and the store has logged the outage.
        """
        if logFailure(self.log, failure, "storing roster changes of {bare} failed", bare=acct.bare):
            self.server.store.whenAvailable().addCallback(lambda _: self._queueWrite(acct, changes))

    # -- versions and pushes ------------------------------------------------

    @staticmethod
    def versionString(state: RosterState, version: int | None = None) -> str:
        """The opaque 'ver' of a roster version (RFC 6121 §2.6)."""
        return f"{state.epoch}-{state.version if version is None else version}"

    @staticmethod
    def itemElement(jid: str, item: RosterItem | None) -> domish.Element:
        """The C{<item/>} for C{item}, or a removal (C{subscription='remove'}) when None."""
        e = domish.Element((NS_ROSTER, "item"))
        e["jid"] = jid
        if item is None:
            e["subscription"] = "remove"
            return e
        if item.name is not None:
            e["name"] = item.name
        e["subscription"] = item.subscription
        if item.ask:
            e["ask"] = "subscribe"
        if item.approved:
            e["approved"] = "true"
        for group in item.groups:
            e.addElement("group", content=group)
        return e

    def _pushTo(self, session: ClientSession, state: RosterState, jid: str, item: RosterItem | None, version: int) -> None:
        self._pushId += 1
        iq = domish.Element((NS_CLIENT, "iq"))
        iq["type"] = "set"
        iq["id"] = f"push{self._pushId}"
        iq["to"] = session.jid.full()  # type: ignore[union-attr]
        query = iq.addElement((NS_ROSTER, "query"))
        if session.data.get("roster", {}).get("versioned"):
            query["ver"] = self.versionString(state, version)
        query.addChild(self.itemElement(jid, item))
        session.deliver(iq)

    def push(self, acct: Account, jid: str) -> None:
        """Send the current state of C{jid} in the roster to every interested resource (§2.1.6)."""
        state = acct.state
        assert state is not None
        item = state.items.get(jid)
        version = state.itemVersions.get(jid) if item is not None else state.tombstones.get(jid)
        for session in list(self.server.sessions.resources(acct.bare).values()):
            if session.interested:
                self._pushTo(session, state, jid, item, version or state.version)

    # -- lifecycle -----------------------------------------------------------

    def sessionBound(self, session: ClientSession) -> None:
        acct = self._accounts.get(session.bareJID)
        if acct is None:
            acct = self._accounts[session.bareJID] = Account(session.bareJID, session.host, session.username or "")
        acct.sessions += 1
        if acct.state is None and acct.loading is None:
            self._load(acct)

    def sessionEnded(self, session: ClientSession) -> None:
        acct = self._accounts.get(session.bareJID)
        if acct is not None:
            acct.sessions -= 1
            self._maybeDrop(acct)

    def accountCreated(self, host: str, username: str) -> None:
        acct = self._accounts.get(f"{username}@{host}")
        if acct is not None and acct.state is not None and not acct.exists:
            # Loaded as "no such account" a moment ago: load again when next needed.
            acct.state = None
            self._maybeDrop(acct)

    def accountDeleted(self, host: str, username: str) -> None:
        """
        Tell the contacts of a deleted account that the subscriptions are
        gone (when its roster is in memory: its rows are already deleted).
        """
        acct = self._accounts.get(f"{username}@{host}")
        if acct is None or acct.state is None or not acct.exists:
            return
        bare, state = acct.bare, acct.state
        for jid, item in sorted(state.items.items()):
            contact = self._bareOf(jid)
            if item.hasFrom:
                self.sendUnavailable(bare, contact)
            if item.hasTo or item.ask:
                self.server.router.route(presenceElement("unsubscribe", bare, contact))
            if item.hasFrom:
                self.server.router.route(presenceElement("unsubscribed", bare, contact))
        for jid in sorted(state.pending):
            if jid not in state.items:
                self.server.router.route(presenceElement("unsubscribed", bare, jid))
        acct.exists = False
        acct.state = RosterState.empty()
        # Nothing left to write: the rows went with the account.
        self._busy -= len(acct.writes)
        acct.writes = []
        self._checkIdle()

    def streamFeatures(self, session: ClientSession, features: domish.Element) -> None:
        features.addElement((NS_ROSTERVER, "ver"))
        features.addElement((NS_PREAPPROVAL, "sub"))

    # -- roster get / set (§2.2 - §2.6) ---------------------------------------

    def _session(self, fromJID: J.JID) -> ClientSession | None:
        if fromJID is None or fromJID.resource is None:
            return None
        return self.server.sessions.get(fromJID.userhost(), fromJID.resource)

    def forbidden(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        """A roster query to another account's bare JID (§2.1.5, §2.3.3)."""
        self.server.router.bounce(iq, "forbidden", "you can only read and change your own roster")
        return True

    def rosterGet(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        session = self._session(fromJID)
        d = self.run(fromJID.userhost(), lambda acct: self._get(acct, iq, session))
        d.addErrback(self._failed, iq)
        return True

    def _get(self, acct: Account, iq: domish.Element, session: ClientSession | None) -> None:
        state = acct.state
        assert state is not None
        query = next(iq.elements(NS_ROSTER, "query"))
        ver = query.getAttribute("ver")
        if session is not None:
            session.interested = True
            if ver is not None:
                session.data.setdefault("roster", {})["versioned"] = True
        if ver is not None:
            since = self._knownVersion(state, ver)
            if since is not None:
                # §2.6.3: an empty result, then the changes as pushes.
                self.server.router.route(iqResult(iq))
                if session is not None:
                    for version, jid, item in itemsByVersion(state, since):
                        self._pushTo(session, state, jid, item, version)
                return
        reply = iqResult(iq)
        result = reply.addElement((NS_ROSTER, "query"))
        if ver is not None:
            result["ver"] = self.versionString(state)
        for jid in sorted(state.items):
            result.addChild(self.itemElement(jid, state.items[jid]))
        self.server.router.route(reply)

    @staticmethod
    def _knownVersion(state: RosterState, ver: str) -> int | None:
        """The version number of C{ver} if pushes can bring it up to date, else None."""
        epoch, _, number = ver.rpartition("-")
        if epoch != state.epoch or not number.isdigit():
            return None
        version = int(number)
        if version > state.version or version < state.floor:
            return None
        return version

    def rosterSet(self, iq: domish.Element, fromJID: J.JID, toJID: J.JID) -> bool:
        if self._refusedWhileDown(iq):
            return True
        session = self._session(fromJID)
        d = self.run(fromJID.userhost(), lambda acct: self._set(acct, iq, session))
        d.addErrback(self._failed, iq)
        return True

    def _refusedWhileDown(self, stanza: domish.Element) -> bool:
        """
        Changes are written behind (the module docstring), so while the
        database is known to be down they are refused with a temporary
        error instead of acknowledged and then lost.
        """
        if self.server.store.available:
            return False
        self.server.router.bounce(stanza, "internal-server-error", StoreUnavailable.clientText, errorType="wait")
        return True

    def _failed(self, failure, stanza: domish.Element) -> None:
        """Work for C{stanza} failed (L{run} logged why): a temporary error if the database was down."""
        if failure.check(StoreUnavailable):
            self.server.router.bounce(stanza, "internal-server-error", StoreUnavailable.clientText, errorType="wait")
        else:
            self.server.router.bounce(stanza, "internal-server-error")

    def _parseSet(self, iq: domish.Element) -> tuple[str, str | None, tuple[str, ...], bool]:
        """The jid, name, groups and removal flag of a roster set, or L{RosterError}."""
        query = next(iq.elements(NS_ROSTER, "query"))
        items = list(query.elements(NS_ROSTER, "item"))
        if len(items) != 1:
            raise RosterError("bad-request", "a roster set carries exactly one item")
        item = items[0]
        raw = item.getAttribute("jid")
        if not raw:
            raise RosterError("bad-request", "the item has no jid")
        try:
            jid = J.parse(raw).full()
        except J.InvalidJID as e:
            raise RosterError("jid-malformed", str(e)) from None
        # §2.1.2.5: the only subscription value a client may set is "remove";
        # the server ignores any other (as it ignores 'ask' and 'approved').
        if item.getAttribute("subscription") == "remove":
            return jid, None, (), True
        name = item.getAttribute("name") or None
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise RosterError("not-acceptable", f"the name is longer than {MAX_NAME_LENGTH} characters")
        groups: list[str] = []
        for group in item.elements(NS_ROSTER, "group"):
            text = str(group)
            if not text:
                raise RosterError("not-acceptable", "a group name cannot be empty")
            if len(text) > MAX_NAME_LENGTH:
                raise RosterError("not-acceptable", f"a group name is longer than {MAX_NAME_LENGTH} characters")
            if text in groups:
                raise RosterError("bad-request", f"the group {text!r} is listed twice")
            groups.append(text)
        return jid, name, tuple(sorted(groups)), False

    def _set(self, acct: Account, iq: domish.Element, session: ClientSession | None) -> None:
        state = acct.state
        assert state is not None
        try:
            jid, name, groups, remove = self._parseSet(iq)
            if remove:
                self._remove(acct, iq, jid)
                return
            old = state.items.get(jid)
            if old is None and len(state.items) >= self.maxItems:
                raise RosterError("not-allowed", f"the roster is full ({self.maxItems} items)")
        except RosterError as e:
            self.server.router.route(errorReply(iq, e.condition, e.text))
            return
        new = replace(old, name=name, groups=groups) if old is not None else RosterItem(jid, name, groups=groups)
        changed = new != old
        if changed:
            self._save(acct, [self._setItem(acct, new)])
        self.server.router.route(iqResult(iq))
        if changed:
            self.push(acct, jid)

    def _remove(self, acct: Account, iq: domish.Element, jid: str) -> None:
        """§2.5: remove an item, cancelling the subscriptions both ways first."""
        state = acct.state
        assert state is not None
        item = state.items.get(jid)
        if item is None:
            raise RosterError("item-not-found", "that JID is not in the roster")
        contact = self._bareOf(jid)
        pendingIn = contact in state.pending
        changes = []
        if pendingIn:
            changes.append(self._unpend(acct, contact))
        changes.append(self._removeItem(acct, jid))
        self._save(acct, changes)
        if item.hasFrom:
            self.sendUnavailable(acct.bare, contact)
        if item.hasTo or item.ask:
            self.server.router.route(presenceElement("unsubscribe", acct.bare, contact))
        if item.hasFrom or pendingIn:
            self.server.router.route(presenceElement("unsubscribed", acct.bare, contact))
        self.server.router.route(iqResult(iq))
        self.push(acct, jid)

    # -- subscriptions (§3, Appendix A) ------------------------------------------

    @staticmethod
    def _bareOf(jid: str) -> str:
        try:
            return J.parse(jid).userhost()
        except J.InvalidJID:
            return jid

    def _itemFor(self, acct: Account, contact: str) -> RosterItem | None:
        assert acct.state is not None
        return acct.state.items.get(contact)

    def sendPresence(self, bareJID: str, to: str) -> None:
        """Send the last presence of each available resource of C{bareJID} to C{to} (§3.1.5)."""
        for session in self.server.sessions.available(bareJID):
            if session.presence is not None:
                self.server.router.route(copyStanza(session.presence, to=to))

    def sendUnavailable(self, bareJID: str, to: str) -> None:
        """Send unavailable presence from each available resource of C{bareJID} to C{to} (§3.2.2, §3.3.3)."""
        for session in self.server.sessions.available(bareJID):
            self.server.router.route(presenceElement("unavailable", session.jid.full(), to))  # type: ignore[union-attr]

    def pendingRequests(self, acct: Account) -> list[domish.Element]:
        """The inbound subscription requests not yet answered, oldest first (§3.1.3)."""
        assert acct.state is not None
        found = []
        for xml in acct.state.pending.values():
            stanza = parseStanza(xml)
            if stanza is not None:
                found.append(stanza)
        return found

    def outbound(self, session: ClientSession, stanza: domish.Element, contact: str) -> defer.Deferred:
        """A local user sent a subscription stanza to C{contact} (a bare JID): Appendix A.2."""
        if self._refusedWhileDown(stanza):
            return defer.succeed(None)
        d = self.run(session.bareJID, lambda acct: self._outbound(acct, session, stanza, contact))
        return d.addErrback(self._failed, stanza)

    def _full(self, acct: Account, item: RosterItem | None) -> bool:
        assert acct.state is not None
        return item is None and len(acct.state.items) >= self.maxItems

    def _outbound(self, acct: Account, session: ClientSession, stanza: domish.Element, contact: str) -> None:
        state = acct.state
        assert state is not None
        type_ = stanza.getAttribute("type")
        item = state.items.get(contact)
        hasTo, hasFrom = item is not None and item.hasTo, item is not None and item.hasFrom
        ask, approved = item is not None and item.ask, item is not None and item.approved
        pendingIn = contact in state.pending
        changes: list[tuple] = []
        route = fromGained = fromLost = False
        new: RosterItem | None = None
        if type_ == "subscribe":
            # A.2.1: always routed; None/From gain Pending Out.
            route = True
            if not hasTo and not ask:
                if self._full(acct, item):
                    session.send(errorReply(stanza, "not-allowed", f"the roster is full ({self.maxItems} items)"))
                    return
                new = replace(item, ask=True) if item is not None else RosterItem(contact, ask=True)
        elif type_ == "unsubscribe":
            # A.2.2: routed; To and Pending Out end.
            route = True
            if item is not None and (hasTo or ask):
                new = replace(item, subscription=subscriptionOf(False, hasFrom), ask=False)
        elif type_ == "subscribed":
            if pendingIn:
                # A.2.3: approving a pending request (creates the item if need be).
                if self._full(acct, item):
                    session.send(errorReply(stanza, "not-allowed", f"the roster is full ({self.maxItems} items)"))
                    return
                route = fromGained = True
                changes.append(self._unpend(acct, contact))
                base = item if item is not None else RosterItem(contact)
                new = replace(base, subscription=subscriptionOf(hasTo, True), approved=False)
            elif not hasFrom and not approved:
                # §3.4: no request to approve: a pre-approval, not routed.
                if self._full(acct, item):
                    session.send(errorReply(stanza, "not-allowed", f"the roster is full ({self.maxItems} items)"))
                    return
                new = replace(item, approved=True) if item is not None else RosterItem(contact, approved=True)
        elif type_ == "unsubscribed":
            if pendingIn or hasFrom:
                # A.2.4: denying a request or cancelling the contact's subscription.
                route = True
                fromLost = hasFrom
                if pendingIn:
                    changes.append(self._unpend(acct, contact))
                if item is not None:
                    new = replace(item, subscription=subscriptionOf(hasTo, False), approved=False)
            elif approved:
                # §3.4: cancelling a pre-approval; nothing to route.
                new = replace(item, approved=False)  # type: ignore[arg-type]
        if new is not None and new != item:
            changes.append(self._setItem(acct, new))
        else:
            new = None
        self._save(acct, changes)
        if route:
            self.server.router.route(copyStanza(stanza, from_=acct.bare, to=contact))
        if new is not None:
            self.push(acct, contact)
        if fromGained:
            self.sendPresence(acct.bare, contact)
        if fromLost:
            self.sendUnavailable(acct.bare, contact)

    def inbound(self, stanza: domish.Element, contact: str, bareJID: str) -> defer.Deferred:
        """A subscription stanza from C{contact} (a bare JID) reached the local account C{bareJID}: Appendix A.3."""
        if self._refusedWhileDown(stanza):
            return defer.succeed(None)
        d = self.run(bareJID, lambda acct: self._inbound(acct, stanza, contact))
        return d.addErrback(self._failed, stanza)

    def _inbound(self, acct: Account, stanza: domish.Element, contact: str) -> None:
        state = acct.state
        assert state is not None
        type_ = stanza.getAttribute("type")
        bare = acct.bare
        if not acct.exists:
            # RFC 6121 §8.5.1: no such user: a request gets "unsubscribed",
            # everything else is ignored.
            if type_ == "subscribe":
                self.server.router.route(presenceElement("unsubscribed", bare, contact))
            return
        item = state.items.get(contact)
        hasTo, hasFrom = item is not None and item.hasTo, item is not None and item.hasFrom
        ask, approved = item is not None and item.ask, item is not None and item.approved
        pendingIn = contact in state.pending
        stamped = copyStanza(stanza, from_=contact, to=bare)
        changes: list[tuple] = []
        deliver = fromGained = fromLost = False
        reply: str | None = None
        new: RosterItem | None = None
        if type_ == "subscribe":
            if hasFrom:
                # A.3.1: already subscribed: answer for the user.
                reply, fromGained = "subscribed", True
            elif approved:
                # §3.4: pre-approved: approve without asking the user.
                reply, fromGained = "subscribed", True
                new = replace(item, subscription=subscriptionOf(hasTo, True), approved=False)  # type: ignore[arg-type]
            elif not pendingIn:
                if len(state.pending) >= self.maxItems:
                    return  # a flood of requests: keep no more than a roster's worth
                deliver = True
                changes.append(self._setPending(acct, contact, stamped))
        elif type_ == "unsubscribe":
            if pendingIn or hasFrom:
                deliver, fromLost = True, hasFrom
                if pendingIn:
                    changes.append(self._unpend(acct, contact))
                if item is not None and hasFrom:
                    new = replace(item, subscription=subscriptionOf(hasTo, False))
        elif type_ == "subscribed":
            if ask:
                deliver = True
                new = replace(item, subscription=subscriptionOf(True, hasFrom), ask=False)  # type: ignore[arg-type]
        elif type_ == "unsubscribed":
            if ask or hasTo:
                # The pre-approval, if any, stays (§3.4, §4.3.2).
                deliver = True
                new = replace(item, subscription=subscriptionOf(False, hasFrom), ask=False)  # type: ignore[arg-type]
        if new is not None and new != item:
            changes.append(self._setItem(acct, new))
        else:
            new = None
        self._save(acct, changes)
        if deliver:
            for session in self.server.sessions.available(bare):
                session.deliver(stamped)
        if new is not None:
            self.push(acct, contact)
        if reply is not None:
            self.server.router.route(presenceElement(reply, bare, contact))
        if fromGained:
            self.sendPresence(bare, contact)
        if fromLost:
            self.sendUnavailable(bare, contact)
