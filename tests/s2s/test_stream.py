"""
Raw transcripts against jabberd's s2s listener: a test plays the peer
server byte by byte (stream headers, STARTTLS, SASL EXTERNAL, dialback)
and reads exactly what jabberd answers.
"""

from __future__ import annotations

import base64
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from tests.harness import ClientTLSOptions, rawConnect
from tests.s2s.support import Node, TestCA, combined, nextMatching, selfSigned, xml

STREAMS = "http://etherx.jabber.org/streams"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
DB = "jabber:server:dialback"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def header(to="b.example", sender="a.example", ns="jabber:server", version=" version='1.0'"):
    frm = f" from='{sender}'" if sender else ""
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:db='{DB}' "
        f"xmlns:stream='{STREAMS}' to='{to}'{frm}{version}>"
    )


def streamError(client) -> str:
    """The condition of the stream error the server sent last."""
    errors = [e for e in client.elements if e.name == "error" and e.uri == STREAMS]
    return next(c.name for c in errors[-1].elements() if c.name != "text")


class StreamTestMixin:
    """A node serving b.example (and a node a.example to dial back to, when asked)."""

    @defer.inlineCallbacks
    def startB(self, **s2s):
        self.b = Node(self, "b.example", **s2s)
        yield self.b.start()

    @defer.inlineCallbacks
    def connect(self):
        client = yield rawConnect(self.b.s2sPort)
        self.addCleanup(client.disconnect)
        return client

    @defer.inlineCallbacks
    def secured(self, certFile=None, sender="a.example"):
        """A peer stream to b.example after STARTTLS; returns (client, features after TLS)."""
        client = yield self.connect()
        client.send(header(sender=sender))
        features = yield client.next()
        client.send(f"<starttls xmlns='{TLS}'/>")
        proceed = yield client.next()
        self.assertEqual(xml(proceed), f"<proceed xmlns='{TLS}'/>")
        client.startTLS(ClientTLSOptions(sni="b.example", certFile=certFile))
        client.send(header(sender=sender))
        features = yield client.next()
        return client, features


class HeaderTests(StreamTestMixin, unittest.TestCase):
    """Stream headers and the first features."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startB()

    @defer.inlineCallbacks
    def test_headerAndFeatures(self):
        """jabberd answers with its own header (jabber:server, dialback namespace) and requires STARTTLS first."""
        client = yield self.connect()
        client.send(header())
        features = yield client.next()
        attrs = client.header
        self.assertEqual(
            (attrs["__default_ns__"], attrs["from"], attrs["to"], attrs["version"], attrs["__prefixes__"]),
            ("jabber:server", "b.example", "a.example", "1.0", {"db": DB, "stream": STREAMS}),
        )
        self.assertIn(b"xmlns:db='jabber:server:dialback'", client.raw)
        self.assertEqual(xml(features), f"<features xmlns='{STREAMS}'><starttls xmlns='{TLS}'><required/></starttls></features>")

    @defer.inlineCallbacks
    def test_clientNamespace(self):
        """A jabber:client stream on the s2s port: invalid-namespace."""
        client = yield self.connect()
        client.send(header(ns="jabber:client"))
        yield client.waitClosed()
        self.assertEqual(streamError(client), "invalid-namespace")

    @defer.inlineCallbacks
    def test_hostUnknown(self):
        """A stream to a domain not served here: host-unknown."""
        client = yield self.connect()
        client.send(header(to="nowhere.example"))
        yield client.waitClosed()
        self.assertEqual(streamError(client), "host-unknown")

    @defer.inlineCallbacks
    def test_dialbackBeforeTLS(self):
        """A dialback request before STARTTLS gets the policy-violation dialback error; the stream stays."""
        client = yield self.connect()
        client.send(header())
        yield client.next()
        client.send(f"<db:result xmlns:db='{DB}' from='a.example' to='b.example'>abc</db:result>")
        answer = yield client.next()
        self.assertEqual(
            xml(answer),
            f"<result from='b.example' to='a.example' type='error' xmlns='{DB}'><error type='modify' xmlns='jabber:server'>"
            f"<policy-violation xmlns='{STANZAS}'/></error></result>",
        )
        self.assertFalse(client.lost)

    @defer.inlineCallbacks
    def test_stanzaBeforeAuthentication(self):
        """A stanza before any domain is authenticated: not-authorized, and the stream closes."""
        client, features = yield self.secured()
        self.assertEqual(
            xml(features), f"<features xmlns='{STREAMS}'><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></features>"
        )
        client.send("<message from='x@a.example' to='y@b.example'><body>hi</body></message>")
        yield client.waitClosed()
        self.assertEqual(streamError(client), "not-authorized")


class AuthoritativeTests(StreamTestMixin, unittest.TestCase):
    """jabberd answers verification requests for keys it made (XEP-0220 §2.2.2)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startB()

    @defer.inlineCallbacks
    def test_verify(self):
        """A key b.example made for its stream to a.example is valid; any other is invalid; an unknown domain is item-not-found."""
        client, _ = yield self.secured()
        key = self.b.fed.keys.make("a.example", "b.example", "S1")
        client.send(f"<db:verify xmlns:db='{DB}' from='a.example' to='b.example' id='S1'>{key}</db:verify>")
        client.send(f"<db:verify xmlns:db='{DB}' from='a.example' to='b.example' id='S2'>{key}</db:verify>")
        client.send(f"<db:verify xmlns:db='{DB}' from='a.example' to='x.example' id='S1'>{key}</db:verify>")
        answers = []
        for _ in range(3):
            answers.append(xml((yield client.next())))
        self.assertEqual(
            answers,
            [
                f"<verify from='b.example' id='S1' to='a.example' type='valid' xmlns='{DB}'/>",
                f"<verify from='b.example' id='S2' to='a.example' type='invalid' xmlns='{DB}'/>",
                f"<verify from='x.example' id='S1' to='a.example' type='error' xmlns='{DB}'><error type='cancel' xmlns='jabber:server'>"
                f"<item-not-found xmlns='{STANZAS}'/></error></verify>",
            ],
        )


