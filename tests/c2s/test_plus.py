"""
SCRAM with channel binding over real TLS (RFC 5802, RFC 7677, RFC 5929,
RFC 9266, XEP-0440, XEP-0474).

The client here is written from the RFCs with hashlib and pyOpenSSL only:
it computes the channel-binding data from its own end of the TLS
connection, so a server that bound to the wrong thing cannot agree with it
by sharing code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import defer
from twisted.trial import unittest

from tests.c2s.test_stream import StreamErrorMixin
from tests.harness import NS_SASL, RawClient, condition

NS_SASL_CB = "urn:xmpp:sasl-cb:0"
HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}


def clientBinding(client: RawClient, cbType: str) -> bytes:
    """The channel-binding data, computed with pyOpenSSL from the client's end."""
    conn = client.tlsConnection()
    if cbType == "tls-exporter":
        # RFC 9266 §2: label EXPORTER-Channel-Binding, empty context, 32 bytes.
        return conn.export_keying_material(b"EXPORTER-Channel-Binding", 32, b"")
    if cbType == "tls-unique":
        # RFC 5929 §3.1: the first Finished of the handshake; in a full
        # handshake that is the client's own.
        return conn.get_finished()
    if cbType == "tls-server-end-point":
        # RFC 5929 §4.1: the hash of the server certificate with its
        # signature hash (SHA-256 for the generated ECDSA certificates).
        cert = conn.get_peer_certificate(as_cryptography=True)
        assert cert.signature_hash_algorithm.name == "sha256"
        return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    raise ValueError(cbType)


def ssdpHash(family: str, mechanisms: list[str], cbTypes: list[str] | None) -> str:
    """XEP-0474 §5.1, written out: sorted lists, %x1E between items, %x1F between lists."""
    s = b"\x1e".join(sorted(m.encode() for m in mechanisms))
    if cbTypes is not None:
        s += b"\x1f" + b"\x1e".join(sorted(t.encode() for t in cbTypes))
    return base64.b64encode(hashlib.new(HASHES[family], s).digest()).decode()


class ScramClient:
    """One SCRAM exchange, client side (RFC 5802 §3, §5, §7)."""

    def __init__(self, mechanism: str, username: str, password: str, cbType: str | None = None, cbData: bytes = b"", flag: str | None = None) -> None:
        self.mechanism = mechanism
        self.family = mechanism.removesuffix("-PLUS")
        self.hash = HASHES[self.family]
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.gs2 = ((flag or (f"p={cbType}" if cbType else "n")) + ",,").encode()
        self.cbData = cbData
        self.bare = f"n={username},r={self.nonce}".encode()

    def first(self) -> bytes:
        return self.gs2 + self.bare

    def final(self, serverFirst: bytes) -> bytes:
        self.attrs = dict(a.split(b"=", 1) for a in serverFirst.split(b","))
        assert self.attrs[b"r"].startswith(self.nonce.encode()), "server nonce must extend ours"
        salted = hashlib.pbkdf2_hmac(self.hash, self.password, base64.b64decode(self.attrs[b"s"]), int(self.attrs[b"i"]))
        clientKey = hmac.new(salted, b"Client Key", self.hash).digest()
        storedKey = hashlib.new(self.hash, clientKey).digest()
        withoutProof = b"c=" + base64.b64encode(self.gs2 + self.cbData) + b",r=" + self.attrs[b"r"]
        authMessage = self.bare + b"," + serverFirst + b"," + withoutProof
        signature = hmac.new(storedKey, authMessage, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(clientKey, signature))
        serverKey = hmac.new(salted, b"Server Key", self.hash).digest()
        self.expectedVerifier = base64.b64encode(hmac.new(serverKey, authMessage, self.hash).digest())
        return withoutProof + b",p=" + base64.b64encode(proof)


def features(element) -> tuple[list[str], list[str] | None]:
    """(mechanisms, XEP-0440 channel-binding types or None) from <stream:features/>."""
    mechanisms = [str(m) for m in next(element.elements(NS_SASL, "mechanisms")).elements(NS_SASL, "mechanism")]
    cb = next(element.elements(NS_SASL_CB, "sasl-channel-binding"), None)
    types = [c["type"] for c in cb.elements(NS_SASL_CB, "channel-binding")] if cb is not None else None
    return mechanisms, types


