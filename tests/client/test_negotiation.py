"""
Stream negotiation details no real server here exercises, against the
scripted receiving entity of L{tests.client.support}: the legacy session
of RFC 3921 (optional since RFC 6121), a server that cannot prove it knows
the password, and a server that never answers.
"""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from jabberd.client import AuthenticationFailed, Client, ClientOptions, ConnectionFailed
from tests.client.support import LOOPBACK, eventually, serveScripted


class SessionTests(unittest.TestCase):
    """The <session/> feature: established only when the server requires it."""

    @defer.inlineCallbacks
    def connect(self, session):
        server, port, cert = serveScripted(self, offer=False, session=session)
        client = Client("alice@localhost", "secret", ClientOptions(host=LOOPBACK, port=port, trust=cert, timeout=10))
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        return server, client

    @defer.inlineCallbacks
    def test_requiredSessionEstablished(self):
        """<session/> without <optional/>: the client sends the session request before it is ready."""
        server, client = yield self.connect("required")
        self.assertEqual(server.sessionRequests, ["<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>"])
        self.assertEqual(client.jid.full(), "alice@localhost/z")

    @defer.inlineCallbacks
    def test_optionalSessionSkipped(self):
        """<session><optional/></session>: no session request, one round trip saved."""
        server, client = yield self.connect("optional")
        self.assertEqual((server.sessionRequests, client.jid.full()), ([], "alice@localhost/z"))

    @defer.inlineCallbacks
    def test_noSessionFeature(self):
        """No session feature at all (RFC 6120 servers): nothing to do."""
        server, client = yield self.connect(None)
        self.assertEqual((server.sessionRequests, client.jid.full()), ([], "alice@localhost/z"))


class ServerProofTests(unittest.TestCase):
    """SCRAM is mutual: a server that cannot prove it knows the password is not believed."""

    @defer.inlineCallbacks
    def test_forgedServerSignature(self):
        """<success/> with a wrong v= fails with invalid-server-signature, and no new stream is started with that server."""
        server, port, cert = serveScripted(self, offer=False, mechanism="SCRAM-SHA-1")
        client = Client("alice@localhost", "secret", ClientOptions(host=LOOPBACK, port=port, trust=cert, timeout=10))
        e = yield self.assertFailure(defer.ensureDeferred(client.connect()), AuthenticationFailed)
        self.assertEqual((e.condition, e.text), ("invalid-server-signature", "the server's signature is wrong"))
        self.assertEqual(len(server.proofs), 1)
        yield eventually(lambda: server.unparsed)
        # Headers seen: the first one, the one after STARTTLS; after the "success" only the closing tag.
        self.assertEqual((server.headers, server.unparsed), (["tls", "sasl"], [b"</stream:stream>"]))


class TimeoutTests(unittest.TestCase):
    """A server that accepts the connection and then says nothing."""

    @defer.inlineCallbacks
    def test_silentServer(self):
        """Negotiation gives up after the timeout with ConnectionFailed naming the server, and drops the connection."""
        factory = protocol.Factory.forProtocol(protocol.Protocol)
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        client = Client("alice@localhost", "secret", ClientOptions(host=LOOPBACK, port=number, insecure=True, timeout=0.5))
        e = yield self.assertFailure(defer.ensureDeferred(client.connect()), ConnectionFailed)
        self.assertEqual(str(e), f"no complete answer from {LOOPBACK}:{number} within 0.5 s")
