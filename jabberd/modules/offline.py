"""
Offline messages (XEP-0160): store what no resource can take, deliver it
when the account comes back.

Storing.  The messages module fires C{message("offline")} for a chat or
normal message to an account with no available resource of non-negative
priority.  Then:

- a message with nothing to keep (only chat states, XEP-0085, and thread,
  hints or ids: XEP-0160 §3 says not to store those) is dropped silently;
- a message carrying the XEP-0334 C{<no-store/>} hint is refused with
  service-unavailable (storing is the only way it could be delivered);
- otherwise one transaction checks that the account exists, that it holds
  fewer than C{limits.max_offline_messages}, and stores the message with
  the time it was accepted (the injected clock).  No such account, or a
  full store: service-unavailable (RFC 6121 §8.5.1, XEP-0160 §3).  The
  database failing: internal-server-error of type "wait" (try again
  later).  So a message is never lost silently: it is committed, or its
  sender is told it was not.

Delivering.  When a session of the account sends initial presence with a
priority >= 0 (C{PRESENCE_AVAILABLE}), its stored messages are read in
order, a batch at a time, and sent to that session only, each with a
XEP-0203 C{<delay from='host' stamp='...'>Offline Storage</delay>} (the
acceptance time, UTC).  After each batch the server sends the client a
ping (XEP-0199) and deletes the batch, by id, only once the client has
answered it (any answer: RFC 6120 makes clients answer every iq get, and
answering proves the client read everything sent before it).

Exactly once.  The store is the source of truth:

- a message counts as accepted only when its row is committed: nothing
  tells the sender anything before that, and a failure is bounced;
- a row is deleted only after the client confirmed receiving it, and only
  the rows actually sent (a session that ends halfway, or never answers
  within C{ackTimeout}, leaves its unconfirmed batch stored for the next
  login); never "delete everything of this account";
- every store and every delivery for one account runs one at a time, in
  arrival order (a per-account queue in memory), so two resources coming
  online at once cannot both get a message, and a message accepted while
  a delivery runs is never deleted unseen; a message for an account whose
  queue is busy waits its turn (this module holds it at C{PRIORITY_FIRST}
  and replays it through the delivery rules afterwards, keeping its
  acceptance time), so it cannot overtake older stored ones;
- stopping the server waits for the queues to drain (the module's
  C{stop()} runs before the store closes), so every accepted message is
  committed before the process exits.

So a kill -9 loses nothing that was committed, and what a client
confirmed is never sent again.  The one window left is between the
client's answer and the commit of the delete: a kill -9 exactly then makes
the next login receive that batch (at most C{BATCH} messages) again, with
their original stanza ids.  A message whose row is not yet committed when
the process dies was never accepted (its sender got no answer of any
kind); with stream management (XEP-0198) its client would send it again.

Limits.  Only the first available presence of a session triggers delivery
(the presence module's C{PRESENCE_AVAILABLE}); a session that starts with a
negative priority and raises it later gets its stored messages at the next
login.  Flexible offline retrieval (XEP-0013) is not offered.
"""

from __future__ import annotations

import secrets
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd import jid as J
from jabberd.c2s.session import BOUND
from jabberd.module import Module
from jabberd.modules.messages import NS_DELAY, OFFLINE
from jabberd.store.accounts import NoSuchAccount
from jabberd.store.database import logFailure
from jabberd.store.offline import OfflineMessages, OfflineQuotaExceeded
from jabberd.xmlstream import NS_CLIENT, StreamError, StreamParser

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_HINTS = "urn:xmpp:hints"
NS_SID = "urn:xmpp:sid:0"
NS_PING = "urn:xmpp:ping"

#: Messages read, delivered, confirmed and deleted per round: also the most
#: a client can be sent twice (see the module docstring).
BATCH = 100

#: Seconds a client has to answer the confirmation iq after a batch.
ACK_TIMEOUT = 60.0

_OPEN = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def isTransient(message: domish.Element) -> bool:
    """
    Whether C{message} has nothing worth keeping for later: no child except
    chat states, C{<thread/>}, processing hints and stanza ids.
    """
    for child in message.elements():
        uri = child.uri
        if uri in (NS_CHATSTATES, NS_HINTS, NS_SID):
            continue
        if child.name == "thread" and uri == message.uri:
            continue
        return False
    return True


def hasNoStoreHint(message: domish.Element) -> bool:
    """Whether the sender asked that C{message} never be stored (XEP-0334)."""
    return next(message.elements(NS_HINTS, "no-store"), None) is not None


def serializeStored(message: domish.Element) -> str:
    """The XML kept in the store: the message in its own namespace as default."""
    return message.toXml(defaultUri=message.uri)


def parseStored(xml: str) -> domish.Element | None:
    """A stored message back as an element (None if the row is not one stanza)."""
    found: list[domish.Element] = []
    parser = StreamParser(lambda a: None, found.append, lambda: None, 1 << 30, 10000)
    try:
        parser.feed(_OPEN + xml.encode("utf-8"))
    except StreamError:
        return None
    return found[0] if len(found) == 1 else None


