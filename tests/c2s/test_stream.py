"""
Client streams over real loopback sockets (RFC 6120 §4): the response
header, stream features, keepalives, the closing handshake and every stream
error, written as transcripts: the client sends X, the server answers Y.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.xmlstream import NS_STREAMS, NS_XML
from tests.harness import NS_STREAM_ERRORS, RawClient, TranscriptMixin, condition, xml

OPEN = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'"
)


class StreamErrorMixin(TranscriptMixin):
    @defer.inlineCallbacks
    def assertStreamError(self, client: RawClient, expected: str):
        """
        The server sent its header, then <stream:error> with the condition,
        then </stream:stream>, and closed the TCP connection.
        """
        yield client.waitClosed()
        self.assertTrue(client.headers, "no stream header before the error")
        self.assertTrue(client.raw.startswith(b"<?xml version='1.0'?><stream:stream "), client.raw[:80])
        error = client.elements[-1]
        self.assertEqual((error.uri, error.name), (NS_STREAMS, "error"), xml(error))
        self.assertEqual(condition(error, NS_STREAM_ERRORS), expected, xml(error))
        self.assertTrue(client.raw.endswith(b"</stream:error></stream:stream>"), client.raw[-80:])
        self.assertTrue(client.ended)
        return error

    @defer.inlineCallbacks
    def sendAndExpectError(self, data: str | bytes, expected: str):
        client = yield self.connect()
        client.send(data)
        error = yield self.assertStreamError(client, expected)
        return error


class HeaderTests(StreamErrorMixin, unittest.TestCase):
    """The server's stream header and first features (RFC 6120 §4.7, XEP-0170)."""

    def setUp(self):
        return self.startServer()

    @defer.inlineCallbacks
    def test_responseHeader(self):
        """The server answers a header with version 1.0, a stream id, from = the host and xml:lang."""
        client = yield self.connect()
        client.open("localhost")
        header = yield client.nextHeader()
        self.assertEqual(header["__qname__"], (NS_STREAMS, "stream"))
        self.assertEqual(header["__default_ns__"], "jabber:client")
        self.assertEqual((header["version"], header["from"], header[(NS_XML, "lang")]), ("1.0", "localhost", "en"))
        self.assertGreaterEqual(len(header["id"]), 22)  # 128 random bits, base64url
        self.assertNotIn("to", header)
        self.assertTrue(client.raw.startswith(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='"))

    @defer.inlineCallbacks
    def test_headerEchoesFrom(self):
        """A client 'from' is echoed as the 'to' of the response header (RFC 6120 §4.7.2)."""
        client = yield self.connect()
        client.open("localhost", extra=" from='Juliet@localhost'")
        header = yield client.nextHeader()
        self.assertEqual(header["to"], "juliet@localhost")

    @defer.inlineCallbacks
    def test_streamIdsAreUnique(self):
        """Two streams never share an id."""
        ids = set()
        for _ in range(5):
            client = yield self.connect()
            client.open()
            header = yield client.nextHeader()
            ids.add(header["id"])
        self.assertEqual(len(ids), 5)

    @defer.inlineCallbacks
    def test_firstFeaturesAreStartTLSOnly(self):
        """Before TLS the only feature is STARTTLS, marked required (RFC 6120 §5.3.1)."""
        client = yield self.connect()
        features = yield self.openStream(client)
        self.assertEqual(xml(features), "<features xmlns='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></features>")

    @defer.inlineCallbacks
    def test_hostNameIsPrepared(self):
        """'to' is compared after nameprep: LOCALHOST. is localhost."""
        client = yield self.connect()
        client.open("LOCALHOST.")
        header = yield client.nextHeader()
        self.assertEqual(header["from"], "localhost")


class ClosingTests(StreamErrorMixin, unittest.TestCase):
    """Closing a stream cleanly (RFC 6120 §4.4) and keepalives (§4.6.1)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "secret")

    @defer.inlineCallbacks
    def test_closingHandshake(self):
        """Client sends </stream:stream>; the server closes its stream and then the TCP connection."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send("</stream:stream>")
        yield client.waitClosed()
        self.assertTrue(client.raw.endswith(b"</stream:features></stream:stream>"), client.raw[-60:])

    @defer.inlineCallbacks
    def test_closingHandshakeBoundSession(self):
        """A bound client closing its stream gets </stream:stream> and its session is unbound."""
        client, jid = yield self.login("alice@localhost")
        self.assertIsNotNone(self.server.sessions.get("alice@localhost", "res"))
        client.send("</stream:stream>")
        yield client.waitClosed()
        self.assertTrue(client.raw.endswith(b"</stream:stream>"))
        self.assertIsNone(self.server.sessions.get("alice@localhost", "res"))

    @defer.inlineCallbacks
    def test_whitespaceKeepalives(self):
        """Whitespace between stanzas is accepted and the stream goes on."""
        client, jid = yield self.login("alice@localhost")
        client.send(" ")
        client.send("\n")
        client.send("<iq type='get' id='k1'><query xmlns='urn:example:nobody'/></iq>\r\n \t")
        reply = yield client.next()
        self.assertEqual((reply.name, reply["id"], reply["type"]), ("iq", "k1", "error"))
        client.send(" ")
        client.send("<iq type='get' id='k2'><query xmlns='urn:example:nobody'/></iq>")
        reply = yield client.next()
        self.assertEqual(reply["id"], "k2")
        self.assertFalse(client.lost)


class HeaderErrorTests(StreamErrorMixin, unittest.TestCase):
    """Stream errors caused by the header: always inside a header of our own (RFC 6120 §4.9.1.2)."""

    def setUp(self):
        return self.startServer()

    @defer.inlineCallbacks
    def test_unknownHost(self):
        """A header to a domain this server does not serve gets, byte for byte: header, host-unknown, closing tag."""
        client = yield self.connect()
        client.send(OPEN + " to='example.net' version='1.0'>")
        yield self.assertStreamError(client, "host-unknown")
        streamId = client.headers[0]["id"]
        self.assertEqual(
            client.raw.decode(),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
            f"id='{streamId}' version='1.0' xml:lang='en'>"
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>this server does not serve example.net</text>"
            "</stream:error></stream:stream>",
        )

    @defer.inlineCallbacks
    def test_missingTo(self):
        """A header without 'to' gets host-unknown."""
        yield self.sendAndExpectError(OPEN + " version='1.0'>", "host-unknown")

    @defer.inlineCallbacks
    def test_wrongStreamNamespace(self):
        """A stream element in the wrong namespace gets invalid-namespace."""
        yield self.sendAndExpectError(
            "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>",
            "invalid-namespace",
        )

    @defer.inlineCallbacks
    def test_wrongDefaultNamespace(self):
        """A default namespace other than jabber:client (jabber:server here) gets invalid-namespace."""
        yield self.sendAndExpectError(
            "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
            "invalid-namespace",
        )

    @defer.inlineCallbacks
    def test_version09(self):
        """version='0.9' (pre-XMPP 1.0) gets unsupported-version."""
        yield self.sendAndExpectError(OPEN + " to='localhost' version='0.9'>", "unsupported-version")

    @defer.inlineCallbacks
    def test_versionMissing(self):
        """A header without a version (0.9 by RFC 6120 §4.7.5) gets unsupported-version."""
        yield self.sendAndExpectError(OPEN + " to='localhost'>", "unsupported-version")

    @defer.inlineCallbacks
    def test_versionTwo(self):
        """A major version this server does not speak gets unsupported-version."""
        yield self.sendAndExpectError(OPEN + " to='localhost' version='2.0'>", "unsupported-version")

    @defer.inlineCallbacks
    def test_minorVersionAccepted(self):
        """version='1.1' is XMPP 1.x: the server answers 1.0 and goes on."""
        client = yield self.connect()
        client.send(OPEN + " to='localhost' version='1.1'>")
        features = yield client.next()
        self.assertEqual((client.header["version"], features.name), ("1.0", "features"))

    @defer.inlineCallbacks
    def test_otherEncoding(self):
        """An XML declaration naming ISO-8859-1 gets unsupported-encoding."""
        yield self.sendAndExpectError(
            "<?xml version='1.0' encoding='ISO-8859-1'?>" + OPEN[21:] + " to='localhost' version='1.0'>",
            "unsupported-encoding",
        )

    @defer.inlineCallbacks
    def test_utf16(self):
        """A stream in UTF-16 gets unsupported-encoding, in a UTF-8 header."""
        yield self.sendAndExpectError((OPEN + " to='localhost' version='1.0'>").encode("utf-16"), "unsupported-encoding")

    @defer.inlineCallbacks
    def test_garbageBeforeHeader(self):
        """Bytes that are no XML, before any header, get a header and then not-well-formed."""
        error = yield self.sendAndExpectError(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed")
        self.assertIsNotNone(error)

    @defer.inlineCallbacks
    def test_dtd(self):
        """A DTD before the header gets restricted-xml."""
        yield self.sendAndExpectError("<?xml version='1.0'?><!DOCTYPE stream:stream>" + OPEN[21:] + " to='localhost' version='1.0'>", "restricted-xml")

    @defer.inlineCallbacks
    def test_billionLaughs(self):
        """The billion-laughs payload gets restricted-xml at once, nothing is expanded."""
        from tests.c2s.test_parser import BILLION_LAUGHS

        yield self.sendAndExpectError(BILLION_LAUGHS, "restricted-xml")


class NegotiationErrorTests(StreamErrorMixin, unittest.TestCase):
    """Stream errors after the header, before authentication."""

    def setUp(self):
        return self.startServer(c2s={"stanza_size_limit": 10000, "max_depth": 10, "auth_timeout": 0.5})

    @defer.inlineCallbacks
    def opened(self):
        client = yield self.connect()
        yield self.openStream(client)
        return client

    @defer.inlineCallbacks
    def test_notWellFormed(self):
        """Mismatched tags get not-well-formed."""
        client = yield self.opened()
        client.send("<message><body></message>")
        yield self.assertStreamError(client, "not-well-formed")

    @defer.inlineCallbacks
    def test_comment(self):
        """A comment gets restricted-xml."""
        client = yield self.opened()
        client.send("<!-- hello -->")
        yield self.assertStreamError(client, "restricted-xml")

    @defer.inlineCallbacks
    def test_processingInstruction(self):
        """A processing instruction gets restricted-xml."""
        client = yield self.opened()
        client.send("<?php echo 1; ?>")
        yield self.assertStreamError(client, "restricted-xml")

    @defer.inlineCallbacks
    def test_undefinedEntity(self):
        """An entity reference other than the five predefined gets restricted-xml."""
        client = yield self.opened()
        client.send("<message><body>&ouml;</body></message>")
        yield self.assertStreamError(client, "restricted-xml")

    @defer.inlineCallbacks
    def test_stanzaTooLarge(self):
        """A stanza over c2s.stanza_size_limit gets policy-violation before it ends."""
        client = yield self.opened()
        client.send("<message><body>" + "x" * 12000)
        yield self.assertStreamError(client, "policy-violation")

    @defer.inlineCallbacks
    def test_tooDeep(self):
        """Nesting over c2s.max_depth gets policy-violation."""
        client = yield self.opened()
        client.send("<message>" + "<a>" * 12)
        yield self.assertStreamError(client, "policy-violation")

    @defer.inlineCallbacks
    def test_stanzaBeforeAuthentication(self):
        """A message before authentication gets not-authorized and is not routed."""
        client = yield self.opened()
        client.send("<message to='alice@localhost'><body>hi</body></message>")
        yield self.assertStreamError(client, "not-authorized")

    @defer.inlineCallbacks
    def test_unknownElement(self):
        """An element that is neither a stanza nor negotiation gets unsupported-stanza-type."""
        client = yield self.opened()
        client.send("<foo xmlns='urn:example:foo'/>")
        yield self.assertStreamError(client, "unsupported-stanza-type")

    @defer.inlineCallbacks
    def test_authenticationTimeout(self):
        """A client that does not authenticate within c2s.auth_timeout gets connection-timeout."""
        client = yield self.opened()
        yield self.assertStreamError(client, "connection-timeout")

    @defer.inlineCallbacks
    def test_timeoutBeforeHeader(self):
        """The timeout also ends a connection that never sent a header, inside a header of ours."""
        client = yield self.connect()
        yield self.assertStreamError(client, "connection-timeout")


class BoundStreamErrorTests(StreamErrorMixin, unittest.TestCase):
    """Stream errors of a bound session (RFC 6120 §4.9.3)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")

    @defer.inlineCallbacks
    def test_invalidFrom(self):
        """A stanza whose 'from' names another account gets invalid-from and is not delivered."""
        bob, _ = yield self.login("bob@localhost", resource="b")
        alice, _ = yield self.login("alice@localhost")
        alice.send("<message from='bob@localhost/b' to='bob@localhost/b'><body>spoof</body></message>")
        yield self.assertStreamError(alice, "invalid-from")
        bob.send("<iq type='get' id='probe'><query xmlns='urn:example:nobody'/></iq>")
        reply = yield bob.next()
        self.assertEqual(reply["id"], "probe")  # nothing from alice arrived before

    @defer.inlineCallbacks
    def test_invalidFromOtherResource(self):
        """A 'from' with the account's bare JID but another resource gets invalid-from."""
        alice, _ = yield self.login("alice@localhost")
        alice.send("<presence from='alice@localhost/other'/>")
        yield self.assertStreamError(alice, "invalid-from")

    @defer.inlineCallbacks
    def test_malformedFrom(self):
        """A 'from' that is no JID gets invalid-from."""
        alice, _ = yield self.login("alice@localhost")
        alice.send("<presence from='@@'/>")
        yield self.assertStreamError(alice, "invalid-from")

    @defer.inlineCallbacks
    def test_unsupportedStanzaType(self):
        """An unknown top-level element in jabber:client gets unsupported-stanza-type."""
        alice, _ = yield self.login("alice@localhost")
        alice.send("<note xmlns='jabber:client'>hi</note>")
        yield self.assertStreamError(alice, "unsupported-stanza-type")

    @defer.inlineCallbacks
    def test_notWellFormedAfterBind(self):
        """Broken XML from a bound client gets not-well-formed and unbinds it."""
        alice, _ = yield self.login("alice@localhost")
        alice.send("<message><body>x</bdy></message>")
        yield self.assertStreamError(alice, "not-well-formed")
        self.assertIsNone(self.server.sessions.get("alice@localhost", "res"))