class DialbackTests(StreamTestMixin, unittest.TestCase):
    """A peer claiming a.example; jabberd dials back to the real a.example (another node) to check."""

    @defer.inlineCallbacks
    def setUp(self):
        self.a = Node(self, "a.example")
        yield self.startB(routes=self.a.route())
        self.a.configure(routes=self.b.route())
        yield self.a.start()
        yield self.b.addUser("bob@b.example")

    @defer.inlineCallbacks
    def dialback(self, key=None, sender="a.example"):
        client, _ = yield self.secured()
        streamId = client.header["id"]
        key = key or self.a.fed.keys.make("b.example", sender, streamId)
        client.send(f"<db:result xmlns:db='{DB}' from='{sender}' to='b.example'>{key}</db:result>")
        answer = yield client.next(10)
        return client, answer

    @defer.inlineCallbacks
    def test_valid(self):
        """a.example's own key is confirmed by a.example: type='valid', and stanzas from a.example are routed."""
        bob = yield self.b.login("bob@b.example", create=False)
        client, answer = yield self.dialback()
        self.assertEqual(xml(answer), f"<result from='b.example' to='a.example' type='valid' xmlns='{DB}'/>")
        client.send("<message from='alice@a.example/x' to='bob@b.example/r' id='m1'><body>hi</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(xml(got), "<message from='alice@a.example/x' id='m1' to='bob@b.example/r'><body>hi</body></message>")

    @defer.inlineCallbacks
    def test_invalid(self):
        """A key a.example did not make: type='invalid', and the stream closes."""
        client, answer = yield self.dialback(key="0" * 64)
        self.assertEqual(xml(answer), f"<result from='b.example' to='a.example' type='invalid' xmlns='{DB}'/>")
        yield client.waitClosed()

    @defer.inlineCallbacks
    def test_unknownTarget(self):
        """A request for a domain not served here: the item-not-found dialback error; the stream stays."""
        client, _ = yield self.secured()
        client.send(f"<db:result xmlns:db='{DB}' from='a.example' to='x.example'>abc</db:result>")
        answer = yield client.next()
        self.assertEqual(
            xml(answer),
            f"<result from='x.example' to='a.example' type='error' xmlns='{DB}'><error type='cancel' xmlns='jabber:server'>"
            f"<item-not-found xmlns='{STANZAS}'/></error></result>",
        )
        self.assertFalse(client.lost)

    @defer.inlineCallbacks
    def test_spoofedFrom(self):
        """After a.example is authenticated, a stanza from another domain: invalid-from."""
        client, answer = yield self.dialback()
        client.send("<message from='mallory@c.example' to='bob@b.example'><body>hi</body></message>")
        yield client.waitClosed()
        self.assertEqual(streamError(client), "invalid-from")

    @defer.inlineCallbacks
    def test_notOurs(self):
        """After a.example is authenticated, a stanza to a domain not served here: host-unknown."""
        client, answer = yield self.dialback()
        client.send("<message from='alice@a.example' to='carol@c.example'><body>hi</body></message>")
        yield client.waitClosed()
        self.assertEqual(streamError(client), "host-unknown")

    @defer.inlineCallbacks
    def test_noAddresses(self):
        """After a.example is authenticated, a stanza without 'to': improper-addressing."""
        client, answer = yield self.dialback()
        client.send("<message from='alice@a.example'><body>hi</body></message>")
        yield client.waitClosed()
        self.assertEqual(streamError(client), "improper-addressing")


class ExternalTests(StreamTestMixin, unittest.TestCase):
    """SASL EXTERNAL (XEP-0178) with a certificate from the CA b.example trusts."""

    @defer.inlineCallbacks
    def setUp(self):
        self.ca = TestCA(tempfile.mkdtemp(prefix="jabberd-s2s-ca-"))
        yield self.startB(trust=self.ca.path)
        yield self.b.addUser("bob@b.example")

    @defer.inlineCallbacks
    def test_external(self):
        """EXTERNAL is offered, succeeds for a.example, and after the restart a.example's stanzas are routed."""
        bob = yield self.b.login("bob@b.example", create=False)
        client, features = yield self.secured(certFile=combined(self.ca.issue("a.example")))
        self.assertEqual(
            xml(features),
            f"<features xmlns='{STREAMS}'><mechanisms xmlns='{SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"
            "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></features>",
        )
        client.send(f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>{base64.b64encode(b'a.example').decode()}</auth>")
        success = yield client.next()
        self.assertEqual(xml(success), f"<success xmlns='{SASL}'/>")
        client.restart()
        client.send(header())
        features = yield client.next()
        self.assertEqual(
            xml(features), f"<features xmlns='{STREAMS}'><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></features>"
        )
        client.send("<message from='alice@a.example/x' to='bob@b.example/r' id='m1'><body>hi</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(xml(got), "<message from='alice@a.example/x' id='m1' to='bob@b.example/r'><body>hi</body></message>")

    @defer.inlineCallbacks
    def test_otherDomain(self):
        """EXTERNAL for a domain other than the stream's 'from' fails with invalid-authzid."""
        client, _ = yield self.secured(certFile=combined(self.ca.issue("a.example")))
        client.send(f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>{base64.b64encode(b'c.example').decode()}</auth>")
        failure = yield client.next()
        self.assertEqual(xml(failure), f"<failure xmlns='{SASL}'><invalid-authzid/></failure>")

    @defer.inlineCallbacks
    def test_selfSignedNotOffered(self):
        """A self-signed certificate: no EXTERNAL offered, and asking anyway fails with not-authorized."""
        client, features = yield self.secured(certFile=combined(selfSigned(tempfile.mkdtemp(), "a.example")))
        self.assertEqual(
            xml(features), f"<features xmlns='{STREAMS}'><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></features>"
        )
        client.send(f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>=</auth>")
        failure = yield client.next()
        self.assertEqual(xml(failure), f"<failure xmlns='{SASL}'><not-authorized/></failure>")

    @defer.inlineCallbacks
    def test_serverOnlyCertificate(self):
        """A CA certificate without clientAuth: no EXTERNAL, but a dialback request is accepted on the certificate alone."""
        client, features = yield self.secured(certFile=combined(self.ca.issue("a.example", clientAuth=False)))
        self.assertNotIn(SASL, xml(features))
        client.send(f"<db:result xmlns:db='{DB}' from='a.example' to='b.example'>whatever</db:result>")
        answer = yield client.next()
        self.assertEqual(xml(answer), f"<result from='b.example' to='a.example' type='valid' xmlns='{DB}'/>")
