"""
Stream negotiation over real loopback sockets (RFC 6120 §5-§7): STARTTLS,
direct TLS (XEP-0368), virtual hosts, SASL, resource binding, the stanza
rules of a bound session, and shutdown.  Each test is a transcript: the
client sends X, the server answers Y.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import defer
from twisted.trial import unittest

from jabberd import bus as B
from jabberd.tls import ID_ON_XMPPADDR
from jabberd.xmlstream import NS_STREAMS, iqResult
from tests.c2s.test_stream import StreamErrorMixin
from tests.harness import NS_BIND, NS_SASL, NS_STANZA_ERRORS, NS_TLS, condition, rawConnect, xml

# XEP-0170: after SASL, bind first, then the legacy session marked optional;
# features modules add (roster versioning, ...) may follow.
BIND_FEATURES = (
    "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>",
    "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>",
)


def assertFeaturesAfterAuth(test: unittest.TestCase, features) -> None:
    """bind, then session (optional), then only what modules add: no SASL, no STARTTLS."""
    children = [xml(c, NS_STREAMS) for c in features.elements()]
    test.assertEqual((features.uri, features.name), (NS_STREAMS, "features"))
    test.assertEqual(tuple(children[:2]), BIND_FEATURES)
    for child in features.elements():
        test.assertNotIn(child.uri, (NS_SASL, NS_TLS, NS_BIND) if child.name != "bind" else (NS_SASL, NS_TLS))


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def plain(username: str, password: str, authzid: str = "") -> str:
    """An <auth/> for PLAIN (RFC 4616)."""
    token = b64("\0".join((authzid, username, password)))
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


def mechanismsOf(features) -> list[str]:
    mechanisms = next(features.elements(NS_SASL, "mechanisms"), None)
    return [str(m) for m in mechanisms.elements(NS_SASL, "mechanism")] if mechanisms is not None else []


def certificateNames(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


class TLSTests(StreamErrorMixin, unittest.TestCase):
    """STARTTLS (RFC 6120 §5) and direct TLS (XEP-0368)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(hosts=["localhost", "other.test"])
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_starttlsRestartsTheStream(self):
        """<starttls/> gets <proceed/>; after TLS a new header with a new id and SASL features follow."""
        client = yield self.connect()
        yield self.openStream(client)
        firstId = client.header["id"]
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = yield client.next()
        self.assertEqual(xml(proceed), "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        client.startTLS(self.tlsOptions())
        client.open()
        features = yield client.next()
        self.assertNotEqual(client.header["id"], firstId)
        self.assertEqual((client.header["from"], client.header["version"]), ("localhost", "1.0"))
        self.assertEqual(
            xml(features),
            "<features xmlns='http://etherx.jabber.org/streams'>"
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            "<mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>"
            "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism>"
            "</mechanisms>"
            "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
            "<channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>"
            "</sasl-channel-binding>"
            "</features>",
        )
        self.assertEqual(client.tlsConnection().get_protocol_version_name(), "TLSv1.3")

    @defer.inlineCallbacks
    def test_saslBeforeTLS(self):
        """<auth/> before STARTTLS gets <failure><encryption-required/>."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(plain("alice", "secret"))
        failure = yield client.next()
        self.assertEqual((failure.uri, failure.name, condition(failure)), (NS_SASL, "failure", "encryption-required"))

    @defer.inlineCallbacks
    def test_stanzaBeforeTLS(self):
        """An iq before STARTTLS gets the not-authorized stream error."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send("<iq type='get' id='1'><query xmlns='jabber:iq:register'/></iq>")
        yield self.assertStreamError(client, "not-authorized")

    @defer.inlineCallbacks
    def test_starttlsTwice(self):
        """<starttls/> on a stream already under TLS gets <failure/>, </stream:stream> and a close."""
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        yield client.waitClosed()
        self.assertEqual(xml(client.elements[-1]), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.assertTrue(client.raw.endswith(b"</stream:stream>"))

    @defer.inlineCallbacks
    def test_starttlsOnDirectTLS(self):
        """<starttls/> on the direct TLS port gets <failure/> and a close."""
        client = yield self.connect("c2s_tls")
        features = yield self.openStream(client)
        self.assertIsNone(next(features.elements(NS_TLS, "starttls"), None))
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        yield client.waitClosed()
        self.assertEqual(xml(client.elements[-1]), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")

    @defer.inlineCallbacks
    def test_plaintextAfterStarttlsIsDropped(self):
        """Bytes sent in clear right after <starttls/> are never read as part of the TLS stream."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(f"<starttls xmlns='{NS_TLS}'/>{plain('alice', 'secret')}")
        proceed = yield client.next()
        self.assertEqual(proceed.name, "proceed")
        client.startTLS(self.tlsOptions())
        features = yield self.openStream(client)
        self.assertIn("PLAIN", mechanismsOf(features))
        self.assertEqual(client.elements, [features])  # no <success/> for the injected <auth/>

    @defer.inlineCallbacks
    def test_directTLS(self):
        """On the direct TLS port the first features are SASL, and a login works."""
        client = yield self.connect("c2s_tls")
        features = yield self.openStream(client)
        self.assertEqual(mechanismsOf(features)[-1], "PLAIN")
        features = yield self.authPlain(client, "alice", "secret")
        assertFeaturesAfterAuth(self, features)
        jid = yield self.bindResource(client, "direct")
        self.assertEqual(jid, "alice@localhost/direct")

    @defer.inlineCallbacks
    def test_tls11RefusedOnStarttls(self):
        """A client offering at most TLS 1.1 gets no TLS session after <proceed/>, and no stream."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        yield client.next()
        client.startTLS(self.tlsOptions(maxVersion=SSL.TLS1_1_VERSION, ciphers=b"DEFAULT:@SECLEVEL=0"))
        client.open()
        yield client.waitClosed()
        self.assertIsNone(client.header)

    @defer.inlineCallbacks
    def test_tls11RefusedOnDirectTLS(self):
        """The direct TLS port refuses a TLS 1.1 handshake."""
        client = yield rawConnect(self.server.port("c2s_tls"), self.tlsOptions(maxVersion=SSL.TLS1_1_VERSION, ciphers=b"DEFAULT:@SECLEVEL=0"))
        client.open()
        yield client.waitClosed()
        self.assertEqual((client.header, client.raw), (None, b""))

    @defer.inlineCallbacks
    def test_tls12Accepted(self):
        """TLS 1.2 is the oldest version accepted."""
        client = yield self.connect("c2s_tls", self.tlsOptions(maxVersion=SSL.TLS1_2_VERSION))
        yield self.openStream(client)
        self.assertEqual(client.tlsConnection().get_protocol_version_name(), "TLSv1.2")

    @defer.inlineCallbacks
    def test_virtualHostByStarttlsTo(self):
        """STARTTLS on a stream to other.test presents other.test's certificate (no SNI sent)."""
        client = yield self.connect()
        yield self.openStream(client, "other.test")
        self.assertEqual(client.header["from"], "other.test")
        yield self.starttls(client, self.tlsOptions("other.test"), to="other.test")
        self.assertEqual(fingerprint(client.peerCertificate()), self.hostFingerprint("other.test"))
        self.assertEqual(certificateNames(client.peerCertificate())[0], "other.test")

    @defer.inlineCallbacks
    def test_virtualHostBySNI(self):
        """Direct TLS with SNI other.test presents other.test's certificate; SNI localhost, localhost's."""
        other = yield self.connect("c2s_tls", self.tlsOptions("other.test", sni="other.test"))
        yield self.openStream(other, "other.test")
        self.assertEqual(fingerprint(other.peerCertificate()), self.hostFingerprint("other.test"))
        local = yield self.connect("c2s_tls", self.tlsOptions("localhost", sni="localhost"))
        yield self.openStream(local, "localhost")
        self.assertEqual(fingerprint(local.peerCertificate()), self.hostFingerprint("localhost"))
        self.assertNotEqual(self.hostFingerprint("localhost"), self.hostFingerprint("other.test"))

    def hostFingerprint(self, host: str) -> bytes:
        """The SHA-256 fingerprint of the certificate the server keeps for host."""
        with open(self.certificatePath(host), "rb") as f:
            return fingerprint(x509.load_pem_x509_certificates(f.read())[0])

    @defer.inlineCallbacks
    def test_streamHostCannotChange(self):
        """After STARTTLS to localhost, a restart naming other.test gets host-unknown."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        yield client.next()
        client.startTLS(self.tlsOptions())
        client.open("other.test")
        yield self.assertStreamError(client, "host-unknown")


class OptionalTLSTests(StreamErrorMixin, unittest.TestCase):
    """c2s.require_tls = false: SASL is offered without TLS, PLAIN never is."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(c2s={"require_tls": False})
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_featuresWithoutTLS(self):
        """STARTTLS is offered but not required, next to SCRAM mechanisms without PLAIN or -PLUS."""
        client = yield self.connect()
        features = yield self.openStream(client)
        self.assertEqual(
            xml(features),
            "<features xmlns='http://etherx.jabber.org/streams'>"
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
            "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>"
            "</mechanisms></features>",
        )

    @defer.inlineCallbacks
    def test_plainWithoutTLS(self):
        """PLAIN without TLS gets <failure><encryption-required/>, even with the right password."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(plain("alice", "secret"))
        failure = yield client.next()
        self.assertEqual(condition(failure), "encryption-required")

    @defer.inlineCallbacks
    def test_plainAfterOptionalTLS(self):
        """Once the client chose STARTTLS, PLAIN is offered and works."""
        client = yield self.connect()
        yield self.openStream(client)
        features = yield self.starttls(client)
        self.assertIn("PLAIN", mechanismsOf(features))
        features = yield self.authPlain(client, "alice", "secret")
        assertFeaturesAfterAuth(self, features)


class SASLTests(StreamErrorMixin, unittest.TestCase):
    """SASL negotiation (RFC 6120 §6) over TLS."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(auth={"max_attempts": 3})
        yield self.addUser("alice@localhost", "secret")

    @defer.inlineCallbacks
    def secured(self):
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        return client

    @defer.inlineCallbacks
    def test_plainSuccessRestartsStream(self):
        """PLAIN with the right password gets <success/>; the new stream has a new id and bind features."""
        client = yield self.secured()
        tlsId = client.header["id"]
        client.send(plain("alice", "secret"))
        success = yield client.next()
        self.assertEqual(xml(success), "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        client.restart()
        client.open()
        features = yield client.next()
        self.assertNotEqual(client.header["id"], tlsId)
        self.assertEqual(len({h["id"] for h in client.headers}), 3)
        assertFeaturesAfterAuth(self, features)

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        """A wrong password gets <failure><not-authorized/>; a retry on the same stream succeeds."""
        client = yield self.secured()
        client.send(plain("alice", "wrong"))
        failure = yield client.next()
        self.assertEqual(xml(failure), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
        client.send(plain("alice", "secret"))
        success = yield client.next()
        self.assertEqual(success.name, "success")

    @defer.inlineCallbacks
    def test_unknownUser(self):
        """An account that does not exist gets the same <not-authorized/> as a wrong password."""
        client = yield self.secured()
        client.send(plain("nobody", "secret"))
        failure = yield client.next()
        self.assertEqual(xml(failure), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")

    @defer.inlineCallbacks
    def test_invalidMechanism(self):
        """A mechanism that is not offered gets <invalid-mechanism/>."""
        client = yield self.secured()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='DIGEST-MD5'/>")
        failure = yield client.next()
        self.assertEqual(xml(failure), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>")

    @defer.inlineCallbacks
    def test_anonymousNotOffered(self):
        """ANONYMOUS is not offered by default and gets <invalid-mechanism/>."""
        client = yield self.secured()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
        failure = yield client.next()
        self.assertEqual(condition(failure), "invalid-mechanism")

    @defer.inlineCallbacks
    def test_malformedRequest(self):
        """PLAIN data without the NUL separators gets <malformed-request/>."""
        client = yield self.secured()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{b64('alice secret')}</auth>")
        failure = yield client.next()
        self.assertEqual(condition(failure), "malformed-request")

    @defer.inlineCallbacks
    def test_incorrectEncoding(self):
        """Data that is not base64 gets <incorrect-encoding/>."""
        client = yield self.secured()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>not*base64!</auth>")
        failure = yield client.next()
        self.assertEqual(condition(failure), "incorrect-encoding")

    @defer.inlineCallbacks
    def test_responseWithoutExchange(self):
        """A <response/> with no exchange in progress gets <malformed-request/>."""
        client = yield self.secured()
        client.send(f"<response xmlns='{NS_SASL}'>{b64('x')}</response>")
        failure = yield client.next()
        self.assertEqual(condition(failure), "malformed-request")

    @defer.inlineCallbacks
    def test_abort(self):
        """<abort/> in the middle of a SCRAM exchange gets <aborted/>; the next attempt starts afresh."""
        client = yield self.secured()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{b64('n,,n=alice,r=abcdef')}</auth>")
        challenge = yield client.next()
        self.assertEqual(challenge.name, "challenge")
        client.send(f"<abort xmlns='{NS_SASL}'/>")
        failure = yield client.next()
        self.assertEqual(xml(failure), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>")
        client.send(plain("alice", "secret"))
        success = yield client.next()
        self.assertEqual(success.name, "success")

    @defer.inlineCallbacks
    def test_abortWhileTheStoreIsAsked(self):
        """<abort/> right behind a correct PLAIN <auth/>: the late store answer neither authenticates nor is sent."""
        client = yield self.secured()
        client.send(plain("alice", "secret") + f"<abort xmlns='{NS_SASL}'/>")
        failure = yield client.next()
        self.assertEqual(condition(failure), "aborted")
        client.send(plain("alice", "wrong"))
        failure = yield client.next()
        self.assertEqual(xml(failure), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")

    @defer.inlineCallbacks
    def test_abortDoesNotCount(self):
        """Aborted exchanges do not count as failed attempts."""
        client = yield self.secured()
        for _ in range(4):
            client.send(f"<abort xmlns='{NS_SASL}'/>")
            failure = yield client.next()
            self.assertEqual(condition(failure), "aborted")
        client.send(plain("alice", "secret"))
        success = yield client.next()
        self.assertEqual(success.name, "success")

    @defer.inlineCallbacks
    def test_boundedAttempts(self):
        """After auth.max_attempts (3) failures the stream is closed with policy-violation."""
        client = yield self.secured()
        for _ in range(2):
            client.send(plain("alice", "wrong"))
            failure = yield client.next()
            self.assertEqual(condition(failure), "not-authorized")
        client.send(plain("alice", "wrong"))
        yield client.waitClosed()
        self.assertEqual([e.name for e in client.elements[-2:]], ["failure", "error"])
        self.assertEqual(condition(client.elements[-1]), "policy-violation")
        self.assertTrue(client.raw.endswith(b"</stream:stream>"))

    @defer.inlineCallbacks
    def test_authAfterSuccess(self):
        """A second <auth/> on the authenticated stream is a policy-violation stream error."""
        client = yield self.secured()
        yield self.authPlain(client, "alice", "secret")
        client.send(plain("alice", "secret"))
        yield self.assertStreamError(client, "policy-violation")

    @defer.inlineCallbacks
    def test_authzidOfAnotherAccount(self):
        """PLAIN naming another account as authzid gets <invalid-authzid/>."""
        client = yield self.secured()
        client.send(plain("alice", "secret", authzid="bob@localhost"))
        failure = yield client.next()
        self.assertEqual(condition(failure), "invalid-authzid")


class AnonymousTests(StreamErrorMixin, unittest.TestCase):
    """SASL ANONYMOUS when the host allows it (XEP-0175)."""

    def setUp(self):
        return self.startServer(host={"localhost": {"anonymous": True}})

    @defer.inlineCallbacks
    def test_anonymousLogin(self):
        """ANONYMOUS is offered and logs in with a random account name."""
        client = yield self.connect()
        yield self.openStream(client)
        features = yield self.starttls(client)
        self.assertEqual(mechanismsOf(features)[-1], "ANONYMOUS")
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
        success = yield client.next()
        self.assertEqual(success.name, "success")
        client.restart()
        yield self.openStream(client)
        jid = yield self.bindResource(client, "anon")
        local, _, rest = jid.partition("@")
        self.assertEqual(rest, "localhost/anon")
        self.assertEqual(len(local), 36)  # a UUID


def _certificate(subject, key, issuer=None, san=None, ca=False):
    issuerName, issuerKey = issuer or (subject, key)
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuerName)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuerKey, hashes.SHA256())


def _pem(key, cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def xmppAddr(jid: str) -> x509.OtherName:
    """An xmppAddr SAN entry (RFC 6120 §13.7.1.4): a DER UTF8String."""
    data = jid.encode()
    return x509.OtherName(ID_ON_XMPPADDR, bytes([0x0C, len(data)]) + data)


class ExternalTests(StreamErrorMixin, unittest.TestCase):
    """SASL EXTERNAL with a client certificate (XEP-0178)."""

    @defer.inlineCallbacks
    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        caKey = ec.generate_private_key(ec.SECP256R1())
        caCert = _certificate("Test CA", caKey, ca=True)
        self.caPath = os.path.join(directory, "ca.pem")
        with open(self.caPath, "wb") as f:
            f.write(caCert.public_bytes(serialization.Encoding.PEM))
        self.clientCerts = {}
        for name, issuer in (("alice", ("Test CA", caKey)), ("rogue", None)):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _certificate(name, key, issuer, san=[xmppAddr("alice@localhost")])
            path = os.path.join(directory, f"{name}.pem")
            with open(path, "wb") as f:
                f.write(_pem(key, cert))
            self.clientCerts[name] = path
        yield self.startServer(auth={"external": True, "client_ca": self.caPath})
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_externalWithClientCertificate(self):
        """With a certificate from the configured CA naming alice@localhost, EXTERNAL logs in as alice."""
        client = yield self.connect()
        yield self.openStream(client)
        features = yield self.starttls(client, self.tlsOptions(certFile=self.clientCerts["alice"]))
        self.assertIn("EXTERNAL", mechanismsOf(features))
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        success = yield client.next()
        self.assertEqual(success.name, "success")
        client.restart()
        yield self.openStream(client)
        jid = yield self.bindResource(client, "cert")
        self.assertEqual(jid, "alice@localhost/cert")

    @defer.inlineCallbacks
    def test_externalOnDirectTLS(self):
        """EXTERNAL also works on the direct TLS port, with an authzid naming the account."""
        client = yield self.connect("c2s_tls", self.tlsOptions(certFile=self.clientCerts["alice"]))
        features = yield self.openStream(client)
        self.assertIn("EXTERNAL", mechanismsOf(features))
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{b64('alice@localhost')}</auth>")
        success = yield client.next()
        self.assertEqual(success.name, "success")

    @defer.inlineCallbacks
    def test_noCertificateNoExternal(self):
        """Without a client certificate EXTERNAL is not offered and gets <invalid-mechanism/>."""
        client = yield self.connect()
        yield self.openStream(client)
        features = yield self.starttls(client)
        self.assertNotIn("EXTERNAL", mechanismsOf(features))
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        failure = yield client.next()
        self.assertEqual(condition(failure), "invalid-mechanism")

    @defer.inlineCallbacks
    def test_untrustedCertificate(self):
        """A self-signed certificate claiming alice@localhost fails the TLS handshake: no stream, no EXTERNAL."""
        client = yield self.connect()
        yield self.openStream(client)
        client.send(f"<starttls xmlns='{NS_TLS}'/>")
        yield client.next()
        client.startTLS(self.tlsOptions(certFile=self.clientCerts["rogue"]))
        client.open()
        yield client.waitClosed()
        self.assertIsNone(client.header)


class BindTests(StreamErrorMixin, unittest.TestCase):
    """Resource binding (RFC 6120 §7) and the legacy session (RFC 3921 §3)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def authenticated(self):
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        yield self.authPlain(client, "alice", "secret")
        return client

    @defer.inlineCallbacks
    def test_clientChosenResource(self):
        """Binding 'balcony' answers with the full JID alice@localhost/balcony."""
        client = yield self.authenticated()
        client.send(f"<iq type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>balcony</resource></bind></iq>")
        reply = yield client.next()
        self.assertEqual(xml(reply), "<iq id='b1' type='result'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/balcony</jid></bind></iq>")
        self.assertIsNotNone(self.server.sessions.get("alice@localhost", "balcony"))

    @defer.inlineCallbacks
    def test_serverGeneratedResource(self):
        """An empty <bind/> gets a resource chosen by the server, different each time."""
        jids = set()
        for _ in range(2):
            client = yield self.authenticated()
            jid = yield self.bindResource(client)
            self.assertTrue(jid.startswith("alice@localhost/"))
            self.assertGreater(len(jid), len("alice@localhost/"))
            jids.add(jid)
        self.assertEqual(len(jids), 2)

    @defer.inlineCallbacks
    def test_resourceprep(self):
        """The resource is resourceprep'd: fullwidth letters become ASCII, a soft hyphen vanishes, case stays."""
        client = yield self.authenticated()
        jid = yield self.bindResource(client, "\uff28\uff4f\uff4d\uff45\u00ad Phone")
        self.assertEqual(jid, "alice@localhost/Home Phone")
        self.assertIsNotNone(self.server.sessions.get("alice@localhost", "Home Phone"))

    @defer.inlineCallbacks
    def test_invalidResource(self):
        """A resource with a prohibited character (U+200E) gets bad-request and nothing is bound."""
        client = yield self.authenticated()
        client.send(f"<iq type='set' id='b2'><bind xmlns='{NS_BIND}'><resource>left\u200eright</resource></bind></iq>")
        reply = yield client.next()
        self.assertEqual((reply["type"], reply["id"], condition(reply, NS_STANZA_ERRORS), reply.error["type"]), ("error", "b2", "bad-request", "modify"))
        self.assertEqual(self.server.sessions.resources("alice@localhost"), {})
        jid = yield self.bindResource(client, "retry")
        self.assertEqual(jid, "alice@localhost/retry")

    @defer.inlineCallbacks
    def test_resourceTooLong(self):
        """A resource over 1023 bytes gets bad-request."""
        client = yield self.authenticated()
        client.send(f"<iq type='set' id='b3'><bind xmlns='{NS_BIND}'><resource>{'r' * 1024}</resource></bind></iq>")
        reply = yield client.next()
        self.assertEqual(condition(reply, NS_STANZA_ERRORS), "bad-request")

    @defer.inlineCallbacks
    def test_conflictNewWins(self):
        """Binding a resource already bound: the new stream gets it, the old one gets <conflict/>."""
        old, _ = yield self.login("alice@localhost", resource="phone")
        oldSession = self.server.sessions.get("alice@localhost", "phone")
        new, jid = yield self.login("alice@localhost", resource="phone")
        self.assertEqual(jid, "alice@localhost/phone")
        yield self.assertStreamError(old, "conflict")
        newSession = self.server.sessions.get("alice@localhost", "phone")
        self.assertIsNot(newSession, oldSession)
        self.assertFalse(new.lost)

    @defer.inlineCallbacks
    def test_legacySession(self):
        """The legacy <session/> is advertised as optional and answered with an empty result."""
        client = yield self.authenticated()
        yield self.bindResource(client, "s")
        client.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        reply = yield client.next()
        self.assertEqual(xml(reply), "<iq id='s1' type='result'/>")

    @defer.inlineCallbacks
    def test_stanzaBeforeBind(self):
        """A stanza after authentication but before binding gets not-authorized."""
        client = yield self.authenticated()
        client.send("<message to='alice@localhost'><body>x</body></message>")
        yield self.assertStreamError(client, "not-authorized")

    @defer.inlineCallbacks
    def test_authTimerEndsAtBind(self):
        """The authentication timer is cancelled once a resource is bound."""
        client = yield self.authenticated()
        yield self.bindResource(client, "t")
        session = self.server.sessions.get("alice@localhost", "t")
        self.assertIsNone(session.timer)


class StanzaTests(StreamErrorMixin, unittest.TestCase):
    """The rules for stanzas of a bound session (RFC 6120 §8)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        self.alice, _ = yield self.login("alice@localhost", resource="a")
        self.bob, _ = yield self.login("bob@localhost", resource="b")

    @defer.inlineCallbacks
    def test_fromIsStamped(self):
        """Alice sends without 'from'; Bob receives it from alice@localhost/a."""
        self.alice.send("<message to='bob@localhost/b' id='m1' type='chat'><body>hi</body></message>")
        got = yield self.bob.next()
        self.assertEqual(xml(got), "<message from='alice@localhost/a' id='m1' to='bob@localhost/b' type='chat'><body>hi</body></message>")

    @defer.inlineCallbacks
    def test_bareFromIsCompleted(self):
        """A 'from' with the sender's bare JID is accepted and replaced by the full JID."""
        self.alice.send("<message from='alice@localhost' to='bob@localhost/b' id='m2'><body>hi</body></message>")
        got = yield self.bob.next()
        self.assertEqual(got["from"], "alice@localhost/a")

    @defer.inlineCallbacks
    def test_langIsInherited(self):
        """A stanza without xml:lang gets the stream's language (RFC 6120 §8.1.5)."""
        client = yield self.connect()
        client.open(extra=" xml:lang='de'")
        yield client.next()
        yield self.starttls(client)
        yield self.authPlain(client, "alice", "secret")
        yield self.bindResource(client, "de")
        client.send("<message to='bob@localhost/b' id='m3'><body>hallo</body></message>")
        got = yield self.bob.next()
        self.assertEqual(got.getAttribute(("http://www.w3.org/XML/1998/namespace", "lang")), "de")

    @defer.inlineCallbacks
    def test_iqWithoutId(self):
        """An iq without an id gets bad-request."""
        self.alice.send("<iq type='get' to='localhost'><query xmlns='urn:example:x'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual((reply["type"], reply.getAttribute("id"), condition(reply, NS_STANZA_ERRORS)), ("error", None, "bad-request"))

    @defer.inlineCallbacks
    def test_iqWithBadType(self):
        """An iq whose type is not get, set, result or error gets bad-request."""
        self.alice.send("<iq type='fetch' id='t1' to='localhost'><query xmlns='urn:example:x'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual((reply["type"], reply["id"], condition(reply, NS_STANZA_ERRORS)), ("error", "t1", "bad-request"))

    @defer.inlineCallbacks
    def test_unhandledIq(self):
        """An iq to the server that nobody handles gets service-unavailable from the server."""
        self.alice.send("<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:nothing'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual(
            xml(reply),
            "<iq from='localhost' id='u1' to='alice@localhost/a' type='error'>"
            "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )

    @defer.inlineCallbacks
    def test_errorIsNotAnsweredWithError(self):
        """An error iq to nowhere is dropped: the next reply Alice gets is for her next request."""
        self.alice.send("<iq type='error' id='e1' to='bob@localhost/gone'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self.alice.send("<message type='error' to='bob@localhost/gone'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        self.alice.send("<iq type='get' id='after' to='localhost'><query xmlns='urn:example:nothing'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual(reply["id"], "after")

    @defer.inlineCallbacks
    def test_iqToBareJIDOfferedToModules(self):
        """An iq to another account's bare JID reaches the modules as BARE with the sender's full JID."""
        seen = []

        def handler(iq, fromJID, toJID):
            seen.append((fromJID.full(), toJID.full()))
            self.server.router.route(iqResult(iq))
            return True

        off = self.server.bus.on(B.iq("get", B.BARE, "urn:example:bare", "q"), handler)
        self.addCleanup(off)
        self.alice.send("<iq type='get' id='bare1' to='bob@localhost'><q xmlns='urn:example:bare'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual(seen, [("alice@localhost/a", "bob@localhost")])
        self.assertEqual(xml(reply), "<iq from='bob@localhost' id='bare1' to='alice@localhost/a' type='result'/>")

    @defer.inlineCallbacks
    def test_iqToOwnBareJID(self):
        """An iq without 'to' is the account's own: offered to modules as SELF."""
        seen = []
        off = self.server.bus.on(B.iq("get", B.SELF, "urn:example:self", "q"), lambda iq, f, t: seen.append(t.full()) or self.server.router.route(iqResult(iq)) or True)
        self.addCleanup(off)
        self.alice.send("<iq type='get' id='self1'><q xmlns='urn:example:self'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual((seen, reply["type"], reply["id"]), (["alice@localhost"], "result", "self1"))

    @defer.inlineCallbacks
    def test_iqToUnknownResource(self):
        """An iq get to a resource that is not bound gets service-unavailable."""
        self.alice.send("<iq type='get' id='r1' to='bob@localhost/nope'><query xmlns='jabber:iq:version'/></iq>")
        reply = yield self.alice.next()
        self.assertEqual((reply["from"], condition(reply, NS_STANZA_ERRORS)), ("bob@localhost/nope", "service-unavailable"))


class ShutdownTests(StreamErrorMixin, unittest.TestCase):
    """Stopping the server (RFC 6120 §4.9.3.22)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def test_systemShutdownReachesEveryStream(self):
        """stopService sends <system-shutdown/> to bound, authenticating, pre-TLS and header-less clients."""
        bound, _ = yield self.login("alice@localhost")
        authenticating = yield self.connect()
        yield self.openStream(authenticating)
        yield self.starttls(authenticating)
        preTLS = yield self.connect()
        yield self.openStream(preTLS)
        silent = yield self.connect()
        yield self.server.stopService()
        for client in (bound, authenticating, preTLS, silent):
            yield self.assertStreamError(client, "system-shutdown")
        self.assertEqual(self.server.clientStreams, set())
        self.assertEqual(list(self.server.sessions.all()), [])
