"""
Last Activity (XEP-0012).

- to a hosted domain: the server's uptime in seconds (§5);
- to an account's bare JID, answered by the server (§3): 0 seconds when the
  account has a connected resource, else the seconds since its last session
  ended with the status text of its last unavailable presence, or
  item-not-found when no logout was ever recorded;
- only for the account itself and for entities allowed to see its presence
  (a "from" or "both" subscription in its roster); anyone else gets
  forbidden (§3, §7: last activity would leak presence);
- to a full JID (§4): the client answers, but a query from an entity not
  allowed to see the account's presence (other than the account's own
  resources and its own server) never reaches it: it gets forbidden.

A logout is recorded when an account's last session ends, never per
stanza.  The status comes from the unavailable presence the client sent
before it left, when it sent one.  Logouts are kept in memory and written
together: one transaction every L{FLUSH_INTERVAL} seconds, or at once when
L{FLUSH_BATCH} accounts wait (a login costs the store CPU that competes
with the reactor; a write per logout was an eighth of a login's).  A query
answers from memory first, so what waits is never missed; a crash (not a
stop) loses at most that last second's logouts.  When the server
stops, what waits is written and the accounts still online are recorded as
logging out then.  Logouts that meet the database down are written once it
is back, before any newer ones.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import defer

from jabberd import bus as B
from jabberd import router as R
from jabberd.module import Module
from jabberd.store.database import logFailure
from jabberd.store.userdata import last_activity_for_txn, presence_authorized_txn, set_last_activity_txn
from jabberd.xmlstream import iqResult

NS_LAST = "jabber:iq:last"

#: Seconds a logout waits in memory before it is written with the others.
FLUSH_INTERVAL = 1.0
#: Logouts waiting that are written at once, without waiting for the interval.
FLUSH_BATCH = 500

#: (host, username) -> (logout time, status text)
Logouts = dict[tuple[str, str], tuple[datetime, str]]


class LastActivityModule(Module):
    """jabber:iq:last: server uptime, and when accounts were last online."""

    name = "last"
    features = (NS_LAST,)
    accountFeatures = (NS_LAST,)

    def __init__(self, server) -> None:
        super().__init__(server)
        #: See L{FLUSH_INTERVAL} and L{FLUSH_BATCH}; tests may change them.
        self.flushInterval = FLUSH_INTERVAL
        self.flushBatch = FLUSH_BATCH
        # Logouts not yet in the database, newest first when looked up:
        # waiting for the next write, being written (one write at a time, so
        # a newer logout never lands before an older one), and met the
        # database down (written when it is back).
        self._waiting: Logouts = {}
        self._writing: Logouts = {}
        self._unrecorded: Logouts = {}
        self._write: defer.Deferred | None = None
        self._flushCall = None
        self._idleWaiters: list[defer.Deferred] = []
        self._stopped = False

    def hooks(self):
        return [
            (B.iq("get", B.HOST, NS_LAST, "query"), self.uptime, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_LAST, "query"), self.ownLastActivity, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_LAST, "query"), self.lastActivity, B.PRIORITY_NORMAL),
            # Last among the filters: privacy decides first; we only hold back
            # what would otherwise be delivered.
            (R.INBOUND_FILTER, self.toFullJID, B.PRIORITY_LAST),
            # An observer: it notes the status and never consumes the presence.
            (B.presence("outbound"), self.notePresence, B.PRIORITY_FIRST),
            (B.SESSION_ENDED, self.sessionEnded, B.PRIORITY_NORMAL),
            (B.ACCOUNT_CREATED, self.accountCreated, B.PRIORITY_NORMAL),
        ]

    def _now(self) -> float:
        return self.server.reactor.seconds()

    def _reply(self, iq, seconds: int, status: str = ""):
        reply = iqResult(iq)
        query = reply.addElement((NS_LAST, "query"))
        query["seconds"] = str(seconds)
        if status:
            query.addContent(status)
        return reply

    # -- queries -------------------------------------------------------------------

    def uptime(self, iq, fromJID, toJID) -> bool:
        seconds = max(0, int(self._now() - self.server.startedAt))
        self.server.router.route(self._reply(iq, seconds))
        return True

    def ownLastActivity(self, iq, fromJID, toJID) -> bool:
        # The asking session is one of the account's: it is online (§3).
        self.server.router.route(self._reply(iq, 0))
        return True

    def lastActivity(self, iq, fromJID, toJID) -> bool:
        if fromJID is None:
            return False
        d = self.server.store.runInteraction(
            "last_activity", last_activity_for_txn, toJID.host, toJID.user, fromJID.userhost()
        )
        d.addCallback(self._answer, iq, toJID)
        d.addErrback(self._failed, iq)
        return True

    def _answer(self, result, iq, toJID) -> None:
        authorized, logout = result
        logout = self.pendingLogout(toJID.host, toJID.user) or logout
        if not authorized:
            self.server.router.bounce(iq, "forbidden")
        elif self.server.sessions.resources(toJID.userhost()):
            self.server.router.route(self._reply(iq, 0))
        elif logout is None:
            self.server.router.bounce(iq, "item-not-found", "no logout recorded")
        else:
            when, status = logout
            seconds = max(0, int(self._now() - when.timestamp()))
            self.server.router.route(self._reply(iq, seconds, status))

    # -- queries to a client (§4) -------------------------------------------------------

    def toFullJID(self, stanza, fromJID, toJID) -> bool:
        if stanza.name != "iq" or toJID.resource is None or fromJID is None:
            return False
        if stanza.getAttribute("type") != "get":
            return False
        payload = next(stanza.elements(), None)
        if payload is None or payload.uri != NS_LAST or payload.name != "query":
            return False
        if fromJID.host == toJID.host and fromJID.user in (toJID.user, None):
            return False  # the account's own resources, or its own server
        d = self.server.store.runInteraction(
            "last_authorized", presence_authorized_txn, toJID.host, toJID.user, fromJID.userhost()
        )
        d.addCallback(self._deliverIfAuthorized, stanza, toJID)
        d.addErrback(self._failed, stanza)
        return True

    def _deliverIfAuthorized(self, authorized: bool, stanza, toJID) -> None:
        if not authorized:
            self.server.router.bounce(stanza, "forbidden")
            return
        session = self.server.sessions.get(toJID.userhost(), toJID.resource)
        if session is None:  # gone while we looked (RFC 6121 §8.5.3.2.1)
            self.server.router.bounce(stanza, "service-unavailable")
        else:
            session.deliver(stanza)

    # -- recording logouts ----------------------------------------------------------------

    def notePresence(self, presence, session) -> bool:
        if presence.getAttribute("type") == "unavailable":
            status = next(presence.elements(presence.uri, "status"), None)
            session.data[self.name] = str(status) if status is not None else ""
        else:
            session.data.pop(self.name, None)
        return False

    def sessionEnded(self, session) -> None:
        if self._stopped:
            return  # stop() recorded every account still online
        if self.server.sessions.resources(session.bareJID):
            return  # another resource is still online
        when = datetime.fromtimestamp(self._now(), timezone.utc)
        self._waiting[(session.host, session.username)] = (when, session.data.get(self.name, ""))
        if len(self._waiting) >= self.flushBatch:
            self._flush()
        elif self._flushCall is None and self._write is None:
            self._flushCall = self.server.reactor.callLater(self.flushInterval, self._flush)

    def accountCreated(self, host: str, username: str) -> None:
        """
        Forget a waiting logout of an account of the same name, deleted just
        before (XEP-0077 removal ends the session after the deletion): it is
        not the new account's.
        """
        self._waiting.pop((host, username), None)
        self._unrecorded.pop((host, username), None)

    def pendingLogout(self, host: str, username: str) -> tuple[datetime, str] | None:
        """The account's newest logout not yet in the database (time, status), if any."""
        key = (host, username)
        for logouts in (self._waiting, self._writing, self._unrecorded):
            if key in logouts:
                return logouts[key]
        return None

    def _flush(self) -> None:
        """Write what waits, in one transaction, unless a write is running (its end calls this again)."""
        if self._flushCall is not None:
            if self._flushCall.active():
                self._flushCall.cancel()
            self._flushCall = None
        if self._write is not None:
            return
        if not self._waiting:
            self._checkIdle()
            return
        self._writing, self._waiting = self._waiting, {}
        rows = [(host, username, when, status) for (host, username), (when, status) in self._writing.items()]
        d = self._write = self.server.store.runInteraction("set_last_activity", set_last_activity_txn, rows)
        d.addErrback(self._flushFailed)
        d.addBoth(self._written)

    def _flushFailed(self, failure) -> None:
        """
        If the database was down, record these logouts when it is back,
        before any newer ones; stopping meanwhile loses them, and the store
        has logged the outage.
        """
        if logFailure(self.log, failure, "last activity: recording {n} logouts failed", n=len(self._writing)):
            if not self._unrecorded:
                self.server.store.whenAvailable().addCallback(self._retry)
            self._unrecorded.update(self._writing)

    def _written(self, _: object) -> None:
        self._write = None
        self._writing = {}
        if self._waiting and (self._stopped or self._idleWaiters or len(self._waiting) >= self.flushBatch):
            self._flush()
        elif self._waiting and self._flushCall is None:
            self._flushCall = self.server.reactor.callLater(self.flushInterval, self._flush)
        else:
            self._checkIdle()

    def _retry(self, _: object) -> None:
        unrecorded, self._unrecorded = self._unrecorded, {}
        if self._stopped:
            return
        unrecorded.update(self._waiting)  # the newer logout of an account wins
        self._waiting = unrecorded
        self._flush()

    def _checkIdle(self) -> None:
        if self._write is None and not self._waiting:
            waiters, self._idleWaiters = self._idleWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    def whenIdle(self) -> defer.Deferred:
        """Write the logouts waiting now; fires when every write is done (or met the database down)."""
        d: defer.Deferred = defer.Deferred()
        self._idleWaiters.append(d)
        self._flush()
        return d

    def stop(self) -> defer.Deferred:
        """Record the accounts still online as logging out now, and wait for every write."""
        self._stopped = True
        online: dict[str, object] = {}
        for session in self.server.sessions.all():
            online.setdefault(session.bareJID, session)
        when = datetime.fromtimestamp(self._now(), timezone.utc)
        for s in online.values():
            self._waiting[(s.host, s.username)] = (when, s.data.get(self.name, ""))
        return self.whenIdle()

    def _failed(self, failure, iq) -> None:
        self.storeFailed(failure, iq, "a last activity request")
