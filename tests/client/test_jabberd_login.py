"""
The client against jabberd's own server: logging in with every mechanism
and transport, and every way it can fail (certificate, password, host,
port), each failure as its own exception.
"""

from __future__ import annotations

import os
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.client import AuthenticationFailed, Client, ConnectionFailed, StreamError, TLSFailed
from tests.client.support import CertificateAuthority, eventually, freePort, jabberdOptions, loginJabberd, makeServerCertificate
from tests.harness import ServerMixin


class LoginTests(ServerMixin, unittest.TestCase):
    """Every SASL mechanism jabberd offers, over STARTTLS and direct TLS."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "secret")

    @defer.inlineCallbacks
    def login(self, **kw):
        client = yield loginJabberd(self, "alice@localhost/home", **kw)
        return (client.jid.full(), client.mechanism, client.authenticator.channelBinding, client.authenticator.downgradeProtected)

    @defer.inlineCallbacks
    def test_defaultIsStrongest(self):
        """Unrestricted, the client picks SCRAM-SHA-256-PLUS with tls-exporter on TLS 1.3 and checks XEP-0474."""
        result = yield self.login()
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-256-PLUS", "tls-exporter", True))
        self.assertIsNotNone(self.server.sessions.get("alice@localhost", "home"))

    @defer.inlineCallbacks
    def test_scramSha1PlusTlsUnique(self):
        """On TLS 1.2 SCRAM-SHA-1-PLUS binds to tls-unique."""
        result = yield self.login(mechanisms=["SCRAM-SHA-1-PLUS"], tlsMaxVersion="1.2")
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-1-PLUS", "tls-unique", True))

    @defer.inlineCallbacks
    def test_scramSha256PlusTlsUnique(self):
        """On TLS 1.2 SCRAM-SHA-256-PLUS binds to tls-unique too."""
        result = yield self.login(mechanisms=["SCRAM-SHA-256-PLUS"], tlsMaxVersion="1.2")
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-256-PLUS", "tls-unique", True))

    @defer.inlineCallbacks
    def test_scramSha1PlusExporter(self):
        """On TLS 1.3 SCRAM-SHA-1-PLUS binds to tls-exporter."""
        result = yield self.login(mechanisms=["SCRAM-SHA-1-PLUS"])
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-1-PLUS", "tls-exporter", True))

    @defer.inlineCallbacks
    def test_scramSha256(self):
        """SCRAM-SHA-256 without channel binding."""
        result = yield self.login(mechanisms=["SCRAM-SHA-256"])
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-256", None, True))

    @defer.inlineCallbacks
    def test_scramSha1(self):
        """SCRAM-SHA-1 without channel binding."""
        result = yield self.login(mechanisms=["SCRAM-SHA-1"])
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-1", None, True))

    @defer.inlineCallbacks
    def test_plainOverTLS(self):
        """PLAIN, allowed because the stream is encrypted."""
        result = yield self.login(mechanisms=["PLAIN"])
        self.assertEqual(result, ("alice@localhost/home", "PLAIN", None, False))

    @defer.inlineCallbacks
    def test_directTLS(self):
        """Direct TLS (XEP-0368) to the TLS port, no STARTTLS."""
        result = yield self.login(directTLS=True)
        self.assertEqual(result, ("alice@localhost/home", "SCRAM-SHA-256-PLUS", "tls-exporter", True))

    @defer.inlineCallbacks
    def test_serverAssignsResource(self):
        """Without a resource the server picks one and the client learns its full JID."""
        client = yield loginJabberd(self, "alice@localhost")
        self.assertEqual((client.jid.userhost(), bool(client.jid.resource)), ("alice@localhost", True))
        self.assertIsNotNone(self.server.sessions.get("alice@localhost", client.jid.resource))

    @defer.inlineCallbacks
    def test_closeEndsSession(self):
        """close() ends the stream both ways and the server unbinds the session."""
        client = yield loginJabberd(self, "alice@localhost/home")
        yield client.close()
        why = yield client.disconnected
        yield eventually(lambda: self.server.sessions.get("alice@localhost", "home") is None)
        self.assertEqual((why, client.connected), (None, False))


class ExternalTests(ServerMixin, unittest.TestCase):
    """SASL EXTERNAL with a client certificate (XEP-0178)."""

    @defer.inlineCallbacks
    def test_external(self):
        """A certificate naming alice@localhost logs in as alice without a password."""
        ca = CertificateAuthority(tempfile.mkdtemp(prefix="jabberd-ca-"))
        yield self.startServer(auth={"external": True, "client_ca": ca.path})
        yield self.addUser("alice@localhost", "secret")
        client = Client("alice@localhost/cert", None, jabberdOptions(self, certificate=ca.issueClient("alice@localhost")))
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        self.assertEqual((client.jid.full(), client.mechanism), ("alice@localhost/cert", "EXTERNAL"))


class FailureTests(ServerMixin, unittest.TestCase):
    """Each way to fail is its own exception with a sentence a person can act on."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "secret")

    @defer.inlineCallbacks
    def connectFails(self, address="alice@localhost/x", password="secret", **kw):
        client = Client(address, password, jabberdOptions(self, **kw))
        try:
            yield defer.ensureDeferred(client.connect())
        except Exception as e:
            return e
        self.fail("connected")

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        """A wrong password is AuthenticationFailed('not-authorized') and no session is bound."""
        e = yield self.connectFails(password="wrong")
        self.assertEqual((type(e), e.condition, str(e)), (AuthenticationFailed, "not-authorized", "authentication failed: not-authorized (invalid-proof)"))
        self.assertEqual(self.server.sessions.resources("alice@localhost"), {})

    @defer.inlineCallbacks
    def test_unknownAccountLooksLikeWrongPassword(self):
        """An account that does not exist fails exactly like a wrong password (RFC 5802 §9)."""
        e = yield self.connectFails(address="nobody@localhost")
        self.assertEqual((type(e), e.condition), (AuthenticationFailed, "not-authorized"))

    @defer.inlineCallbacks
    def test_hostUnknown(self):
        """A domain the server does not serve ends in StreamError('host-unknown') with the server's text."""
        e = yield self.connectFails(address="alice@example.net")
        self.assertEqual((type(e), e.condition, e.text), (StreamError, "host-unknown", "this server does not serve example.net"))

    @defer.inlineCallbacks
    def test_untrustedCertificate(self):
        """Trusting another certificate than the server's fails TLS with the reason and the way out."""
        other, _ = makeServerCertificate(tempfile.mkdtemp(), ["localhost"])
        e = yield self.connectFails(trust=other)
        self.assertEqual(
            (type(e), str(e)),
            (
                TLSFailed,
                "the certificate of localhost is not trusted: self-signed certificate"
                " (give its CA or the certificate itself with trust, or use insecure for a test server)",
            ),
        )
        self.assertEqual(self.server.sessions.resources("alice@localhost"), {})

    @defer.inlineCallbacks
    def test_untrustedCertificateDirectTLS(self):
        """The same refusal on a direct TLS connection."""
        other, _ = makeServerCertificate(tempfile.mkdtemp(), ["localhost"])
        e = yield self.connectFails(trust=other, directTLS=True)
        self.assertIsInstance(e, TLSFailed)
        self.assertIn("is not trusted", str(e))

    @defer.inlineCallbacks
    def test_systemTrustRefusesSelfSigned(self):
        """Without trust or insecure the system CAs decide, and a self-signed server is refused."""
        e = yield self.connectFails(trust=None)
        self.assertIsInstance(e, TLSFailed)

    @defer.inlineCallbacks
    def test_insecureAccepts(self):
        """insecure=True (asked for explicitly) skips verification."""
        client = yield loginJabberd(self, "alice@localhost/x", trust=None, insecure=True)
        self.assertEqual(client.jid.full(), "alice@localhost/x")

    def test_trustAndInsecureContradict(self):
        """Asking to trust a file and to trust everything at once is refused up front."""
        self.assertRaises(ValueError, Client, "alice@localhost", "x", jabberdOptions(self, insecure=True))

    @defer.inlineCallbacks
    def test_unreachablePort(self):
        """Nothing listening: ConnectionFailed naming the address and the reason."""
        port = freePort()
        e = yield self.connectFails(port=port)
        self.assertEqual((type(e), str(e)), (ConnectionFailed, f"cannot connect to 127.0.0.1:{port}: connection refused"))

    @defer.inlineCallbacks
    def test_serverShutdownSurfacesStreamError(self):
        """A stream error after login reaches the program: disconnected fires with StreamError('system-shutdown')."""
        client = yield loginJabberd(self, "alice@localhost/x")
        yield self.server.stopService()
        why = yield client.disconnected
        self.assertEqual((type(why), why.condition, why.text), (StreamError, "system-shutdown", "the server is shutting down"))


class NameMismatchTests(ServerMixin, unittest.TestCase):
    """The certificate must name the XMPP domain, not just chain to a trusted root."""

    @defer.inlineCallbacks
    def test_certificateForAnotherName(self):
        """A trusted certificate for another name is refused: TLSFailed saying which name was expected."""
        directory = tempfile.mkdtemp()
        cert, key = makeServerCertificate(directory, ["other.example"])
        yield self.startServer(tls={"certificate": cert, "key": key})
        yield self.addUser("alice@localhost", "secret")
        client = Client("alice@localhost", "secret", jabberdOptions(self, trust=cert))
        e = yield self.assertFailure(defer.ensureDeferred(client.connect()), TLSFailed)
        self.assertEqual(str(e), "the server's certificate does not name localhost")
        self.assertTrue(os.path.exists(cert))