def delayStamp(when: datetime) -> str:
    """XEP-0082 DateTime in UTC, to the second (XEP-0203 requires UTC)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def addDelay(message: domish.Element, host: str, when: datetime) -> None:
    """Add the XEP-0203 notice that C{host} held C{message} since C{when}."""
    delay = message.addElement((NS_DELAY, "delay"))
    delay["from"] = host
    delay["stamp"] = delayStamp(when)
    delay.addContent("Offline Storage")


class OfflineModule(Module):
    """XEP-0160 offline message storage and delivery; see the module docstring."""

    name = "offline"
    features = ("msgoffline",)

    def __init__(self, server) -> None:
        super().__init__(server)
        self.messages = OfflineMessages(server.store)
        #: Acceptance times and confirmation timeouts; tests may put a Clock here.
        self.clock: IReactorTime = server.reactor
        #: Messages per read/deliver/confirm/delete round (see L{BATCH}).
        self.batch = BATCH
        #: Seconds a client has to answer the confirmation iq (see L{ACK_TIMEOUT}).
        self.ackTimeout = ACK_TIMEOUT
        self._queues: dict[str, deque[tuple[Callable[..., Any], tuple]]] = {}
        # The held message being replayed, and when it was accepted.
        self._replaying: tuple[domish.Element, datetime] | None = None
        self._idleWaiters: list[defer.Deferred] = []
        # Confirmations being waited for: ping id -> finish(confirmed).
        self._confirming: dict[str, Callable[[bool], None]] = {}

    def hooks(self):
        return [
            (B.message("bare"), self.holdBare, B.PRIORITY_FIRST),
            (B.message("full"), self.holdFull, B.PRIORITY_FIRST),
            (OFFLINE, self.store, B.PRIORITY_NORMAL),
            (B.PRESENCE_AVAILABLE, self.available, B.PRIORITY_NORMAL),
        ]

    def stop(self) -> defer.Deferred:
        """
        Wait until every queued store and delivery has finished (this runs
        before the store closes); confirmations still awaited are given up
        at once (their messages stay stored).
        """
        for finish in list(self._confirming.values()):
            finish(False)
        return self.idle()

    def idle(self) -> defer.Deferred:
        """A Deferred that fires once no account has stores or deliveries queued."""
        if not self._queues:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idleWaiters.append(d)
        return d

    def busy(self, bareJID: str) -> bool:
        """Whether the account has stores or deliveries queued or running."""
        return bareJID in self._queues

    # -- the per-account queue ---------------------------------------------------

    def _serially(self, bareJID: str, job: Callable[..., Any], *args: Any) -> None:
        """Run C{job(*args)} (it may return a Deferred) after every earlier job of the account."""
        queue = self._queues.get(bareJID)
        if queue is None:
            queue = self._queues[bareJID] = deque()
        queue.append((job, args))
        if len(queue) == 1:
            self._run(bareJID, queue)

    def _run(self, bareJID: str, queue: deque) -> None:
        while queue:
            job, args = queue[0]
            d = defer.maybeDeferred(job, *args)
            d.addErrback(self._jobFailed, job, args)
            if not d.called:
                d.addCallback(self._jobDone, bareJID, queue)
                return
            queue.popleft()
        self._drained(bareJID, queue)

    def _jobDone(self, _: object, bareJID: str, queue: deque) -> None:
        queue.popleft()
        self._run(bareJID, queue)

    def _jobFailed(self, failure: Failure, job: Callable[..., Any], args: tuple) -> None:
        if logFailure(self.log, failure, "offline job {job} failed", job=getattr(job, "__name__", job)) and job == self._deliver:
            # The database is down: what was not confirmed stays stored;
            # deliver it to this session when the database is back.
            self.server.store.whenAvailable().addCallback(lambda _: self.available(args[0]))

    def _drained(self, bareJID: str, queue: deque) -> None:
        if self._queues.get(bareJID) is queue:
            del self._queues[bareJID]
        if not self._queues:
            waiters, self._idleWaiters = self._idleWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    # -- keeping arrival order -------------------------------------------------

    def holdBare(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
        """A message for an account with queued work waits behind it."""
        return self._hold(message, fromJID, toJID)

    def holdFull(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID, session) -> bool:
        """The same for a full JID (the session is looked up again when it runs)."""
        return self._hold(message, fromJID, toJID)

    def _hold(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
        if self._replaying is not None and message is self._replaying[0]:
            return False
        bareJID = toJID.userhost()
        if bareJID not in self._queues:
            return False
        self._serially(bareJID, self._replay, message, fromJID, toJID, self._now())
        return True

    def _replay(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID, accepted: datetime) -> None:
        """Run a held message through the delivery rules, as the router would have."""
        previous, self._replaying = self._replaying, (message, accepted)
        try:
            bus = self.server.bus
            if toJID.resource is None:
                handled = bus.fire(B.message("bare"), message, fromJID, toJID)
            else:
                session = self.server.sessions.get(toJID.userhost(), toJID.resource)
                handled = bus.fire(B.message("full"), message, fromJID, toJID, session)
                if not handled and session is not None:
                    session.deliver(message)
                    handled = True
            if not handled and message.getAttribute("type") not in ("error", "groupchat", "headline"):
                self.server.router.bounce(message, "service-unavailable")
        finally:
            self._replaying = previous

    # -- storing ---------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def store(self, message: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
        """Keep a chat/normal message for an account nobody online can take it for."""
        if isTransient(message):
            return True
        if hasNoStoreHint(message):
            self.server.router.bounce(message, "service-unavailable", "the recipient is offline and the message asks not to be stored")
            return True
        replaying = self._replaying
        stamp = replaying[1] if replaying is not None and replaying[0] is message else self._now()
        self._serially(toJID.userhost(), self._store, message, toJID, stamp, serializeStored(message))
        return True

    def _store(self, message: domish.Element, toJID: J.JID, stamp: datetime, xml: str) -> defer.Deferred:
        limit = self.server.config.limits.max_offline_messages
        d = self.messages.add(toJID.host, toJID.user, stamp, xml, limit)
        d.addCallbacks(lambda _: None, self._notStored, errbackArgs=(message,))
        return d

    def _notStored(self, failure: Failure, message: domish.Element) -> None:
        router = self.server.router
        if failure.check(NoSuchAccount):
            router.bounce(message, "service-unavailable")
        elif failure.check(OfflineQuotaExceeded):
            router.bounce(message, "service-unavailable", "the recipient's offline message storage is full")
        else:
            logFailure(self.log, failure, "storing an offline message failed")
            router.bounce(message, "internal-server-error", "offline storage is unavailable: the message was not stored", errorType="wait")

    # -- delivering ------------------------------------------------------------

    def available(self, session) -> None:
        """A session's first available presence: deliver stored messages if its priority allows."""
        if session.priority >= 0:
            self._serially(session.bareJID, self._deliver, session)

    def _current(self, session) -> bool:
        return (
            session.state == BOUND
            and session.available
            and self.server.sessions.get(session.bareJID, session.resource) is session
        )

    @defer.inlineCallbacks
    def _deliver(self, session):
        host, user = session.jid.host, session.jid.user
        afterId = 0
        while self._current(session):
            batch = yield self.messages.get(host, user, afterId, self.batch)
            handed: list[int] = []
            for row in batch:
                if not self._current(session):
                    break
                stanza = parseStored(row.stanza)
                if stanza is None:
                    self.log.error("dropping unreadable offline message {id} of {user}@{host}", id=row.id, user=user, host=host)
                else:
                    addDelay(stanza, host, row.stamp)
                    session.deliver(stanza)
                handed.append(row.id)
            if not handed:
                return
            if not (yield self._confirm(session)):
                return  # not confirmed: they stay stored for the next login
            yield self.messages.delete(host, user, handed)
            if len(handed) < self.batch:
                return
            afterId = handed[-1]

    def _confirm(self, session) -> defer.Deferred:
        """
        Send the client an iq (a XEP-0199 ping) after what it was just sent,
        and fire True once it answers (result or error: RFC 6120 §8.2.3 makes
        every client answer, and answering means it has read everything sent
        before); False if the session ends first or no answer comes within
        L{ackTimeout} seconds.
        """
        if not self._current(session):
            return defer.succeed(False)
        jid = session.jid
        pingId = "offline-" + secrets.token_hex(8)
        done: defer.Deferred = defer.Deferred()
        bus = self.server.bus

        def answered(iq: domish.Element, fromJID: J.JID | None, toJID: J.JID) -> bool:
            if iq.getAttribute("id") != pingId or fromJID != jid:
                return False
            finish(True)
            return True

        def ended(endedSession) -> None:
            if endedSession is session:
                finish(False)

        def finish(confirmed: bool) -> None:
            if done.called:
                return
            del self._confirming[pingId]
            for off in offs:
                off()
            if timer.active():
                timer.cancel()
            done.callback(confirmed)

        # The answer comes to the host (the ping's 'from'), or to the account
        # if the client leaves 'to' out.
        offs = [
            bus.on(("iq-response", jid.host), answered),
            bus.on(("iq-response", jid.userhost()), answered),
            bus.on(B.SESSION_ENDED, ended),
        ]
        timer = self.clock.callLater(self.ackTimeout, finish, False)
        self._confirming[pingId] = finish
        ping = domish.Element((NS_CLIENT, "iq"))
        ping["type"] = "get"
        ping["id"] = pingId
        ping["from"] = jid.host
        ping["to"] = jid.full()
        ping.addElement((NS_PING, "ping"))
        session.deliver(ping)
        return done
