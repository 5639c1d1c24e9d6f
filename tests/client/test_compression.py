"""
XEP-0138 stream compression, client side, against the tiny scripted
receiving entity of L{tests.client.support} (jabberd's server side of
XEP-0138 comes later): it speaks STARTTLS, SASL PLAIN, the compression
handshake and resource binding, then echoes messages, compressing and
decompressing with zlib like a server.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.client import Client, ClientOptions
from tests.client.support import LOOPBACK, NS_COMPRESS, Inbox, eventually, serveScripted

class CompressionTests(unittest.TestCase):
    """The client's half of XEP-0138."""

    def serve(self, **kw):
        factory, self.port, self.cert = serveScripted(self, **kw)
        return factory

    @defer.inlineCallbacks
    def connect(self, compression: bool = True) -> Client:
        client = Client("alice@localhost", "secret", ClientOptions(host=LOOPBACK, port=self.port, trust=self.cert, compression=compression, timeout=10))
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        return client

    @defer.inlineCallbacks
    def test_zlibNegotiatedAfterTLSAndSASL(self):
        """Offered zlib after authentication, the client asks for it, restarts compressed, binds and chats."""
        server = self.serve()
        client = yield self.connect()
        self.assertEqual(server.compressRequest, f"<compress xmlns='{NS_COMPRESS}'><method>zlib</method></compress>")
        self.assertEqual((client.compressed, client.authenticator.compression.result, client.jid.full()), (True, "zlib", "alice@localhost/z"))
        # The compressed stream began with a fresh header (XEP-0138 §3) and carried the bind request.
        self.assertTrue(
            server.decompressed.startswith(
                b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'"
                b" to='localhost' version='1.0'><iq id='"
            ),
            server.decompressed,
        )

        inbox = Inbox()
        client.messages.addListener(inbox)
        sent = client.messages.send("echo@localhost", "squeeze me", type="chat")
        echo = yield inbox.next()
        self.assertEqual((echo.sender.full(), echo.body), ("echo@localhost", "squeeze me"))
        self.assertEqual(
            server.messages,
            [f"<message xmlns='jabber:client' to='echo@localhost' type='chat' id='{sent}'><body>squeeze me</body></message>"],
        )
        self.assertTrue(server.compressedIn > 0)

    @defer.inlineCallbacks
    def test_failureIsNotFatal(self):
        """<failure><setup-failed/></failure> leaves the stream uncompressed but working (XEP-0138 §3)."""
        self.serve(refuse="setup-failed")
        client = yield self.connect()
        self.assertEqual((client.compressed, client.authenticator.compression.result, client.jid.full()), (False, "setup-failed", "alice@localhost/z"))
        inbox = Inbox()
        client.messages.addListener(inbox)
        client.messages.send("echo@localhost", "plain", type="chat")
        echo = yield inbox.next()
        self.assertEqual(echo.body, "plain")

    @defer.inlineCallbacks
    def test_offByDefault(self):
        """Without compression=True the offer is ignored (XEP-0138 §9: zlib under TLS leaks)."""
        server = self.serve()
        client = yield self.connect(compression=False)
        self.assertEqual((client.compressed, server.compressRequest, client.authenticator.compression.result), (False, None, None))

    @defer.inlineCallbacks
    def test_corruptDataEndsStream(self):
        """Bytes that are not zlib end the stream with undefined-condition + <processing-failed/> (XEP-0138 §3)."""
        server = self.serve()
        client = yield self.connect()
        server.protocols[0].transport.write(b"this is not zlib")
        why = yield client.disconnected
        self.assertIsNotNone(why)
        yield eventually(lambda: server.errors)
        self.assertEqual(
            server.errors,
            [[("urn:ietf:params:xml:ns:xmpp-streams", "undefined-condition", []), (NS_COMPRESS, "failure", ["processing-failed"])]],
        )
