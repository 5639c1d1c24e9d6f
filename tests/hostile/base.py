"""
Shared by the attack tests: a real server, an attacker on loopback and the
check that matters after every attack, that another user is still served.
"""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from tests.c2s.test_stream import OPEN, StreamErrorMixin
from tests.harness import LOOPBACK, RawClient

__all__ = ["OPEN", "HostileMixin", "OTHER_ADDRESS"]

#: A second loopback source address (Linux routes all of 127/8 to lo): the
#: "other user" connects from here, so per-address limits on the attacker
#: (127.0.0.1) do not apply to them.
OTHER_ADDRESS = "127.0.0.2"


class HostileMixin(StreamErrorMixin):
    """L{StreamErrorMixin} plus the "someone else is still served" check."""

    @defer.inlineCallbacks
    def connectFrom(self, source: str, kind: str = "c2s"):
        """A L{RawClient} connected from loopback address C{source}."""
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.server.port(kind), bindAddress=(source, 0))
        client = yield endpoint.connect(protocol.Factory.forProtocol(RawClient))
        self.addCleanup(client.disconnect)
        return client

    @defer.inlineCallbacks
    def assertServed(self, address: str = "bob@localhost", source: str = OTHER_ADDRESS):
        """
        A fresh client logs in (STARTTLS, PLAIN, bind) and gets its ping
        answered: the server is up and serving others.
        """
        if not getattr(self, "_bobCreated", False):
            yield self.addUser(address)
            self._bobCreated = True
        username, _, host = address.partition("@")
        client = yield self.connectFrom(source)
        yield self.openStream(client, host)
        yield self.starttls(client, to=host)
        yield self.authPlain(client, username, "secret", host)
        jid = yield self.bindResource(client, "served")
        client.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield client.next()
        self.assertEqual((reply.getAttribute("type"), reply.getAttribute("id"), reply.getAttribute("to")), ("result", "alive", jid))
        yield client.disconnect()
