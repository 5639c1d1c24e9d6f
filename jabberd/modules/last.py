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

A logout is recorded when an account's last session ends: one write per
logout (logouts in the same reactor turn share one transaction), never one
per stanza.  The status comes from the unavailable presence the client sent
before it left, when it sent one.  When the server stops, the accounts still
online are recorded as logging out then.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import defer

from jabberd import bus as B
from jabberd import router as R
from jabberd.module import Module
from jabberd.store.userdata import last_activity_for_txn, presence_authorized_txn, set_last_activity_txn
from jabberd.xmlstream import iqResult

NS_LAST = "jabber:iq:last"


class LastActivityModule(Module):
    """jabber:iq:last: server uptime, and when accounts were last online."""

    name = "last"
    features = (NS_LAST,)
    accountFeatures = (NS_LAST,)

    def __init__(self, server) -> None:
        super().__init__(server)
        self._logouts: list[tuple[str, str, datetime, str]] = []
        self._flushCall = None
        self._writing: set[defer.Deferred] = set()
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
        self._logouts.append(self._logout(session))
        if self._flushCall is None:
            self._flushCall = self.server.reactor.callLater(0, self._flush)

    def _logout(self, session) -> tuple[str, str, datetime, str]:
        when = datetime.fromtimestamp(self._now(), timezone.utc)
        return (session.host, session.username, when, session.data.get(self.name, ""))

    def _flush(self) -> defer.Deferred:
        self._flushCall = None
        logouts, self._logouts = self._logouts, []
        if not logouts:
            return defer.succeed(None)
        d = self.server.store.runInteraction("set_last_activity", set_last_activity_txn, logouts)
        self._writing.add(d)
        d.addErrback(lambda f: self.log.failure("last activity: recording {n} logouts failed", f, n=len(logouts)))
        d.addBoth(lambda _: self._writing.discard(d))
        return d

    def whenIdle(self) -> defer.Deferred:
        """Write the logouts waiting for the next reactor turn now; fires when every write is done."""
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
            self._flush()
        return defer.DeferredList(list(self._writing))

    def stop(self) -> defer.Deferred:
        """Record the accounts still online as logging out now, and wait for every write."""
        self._stopped = True
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        online: dict[str, object] = {}
        for session in self.server.sessions.all():
            online.setdefault(session.bareJID, session)
        self._logouts.extend(self._logout(s) for s in online.values())
        self._flush()
        return defer.DeferredList(list(self._writing))

    def _failed(self, failure, iq) -> None:
        self.log.failure("last activity: store failed", failure)
        self.server.router.bounce(iq, "internal-server-error")
