"""
The XEP-0114 component listener (jabberd/components.py), as transcripts
over real loopback sockets: a raw component on one side, real clients on
the other.

    component: <stream:stream xmlns='jabber:component:accept' to='muc.localhost'>
    server:    <stream:stream xmlns='jabber:component:accept' from='muc.localhost' id='ID'>
    component: <handshake>sha1(ID + secret)</handshake>
    server:    <handshake/>
    alice:     <message to='room@muc.localhost'/>   ->  arrives at the component
"""

from __future__ import annotations

import hashlib

from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.components import handshakeDigest, inDomain, toClientNamespace
from jabberd.xmlstream import NS_CLIENT, NS_COMPONENT
from tests.harness import NS_STREAM_ERRORS, TranscriptMixin, condition, rawConnect, xml

SECRET = "s3cret"
COMPONENT = "muc.localhost"
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>")
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class HelperTests(unittest.SynchronousTestCase):
    """The pure helpers."""

    def test_handshakeDigest(self):
        """The handshake is the lowercase hex SHA-1 of stream id and secret (XEP-0114 §3)."""
        self.assertEqual(handshakeDigest("3BF96D32", "secret"), hashlib.sha1(b"3BF96D32secret").hexdigest())
        self.assertEqual(handshakeDigest("3BF96D32", "secret"), handshakeDigest("3BF96D32", "secret").lower())

    def test_inDomain(self):
        """A component speaks for its domain and the names under it, nothing else."""
        self.assertTrue(inDomain("muc.localhost", "muc.localhost"))
        self.assertTrue(inDomain("x.muc.localhost", "muc.localhost"))
        self.assertFalse(inDomain("localhost", "muc.localhost"))
        self.assertFalse(inDomain("evilmuc.localhost", "muc.localhost"))

    def test_serverNamespaceDeliveredUnqualified(self):
        """A stanza from federation (jabber:server) reaches the component in the stream's default namespace."""
        from jabberd.components import ComponentListener, ComponentStream

        class Transport:
            data = b""

            def write(self, data):
                self.data += data

        stream = ComponentStream(ComponentListener(None, {}, None))
        stream.transport, stream.authenticated = Transport(), True
        stanza = domish.Element(("jabber:server", "message"))
        stanza["to"] = "room@muc.localhost"
        stanza.addElement("body", content="hi")
        stream.deliver(stanza)
        self.assertEqual(stream.transport.data, b"<message to='room@muc.localhost'><body>hi</body></message>")

    def test_toClientNamespace(self):
        """Stanza and its children in the component namespace become jabber:client; payloads keep theirs."""
        stanza = domish.Element((NS_COMPONENT, "message"), NS_COMPONENT)
        body = stanza.addElement("body", content="hi")
        x = stanza.addElement(("urn:x", "x"))
        inner = x.addElement("y")
        toClientNamespace(stanza)
        self.assertEqual((stanza.uri, body.uri, x.uri, inner.uri), (NS_CLIENT, NS_CLIENT, "urn:x", "urn:x"))