class ScramPlusTests(StreamErrorMixin, unittest.TestCase):
    """SCRAM-SHA-1(-PLUS) and SCRAM-SHA-256(-PLUS) with every channel-binding type."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "pencil")

    @defer.inlineCallbacks
    def secured(self, maxVersion: int | None = None, direct: bool = False):
        """A stream under TLS (STARTTLS, or direct TLS); returns (client, (mechanisms, cb types))."""
        options = self.tlsOptions(maxVersion=maxVersion)
        if direct:
            client = yield self.connect("c2s_tls", options)
            f = yield self.openStream(client)
        else:
            client = yield self.connect()
            yield self.openStream(client)
            f = yield self.starttls(client, options)
        return client, features(f)

    @defer.inlineCallbacks
    def scram(self, client: RawClient, offered, mechanism: str, cbType: str | None, password: str = "pencil", cbData: bytes | None = None, flag: str | None = None):
        """Run a SCRAM exchange; return the server's last element (<success/> or <failure/>)."""
        mechanisms, cbTypes = offered
        if cbData is None:
            cbData = clientBinding(client, cbType) if cbType else b""
        sc = ScramClient(mechanism, "alice", password, cbType, cbData, flag)
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{base64.b64encode(sc.first()).decode()}</auth>")
        challenge = yield client.next()
        if challenge.name != "challenge":
            return challenge
        serverFirst = base64.b64decode(str(challenge))
        response = sc.final(serverFirst)
        # XEP-0474: the server hashed exactly what it advertised.
        self.assertEqual(sc.attrs[b"h"].decode(), ssdpHash(sc.family, mechanisms, cbTypes))
        client.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(response).decode()}</response>")
        result = yield client.next()
        if result.name == "success":
            self.assertEqual(base64.b64decode(str(result)), b"v=" + sc.expectedVerifier)
        return result

    @defer.inlineCallbacks
    def loginWith(self, mechanism: str, cbType: str | None, maxVersion: int | None = None, direct: bool = False):
        client, offered = yield self.secured(maxVersion, direct)
        if cbType is not None:
            self.assertIn(cbType, offered[1])
        result = yield self.scram(client, offered, mechanism, cbType)
        self.assertEqual(result.name, "success", result.toXml())
        client.restart()
        yield self.openStream(client)
        jid = yield self.bindResource(client, mechanism.lower())
        self.assertEqual(jid, f"alice@localhost/{mechanism.lower()}")
        return client

    # -- what is advertised ----------------------------------------------------------

    @defer.inlineCallbacks
    def test_advertisedOverTLS13(self):
        """Over TLS 1.3: both -PLUS mechanisms and XEP-0440 tls-exporter, tls-server-end-point (no tls-unique)."""
        client, (mechanisms, cbTypes) = yield self.secured()
        self.assertEqual(client.tlsConnection().get_protocol_version_name(), "TLSv1.3")
        self.assertEqual(mechanisms[:4], ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"])
        self.assertEqual(cbTypes, ["tls-exporter", "tls-server-end-point"])

    @defer.inlineCallbacks
    def test_advertisedOverTLS12(self):
        """Over TLS 1.2 with the extended master secret, tls-unique is advertised as well."""
        client, (mechanisms, cbTypes) = yield self.secured(SSL.TLS1_2_VERSION)
        self.assertEqual(client.tlsConnection().get_protocol_version_name(), "TLSv1.2")
        self.assertEqual(cbTypes, ["tls-exporter", "tls-server-end-point", "tls-unique"])

    # -- every mechanism, every binding ----------------------------------------------

    def test_scramSha1(self):
        """SCRAM-SHA-1 without channel binding (flag n) logs in over TLS."""
        return self.loginWith("SCRAM-SHA-1", None)

    def test_scramSha256(self):
        """SCRAM-SHA-256 without channel binding (flag n) logs in over TLS."""
        return self.loginWith("SCRAM-SHA-256", None)

    def test_scramSha1PlusTlsExporter(self):
        """SCRAM-SHA-1-PLUS with tls-exporter over TLS 1.3 logs in; the server proves itself with v=."""
        return self.loginWith("SCRAM-SHA-1-PLUS", "tls-exporter")

    def test_scramSha256PlusTlsExporter(self):
        """SCRAM-SHA-256-PLUS with tls-exporter over TLS 1.3 logs in."""
        return self.loginWith("SCRAM-SHA-256-PLUS", "tls-exporter")

    def test_scramSha1PlusServerEndPoint(self):
        """SCRAM-SHA-1-PLUS with tls-server-end-point over TLS 1.3 logs in."""
        return self.loginWith("SCRAM-SHA-1-PLUS", "tls-server-end-point")

    def test_scramSha256PlusServerEndPoint(self):
        """SCRAM-SHA-256-PLUS with tls-server-end-point over TLS 1.3 logs in."""
        return self.loginWith("SCRAM-SHA-256-PLUS", "tls-server-end-point")

    def test_scramSha1PlusTlsUnique(self):
        """SCRAM-SHA-1-PLUS with tls-unique over TLS 1.2 logs in."""
        return self.loginWith("SCRAM-SHA-1-PLUS", "tls-unique", SSL.TLS1_2_VERSION)

    def test_scramSha256PlusTlsUnique(self):
        """SCRAM-SHA-256-PLUS with tls-unique over TLS 1.2 logs in."""
        return self.loginWith("SCRAM-SHA-256-PLUS", "tls-unique", SSL.TLS1_2_VERSION)

    def test_scramSha256PlusTlsExporterOverTLS12(self):
        """tls-exporter also works over TLS 1.2 with the extended master secret."""
        return self.loginWith("SCRAM-SHA-256-PLUS", "tls-exporter", SSL.TLS1_2_VERSION)

    def test_scramSha256PlusDirectTLS(self):
        """SCRAM-SHA-256-PLUS with tls-exporter on the direct TLS port logs in."""
        return self.loginWith("SCRAM-SHA-256-PLUS", "tls-exporter", direct=True)

    # -- what must fail --------------------------------------------------------------

    @defer.inlineCallbacks
    def test_wrongBindingData(self):
        """Binding data of another connection (a man in the middle's) gets <not-authorized/>."""
        other, _ = yield self.secured()
        client, offered = yield self.secured()
        result = yield self.scram(client, offered, "SCRAM-SHA-256-PLUS", "tls-exporter", cbData=clientBinding(other, "tls-exporter"))
        self.assertEqual((result.name, condition(result)), ("failure", "not-authorized"))

    @defer.inlineCallbacks
    def test_tlsUniqueOverTLS13(self):
        """tls-unique, undefined on TLS 1.3 and not advertised there, gets <not-authorized/>."""
        client, offered = yield self.secured()
        result = yield self.scram(client, offered, "SCRAM-SHA-256-PLUS", "tls-unique", cbData=b"\0" * 12)
        self.assertEqual((result.name, condition(result)), ("failure", "not-authorized"))

    @defer.inlineCallbacks
    def test_downgradeDetected(self):
        """Flag y (client thinks the server cannot bind) while -PLUS was offered gets <not-authorized/>."""
        client, offered = yield self.secured()
        result = yield self.scram(client, offered, "SCRAM-SHA-256", None, flag="y")
        self.assertEqual((result.name, condition(result)), ("failure", "not-authorized"))

    @defer.inlineCallbacks
    def test_plusWithoutBinding(self):
        """A -PLUS mechanism with flag n gets <malformed-request/>."""
        client, offered = yield self.secured()
        result = yield self.scram(client, offered, "SCRAM-SHA-256-PLUS", None)
        self.assertEqual((result.name, condition(result)), ("failure", "malformed-request"))

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        """A wrong password with a correct binding gets <not-authorized/>."""
        client, offered = yield self.secured()
        result = yield self.scram(client, offered, "SCRAM-SHA-256-PLUS", "tls-exporter", password="wrong")
        self.assertEqual((result.name, condition(result)), ("failure", "not-authorized"))

    @defer.inlineCallbacks
    def test_noPlusWithoutTLS(self):
        """Without TLS (c2s.require_tls = false) no -PLUS and no XEP-0440 feature are offered."""
        yield self.server.stopService()
        yield self.startServer(c2s={"require_tls": False})
        yield self.addUser("alice@localhost", "pencil")
        client = yield self.connect()
        f = yield self.openStream(client)
        mechanisms, cbTypes = features(f)
        self.assertEqual((mechanisms, cbTypes), (["SCRAM-SHA-256", "SCRAM-SHA-1"], None))
        result = yield self.scram(client, (mechanisms, cbTypes), "SCRAM-SHA-256", None)
        self.assertEqual(result.name, "success")

    @defer.inlineCallbacks
    def test_starttlsAfterAuthentication(self):
        """With TLS optional, <starttls/> after SASL succeeded in clear gets <failure/> and a close (TLS goes under SASL)."""
        yield self.server.stopService()
        yield self.startServer(c2s={"require_tls": False})
        yield self.addUser("alice@localhost", "pencil")
        client = yield self.connect()
        f = yield self.openStream(client)
        result = yield self.scram(client, features(f), "SCRAM-SHA-1", None)
        self.assertEqual(result.name, "success")
        client.restart()
        f = yield self.openStream(client)
        self.assertIsNone(next(f.elements("urn:ietf:params:xml:ns:xmpp-tls", "starttls"), None))
        client.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        yield client.waitClosed()
        self.assertEqual(client.elements[-1].toXml(), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.assertTrue(client.raw.endswith(b"</stream:stream>"))

    @defer.inlineCallbacks
    def test_noInitialResponse(self):
        """<auth/> without initial response gets an empty challenge ('='); the exchange then runs as usual (RFC 6120 §6.4.2)."""
        client, (mechanisms, cbTypes) = yield self.secured()
        sc = ScramClient("SCRAM-SHA-256-PLUS", "alice", "pencil", "tls-exporter", clientBinding(client, "tls-exporter"))
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256-PLUS'/>")
        empty = yield client.next()
        self.assertEqual(empty.toXml(), "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</challenge>")
        client.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(sc.first()).decode()}</response>")
        challenge = yield client.next()
        final = sc.final(base64.b64decode(str(challenge)))
        client.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>")
        success = yield client.next()
        self.assertEqual(base64.b64decode(str(success)), b"v=" + sc.expectedVerifier)
