"""
XMPP over WebSocket (RFC 7395) with autobahn's client over real loopback
connections, against the in-process transport and the standalone connection
manager.  Transcripts: the client sends one message, the server answers.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from components.bosh.framing import NS_FRAMING
from jabberd.xmlstream import NS_CLIENT, NS_STREAMS
from tests.components.bosh.support import WSMixin, deferLater
from tests.harness import NS_SASL, xml

MECHANISMS_TLS = (
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism>"
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>"
)


class WebSocketMixin(WSMixin):
    """RFC 7395 framing, negotiation and limits."""

    @defer.inlineCallbacks
    def test_subprotocolRequired(self):
        """A handshake without the 'xmpp' subprotocol is refused with HTTP 400."""
        yield self.startWeb()
        yield self.assertFailure(self.wsConnect(protocols=("chat",)), ConnectionError)

    @defer.inlineCallbacks
    def test_originRefused(self):
        """A browser Origin not in cors_origins is refused with HTTP 403."""
        yield self.startWeb(http={"cors_origins": ["https://app.example.org"]})
        yield self.assertFailure(self.wsConnect(origin="https://evil.example.org"), ConnectionError)
        client = yield self.wsConnect(origin="https://app.example.org")
        self.assertEqual(client.websocket_protocol_in_use, "xmpp")

    @defer.inlineCallbacks
    def test_open(self):
        """<open/> is answered with <open/> (from, id, version, xml:lang) and the features, each stanza-level element self-contained."""
        yield self.startWeb()
        client = yield self.wsConnect()
        self.assertEqual(client.websocket_protocol_in_use, "xmpp")
        header, features = yield self.wsOpen(client)
        self.assertEqual((header.uri, header.name), (NS_FRAMING, "open"))
        self.assertEqual((header["from"], header["version"], header.getAttribute(("http://www.w3.org/XML/1998/namespace", "lang"))), ("localhost", "1.0", "en"))
        self.assertTrue(header["id"])
        self.assertEqual((features.uri, features.name), (NS_STREAMS, "features"))
        mechanisms = [str(m) for m in features.mechanisms.elements()]
        self.assertEqual(mechanisms[-3:], ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
        self.assertTrue(client.messages[1].startswith(b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'"))

    @defer.inlineCallbacks
    def test_chat(self):
        """After SASL, a new <open/> and bind, stanzas go both ways, one per message, with xmlns='jabber:client'."""
        yield self.startWeb()
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        bob, _ = yield self.login("bob@localhost")
        client, jid = yield self.wsLogin("alice@localhost")
        self.assertEqual(jid, "alice@localhost/ws")
        bob.send("<message to='alice@localhost/ws' type='chat' id='w1'><body>hi</body></message>")
        message = yield client.next()
        self.assertEqual(client.messages[-1], b"<message xmlns='jabber:client' to='alice@localhost/ws' type='chat' id='w1' from='bob@localhost/res'><body>hi</body></message>")
        self.assertEqual(xml(message), "<message from='bob@localhost/res' id='w1' to='alice@localhost/ws' type='chat'><body>hi</body></message>")
        client.sendText(f"<message xmlns='{NS_CLIENT}' to='bob@localhost/res' type='chat' id='w2'><body>hello</body></message>")
        message = yield bob.next()
        self.assertEqual(xml(message), "<message from='alice@localhost/ws' id='w2' to='bob@localhost/res' type='chat'><body>hello</body></message>")

    @defer.inlineCallbacks
    def test_close(self):
        """The client's <close/> is answered with <close/>, the session ends, and the WebSocket closes cleanly (1000)."""
        yield self.startWeb()
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        bob, _ = yield self.login("bob@localhost")
        client, _ = yield self.wsLogin("alice@localhost")
        client.sendText(f"<presence xmlns='{NS_CLIENT}' to='bob@localhost/res'/>")
        yield bob.next()
        client.sendText(f"<close xmlns='{NS_FRAMING}'/>")
        close = yield client.next()
        self.assertEqual(xml(close, NS_CLIENT), f"<close xmlns='{NS_FRAMING}'/>")
        code = yield client.closed
        self.assertEqual(code, 1000)
        presence = yield bob.next()
        self.assertEqual(xml(presence), "<presence from='alice@localhost/ws' to='bob@localhost/res' type='unavailable'/>")

    @defer.inlineCallbacks
    def test_connectionLost(self):
        """A WebSocket that just goes away ends the session with unavailable presence."""
        yield self.startWeb()
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        bob, _ = yield self.login("bob@localhost")
        client, _ = yield self.wsLogin("alice@localhost")
        client.sendText(f"<presence xmlns='{NS_CLIENT}' to='bob@localhost/res'/>")
        yield bob.next()
        client.dropConnection(abort=True)
        presence = yield bob.next()
        self.assertEqual(presence.getAttribute("type"), "unavailable")

    @defer.inlineCallbacks
    def test_twoElements(self):
        """A message with two elements is not-well-formed: stream error, <close/>, WebSocket closed."""
        yield self.startWeb()
        client = yield self.wsConnect()
        yield self.wsOpen(client)
        client.sendText(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'/><abort xmlns='{NS_SASL}'/>")
        error = yield client.next()
        self.assertEqual(xml(error, NS_CLIENT), "<error xmlns='http://etherx.jabber.org/streams'><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-streams'>a WebSocket message must be exactly one complete element (RFC 7395 §3.3.3)</text></error>")
        close = yield client.next()
        self.assertEqual(close.name, "close")
        yield client.closed

    @defer.inlineCallbacks
    def test_partialElement(self):
        """A message holding part of an element is not-well-formed."""
        yield self.startWeb()
        client = yield self.wsConnect()
        yield self.wsOpen(client)
        client.sendText(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>")
        error = yield client.next()
        self.assertEqual(error.firstChildElement().name, "not-well-formed")

    @defer.inlineCallbacks
    def test_stanzaTooLarge(self):
        """A stanza over c2s.stanza_size_limit gets policy-violation, as on TCP."""
        yield self.startWeb(c2s={"stanza_size_limit": 10000})
        client = yield self.wsConnect()
        yield self.wsOpen(client)
        client.sendText(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{'A' * 20000}</auth>")
        error = yield client.next()
        self.assertEqual((error.name, error.firstChildElement().name), ("error", "policy-violation"))
        close = yield client.next()
        self.assertEqual(close.name, "close")

    @defer.inlineCallbacks
    def test_messageTooLarge(self):
        """A message over websocket_max_message_size closes the WebSocket with 1009."""
        yield self.startWeb(http={"websocket_max_message_size": 10000})
        client = yield self.wsConnect()
        yield self.wsOpen(client)
        client.sendText("<x>" + "A" * 20000 + "</x>")
        code = yield client.closed
        self.assertEqual(code, 1009)

    @defer.inlineCallbacks
    def test_stanzaBeforeOpen(self):
        """Anything before <open/> is a stream error."""
        yield self.startWeb()
        client = yield self.wsConnect()
        client.sendText(f"<message xmlns='{NS_CLIENT}' to='bob@localhost'/>")
        header = yield client.next()
        self.assertEqual(header.name, "open")
        error = yield client.next()
        self.assertEqual(error.name, "error")

    @defer.inlineCallbacks
    def test_hostUnknown(self):
        """<open/> to a domain not served gets host-unknown."""
        yield self.startWeb()
        client = yield self.wsConnect()
        client.sendText(f"<open xmlns='{NS_FRAMING}' to='example.net' version='1.0'/>")
        yield client.next()
        error = yield client.next()
        self.assertEqual(error.firstChildElement().name, "host-unknown")

    @defer.inlineCallbacks
    def test_seeOtherURI(self):
        """With secure_url set, an <open/> over plain ws:// gets <close see-other-uri='wss://...'/>."""
        yield self.startWeb(http={"secure_url": "https://chat.example.org"})
        client = yield self.wsConnect(secure=False)
        client.sendText(f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>")
        close = yield client.next()
        self.assertEqual(xml(close, NS_CLIENT), f"<close see-other-uri='wss://chat.example.org/xmpp-websocket' xmlns='{NS_FRAMING}'/>")
        yield client.closed

    @defer.inlineCallbacks
    def test_ping(self):
        """The server pings every websocket_ping_interval seconds."""
        yield self.startWeb(http={"websocket_ping_interval": 0.3})
        client = yield self.wsConnect()
        yield deferLater(1.2)
        self.assertGreaterEqual(client.pings, 2)
        self.assertFalse(client.closed.called)

    @defer.inlineCallbacks
    def test_noPong(self):
        """A peer that answers no ping is disconnected."""
        yield self.startWeb(http={"websocket_ping_interval": 0.3})
        client = yield self.wsConnect()
        client.sendPong = lambda payload=None: None  # a dead peer
        yield client.closed


class InProcessWebSocket(WebSocketMixin, unittest.TestCase):
    """WebSocket against the in-process transport."""

    @defer.inlineCallbacks
    def test_channelBinding(self):
        """Over wss one TLS connection carries the stream, so SCRAM-*-PLUS is offered."""
        yield self.startWeb()
        client = yield self.wsConnect()
        _, features = yield self.wsOpen(client)
        mechanisms = [str(m) for m in features.mechanisms.elements()]
        self.assertIn("SCRAM-SHA-256-PLUS", mechanisms)


class StandaloneWebSocket(WebSocketMixin, unittest.TestCase):
    """WebSocket against the standalone connection manager."""

    standalone = True

    @defer.inlineCallbacks
    def test_noPlus(self):
        """Relayed, the core's channel binding is not the client's: no -PLUS mechanism, no STARTTLS."""
        yield self.startWeb()
        client = yield self.wsConnect()
        _, features = yield self.wsOpen(client)
        self.assertEqual([xml(c, NS_STREAMS) for c in features.elements()], [MECHANISMS_TLS])



class ClosingTests(unittest.SynchronousTestCase):
    """The moment between a WebSocket starting to close and its onClose."""

    def test_stanzaWhileClosingIsBounced(self):
        """A stanza for a WebSocket already closing is not sent on it (autobahn would raise) but bounced with recipient-unavailable when the session ends."""
        from types import SimpleNamespace

        from components.bosh.websocket import XMPPWebSocketProtocol

        class Upstream:
            def __init__(self):
                self.received, self.aborted = [], False

            def receive(self, element):
                self.received.append(element)

            def abort(self):
                self.aborted = True

        protocol = XMPPWebSocketProtocol()
        protocol.factory = SimpleNamespace(connections=set())
        protocol.upstream = upstream = Upstream()
        protocol.state = protocol.STATE_CLOSING  # the client's close frame arrived
        protocol.send(f"<message xmlns='{NS_CLIENT}' from='bob@localhost/r' to='alice@localhost/ws' id='m1' type='chat'><body>hi</body></message>".encode())
        self.assertFalse(upstream.aborted)
        protocol.onClose(False, 1006, None)
        self.assertEqual([xml(e) for e in upstream.received],
                         ["<message id='m1' to='bob@localhost/r' type='error'><body>hi</body>"
                          "<error type='wait'><recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"])
        self.assertTrue(upstream.aborted)