class ComponentListenerTests(TranscriptMixin, unittest.TestCase):
    """Transcripts of the XEP-0114 listener."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(
            components={"listen": ["tcp:0:interface=127.0.0.1"], "secrets": {COMPONENT: SECRET}, "handshake_timeout": 2.0},
            muc={"enabled": False},
        )
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def component(self, to: str = COMPONENT, secret: str = SECRET, expectSuccess: bool = True):
        """A raw component connection through the handshake."""
        client = yield rawConnect(self.server.port("component"))
        self.addCleanup(client.disconnect)
        client.send(HEADER.format(to=to))
        header = yield client.nextHeader()
        client.send(f"<handshake>{handshakeDigest(header['id'], secret)}</handshake>")
        if expectSuccess:
            answer = yield client.next()
            self.assertEqual(xml(answer, NS_COMPONENT), "<handshake/>")
        return client

    @defer.inlineCallbacks
    def streamError(self, client):
        error = yield client.next()
        self.assertEqual(error.name, "error")
        yield client.waitClosed()
        return condition(error, NS_STREAM_ERRORS)

    @defer.inlineCallbacks
    def test_handshakeAndRouting(self):
        """After the handshake, a client's stanza to a room arrives at the component in its namespace, and back."""
        component = yield self.component()
        self.assertEqual(component.header["from"], COMPONENT)
        self.assertEqual(component.header["__default_ns__"], NS_COMPONENT)
        alice, jid = yield self.login("alice@localhost")
        alice.send(f"<message to='room@{COMPONENT}/nick' type='chat' id='m1'><body>hi</body></message>")
        got = yield component.next()
        self.assertEqual(xml(got, NS_COMPONENT),
                         f"<message from='{jid}' id='m1' to='room@{COMPONENT}/nick' type='chat'><body>hi</body></message>")
        self.assertIn(b"<message", component.raw)
        self.assertNotIn(b"jabber:client", component.raw)
        component.send(f"<message from='room@{COMPONENT}/nick' to='{jid}' type='chat' id='m2'><body>hello</body>"
                       "<x xmlns='urn:example'><y/></x></message>")
        reply = yield alice.next()
        self.assertEqual(xml(reply), f"<message from='room@{COMPONENT}/nick' id='m2' to='{jid}' type='chat'>"
                                     "<body>hello</body><x xmlns='urn:example'><y/></x></message>")

    @defer.inlineCallbacks
    def test_wrongHandshake(self):
        """A wrong handshake ends the stream with not-authorized."""
        component = yield self.component(secret="guess", expectSuccess=False)
        self.assertEqual((yield self.streamError(component)), "not-authorized")
        self.assertNotIn(COMPONENT, self.server.components.connected)

    @defer.inlineCallbacks
    def test_unknownDomain(self):
        """A domain with no secret configured is host-unknown."""
        client = yield rawConnect(self.server.port("component"))
        self.addCleanup(client.disconnect)
        client.send(HEADER.format(to="other.localhost"))
        self.assertEqual((yield self.streamError(client)), "host-unknown")

    @defer.inlineCallbacks
    def test_wrongNamespace(self):
        """A client stream on the component port is invalid-namespace."""
        client = yield rawConnect(self.server.port("component"))
        self.addCleanup(client.disconnect)
        client.open(COMPONENT)
        self.assertEqual((yield self.streamError(client)), "invalid-namespace")

    @defer.inlineCallbacks
    def test_stanzaBeforeHandshake(self):
        """Anything but a handshake first is not-authorized."""
        client = yield rawConnect(self.server.port("component"))
        self.addCleanup(client.disconnect)
        client.send(HEADER.format(to=COMPONENT))
        yield client.nextHeader()
        client.send(f"<message from='a@{COMPONENT}' to='alice@localhost'/>")
        self.assertEqual((yield self.streamError(client)), "not-authorized")

    @defer.inlineCallbacks
    def test_conflict(self):
        """A second connection for a connected domain is refused with conflict; the first stays."""
        first = yield self.component()
        second = yield rawConnect(self.server.port("component"))
        self.addCleanup(second.disconnect)
        second.send(HEADER.format(to=COMPONENT))
        self.assertEqual((yield self.streamError(second)), "conflict")
        self.assertFalse(first.lost)
        self.assertEqual(first.transport.getHost().port,
                         self.server.components.connected[COMPONENT].transport.getPeer().port)

    @defer.inlineCallbacks
    def test_invalidFrom(self):
        """A stanza from outside the component's domain ends the stream with invalid-from."""
        component = yield self.component()
        component.send("<message from='alice@localhost' to='alice@localhost'><body>spoof</body></message>")
        self.assertEqual((yield self.streamError(component)), "invalid-from")
        self.assertNotIn(COMPONENT, self.server.components.connected)

    @defer.inlineCallbacks
    def test_subdomainFromAccepted(self):
        """A name under the component's domain is its own: accepted."""
        component = yield self.component()
        alice, jid = yield self.login("alice@localhost")
        component.send(f"<message from='x.{COMPONENT}' to='{jid}' id='s'><body>sub</body></message>")
        got = yield alice.next()
        self.assertEqual(got["from"], f"x.{COMPONENT}")

    @defer.inlineCallbacks
    def test_missingAddresses(self):
        """A component stanza without 'from' is improper-addressing."""
        component = yield self.component()
        component.send("<message to='alice@localhost'/>")
        self.assertEqual((yield self.streamError(component)), "improper-addressing")

    @defer.inlineCallbacks
    def test_bounceWhileDown(self):
        """While the component is not connected, stanzas to it get service-unavailable, not remote-server-not-found."""
        alice, jid = yield self.login("alice@localhost")
        alice.send(f"<iq to='room@{COMPONENT}' type='get' id='q'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        reply = yield alice.next()
        self.assertEqual((reply["type"], condition(reply, STANZAS)), ("error", "service-unavailable"))
        component = yield self.component()
        component.transport.loseConnection()
        yield component.waitClosed()
        alice.send(f"<message to='room@{COMPONENT}' type='chat' id='m'><body>x</body></message>")
        reply = yield alice.next()
        self.assertEqual((reply["type"], condition(reply, STANZAS)), ("error", "service-unavailable"))

    @defer.inlineCallbacks
    def test_discoItemsListsComponents(self):
        """The server's disco#items lists its component domains."""
        yield self.component()
        alice, jid = yield self.login("alice@localhost")
        alice.send("<iq to='localhost' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        reply = yield alice.next()
        self.assertEqual(xml(reply), f"<iq from='localhost' id='d' to='{jid}' type='result'>"
                                     "<query xmlns='http://jabber.org/protocol/disco#items'>"
                                     f"<item jid='{COMPONENT}'/></query></iq>")

    @defer.inlineCallbacks
    def test_handshakeTimeout(self):
        """A component that never completes its handshake is cut off with connection-timeout."""
        client = yield rawConnect(self.server.port("component"))
        self.addCleanup(client.disconnect)
        client.send(HEADER.format(to=COMPONENT))
        yield client.nextHeader()
        self.assertEqual((yield self.streamError(client)), "connection-timeout")

    @defer.inlineCallbacks
    def test_serverShutdown(self):
        """When the server stops, the component's stream ends with system-shutdown."""
        component = yield self.component()
        d = self.streamError(component)
        yield self.server.stopService()
        self.assertEqual((yield d), "system-shutdown")


class ZeroConfigurationTests(TranscriptMixin, unittest.TestCase):
    """Without components configured, no component port is opened."""

    @defer.inlineCallbacks
    def test_noListener(self):
        """The default configuration opens no component listener (the MUC runs in-process)."""
        yield self.startServer()
        self.assertNotIn("component", self.server.ports)
        self.assertIn("conference.localhost", self.server.router.domains)

