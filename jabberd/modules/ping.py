"""
XMPP Ping (XEP-0199): the server answers pings to a hosted domain, and to an
account's bare JID on the account's behalf (§4.2, §4.4: a ping to a bare
JID is handled by the server, not the client).

A ping to the sender's own bare JID (or without 'to') is answered at once.
A ping to another account's bare JID is answered only when that account
exists: RFC 6121 §8.5.1 requires service-unavailable for an iq to an account
that does not exist.  Pings to full JIDs are routed to the client like any
iq.
"""

from __future__ import annotations

from jabberd import bus as B
from jabberd.module import Module
from jabberd.xmlstream import iqResult

NS_PING = "urn:xmpp:ping"


class PingModule(Module):
    """Answers urn:xmpp:ping for hosted domains and accounts' bare JIDs."""

    name = "ping"
    features = (NS_PING,)
    accountFeatures = (NS_PING,)

    def hooks(self):
        return [
            (B.iq("get", B.HOST, NS_PING, "ping"), self.pong, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_PING, "ping"), self.pong, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_PING, "ping"), self.pongForAccount, B.PRIORITY_NORMAL),
        ]

    def pong(self, iq, fromJID, toJID) -> bool:
        self.server.router.route(iqResult(iq))
        return True

    def pongForAccount(self, iq, fromJID, toJID) -> bool:
        d = self.server.accounts.exists(toJID.host, toJID.user)
        d.addCallback(self._pongIfExists, iq)
        d.addErrback(self._failed, iq)
        return True

    def _pongIfExists(self, exists: bool, iq) -> None:
        if exists:
            self.server.router.route(iqResult(iq))
        else:
            self.server.router.bounce(iq, "service-unavailable")

    def _failed(self, failure, iq) -> None:
        self.storeFailed(failure, iq, "the account lookup of a ping")
