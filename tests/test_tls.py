"""
Tests for jabberd.tls: real TLS handshakes between a Twisted server using
ServerTLS and a pyOpenSSL client over loopback sockets.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, ensureDeferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.basic import LineReceiver
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from jabberd import tls
from jabberd.tls import (
    ID_ON_XMPPADDR,
    ServerTLS,
    TLSConfigError,
    certificateAddresses,
    channelBindings,
    ensureCertificate,
    generateSelfSigned,
    loadKeyAndCert,
    peerCertificate,
    tlsConnectionOf,
    verifyPeerDomain,
)

# OpenSSL >= 3.0: SSL_OP_NO_EXTENDED_MASTER_SECRET is SSL_OP_BIT(0); not exported by pyOpenSSL.
OP_NO_EXTENDED_MASTER_SECRET = 1 << 0


def asyncTest(f: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Deferred[None]]:
    """Let trial run an async test method by turning its coroutine into a Deferred."""

    @functools.wraps(f)
    def wrapper(self: TestCase) -> Deferred[None]:
        return ensureDeferred(f(self))

    return wrapper


# -- certificates for the tests ----------------------------------------------


def _utf8Der(value: str) -> bytes:
    """DER UTF8String of a short value, as an xmppAddr otherName carries it."""
    data = value.encode("utf-8")
    assert len(data) < 0x80
    return bytes([0x0C, len(data)]) + data


def _writePem(path: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> str:
    """Write cert then key as one PEM file and return its path."""
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    san: list[x509.GeneralName] | None = None,
    ca: bool = False,
) -> x509.Certificate:
    """Build a certificate for subject, self-signed unless an (issuer name, issuer key) is given."""
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
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuerKey, hashes.SHA256())


@dataclass
class _TestCA:
    """A throwaway CA, its PEM file, and a way to issue client certificates."""

    name: str
    key: ec.EllipticCurvePrivateKey
    path: str

    @classmethod
    def create(cls, directory: str, name: str) -> _TestCA:
        """Make a CA named name whose certificate is written to directory/<name>.pem."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, key, ca=True)
        path = os.path.join(directory, name + ".pem")
        with open(path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        return cls(name, key, path)

    def issueClient(self, directory: str, jid: str) -> tuple[str, x509.Certificate]:
        """Issue a client certificate carrying jid as xmppAddr; return (PEM path with key, cert)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(jid, key, (self.name, self.key), san=[x509.OtherName(ID_ON_XMPPADDR, _utf8Der(jid))])
        return _writePem(os.path.join(directory, f"client-{self.name}.pem"), key, cert), cert


# -- the two ends of a connection -------------------------------------------------


@implementer(IOpenSSLClientConnectionCreator)
class _ClientOptions:
    """A deliberately plain pyOpenSSL client, so the server is tested against OpenSSL, not itself."""

    def __init__(
        self,
        trust: str | None = None,
        sni: str | None = None,
        maxVersion: int | None = None,
        certFile: str | None = None,
        session: SSL.Session | None = None,
        options: int = 0,
    ) -> None:
        self.context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        if maxVersion is not None:
            self.context.set_max_proto_version(maxVersion)
        if options:
            self.context.set_options(options)
        if trust is not None:
            self.context.load_verify_locations(trust)
            self.context.set_verify(SSL.VERIFY_PEER)
        if certFile is not None:
            self.context.use_certificate_chain_file(certFile)
            self.context.use_privatekey_file(certFile)
        self.sni = sni
        self.session = session

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """A client Connection with SNI and a session to resume, if given."""
        conn = SSL.Connection(self.context, None)
        if self.sni is not None:
            conn.set_tlsext_host_name(self.sni.encode("ascii"))
        if self.session is not None:
            conn.set_session(self.session)
        return conn


@dataclass
class _Snapshot:
    """What one end saw at handshake time (the TLS layer drops its Connection on disconnect)."""

    conn: SSL.Connection
    version: str
    cipher: str
    bindings: dict[str, bytes]
    cert: x509.Certificate | None
    verifiedPeer: x509.Certificate | None
    finished: bytes | None
    peerFinished: bytes | None
    session: SSL.Session
    resumed: bool | None
    serverRandom: bytes


@implementer(IHandshakeListener)
class _Peer(Protocol):
    """One end of a test connection: records a snapshot when the TLS handshake completes."""

    def __init__(self, isServer: bool) -> None:
        self.isServer = isServer
        self.handshake: Deferred[_Snapshot] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        """Snapshot the connection through the public helpers under test."""
        conn = tlsConnectionOf(self.transport)
        assert conn is not None
        self.handshake.callback(
            _Snapshot(
                conn=conn,
                version=conn.get_protocol_version_name(),
                cipher=conn.get_cipher_name() or "",
                bindings=channelBindings(conn, self.isServer),
                cert=conn.get_certificate(as_cryptography=True),
                verifiedPeer=peerCertificate(self.transport),
                finished=conn.get_finished(),
                peerFinished=conn.get_peer_finished(),
                session=conn.get_session(),
                resumed=tls._sessionReused(conn),
                serverRandom=conn.server_random(),
            )
        )

    def connectionLost(self, reason: object = None) -> None:
        """A connection lost before the handshake is a failed handshake."""
        if not self.handshake.called:
            self.handshake.errback(reason)
        self.lost.callback(None)


class _StartTLSPeer(_Peer, LineReceiver):
    """A tiny STARTTLS line protocol: the client asks, the server says PROCEED, both start TLS."""

    def __init__(self, isServer: bool, options: object) -> None:
        super().__init__(isServer)
        self.options = options
        self.plainConnection: object = "not checked"

    def connectionMade(self) -> None:
        """The client asks for TLS as soon as it is connected."""
        if not self.isServer:
            self.sendLine(b"STARTTLS")

    def lineReceived(self, line: bytes) -> None:
        """Each side notes there's no TLS yet, then starts it."""
        if self.isServer and line == b"STARTTLS":
            self.plainConnection = tlsConnectionOf(self.transport)
            self.sendLine(b"PROCEED")
            self.transport.startTLS(self.options)
        elif not self.isServer and line == b"PROCEED":
            self.plainConnection = tlsConnectionOf(self.transport)
            self.transport.startTLS(self.options)


class _ServerFactory(Factory):
    """Hands each accepted connection's protocol to the test through a queue."""

    def __init__(self, build: Callable[[], _Peer]) -> None:
        self.build = build
        self.peers: DeferredQueue[_Peer] = DeferredQueue()

    def buildProtocol(self, addr: object) -> _Peer:
        peer = self.build()
        self.peers.put(peer)
        return peer


class TLSTestCase(TestCase):
    """Shared fixtures: self-signed certificates for two hosts and a way to connect."""

    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.aCert, _ = ensureCertificate(self.dir, "a.example")
        self.bCert, _ = ensureCertificate(self.dir, "b.example")

    def serverTLS(self, **kwargs: Any) -> ServerTLS:
        """ServerTLS for a.example (default) and b.example."""
        certificates = {"a.example": (self.aCert, None), "b.example": (self.bCert, self.bCert)}
        return ServerTLS(certificates, "a.example", **kwargs)

    async def listen(self, factory: Factory) -> int:
        """Listen on a loopback port for the rest of the test and return its number."""
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def closeLater(self, *peers: _Peer) -> None:
        """At cleanup, close the connections and wait until both ends saw it."""

        async def close() -> None:
            for peer in peers:
                peer.handshake.addErrback(lambda failure: None)  # failures a test didn't look at

                if not peer.lost.called:
                    peer.transport.loseConnection()
            await gatherResults([peer.lost for peer in peers])

        self.addCleanup(lambda: ensureDeferred(close()))

    async def connect(self, serverOptions: object, client: _ClientOptions) -> tuple[_Peer, _Peer]:
        """Open a direct TLS connection (a TLS endpoint on the server side); return (server, client)."""
        factory = _ServerFactory(lambda: _Peer(True))
        port = await self.listen(TLSMemoryBIOFactory(serverOptions, False, factory))
        clientPeer = _Peer(False)
        await connectProtocol(wrapClientTLS(client, TCP4ClientEndpoint(reactor, "127.0.0.1", port)), clientPeer)
        serverPeer = await factory.peers.get()
        self.closeLater(clientPeer, serverPeer)
        return serverPeer, clientPeer

    async def connectStartTLS(
        self, serverOptions: object, client: _ClientOptions
    ) -> tuple[_StartTLSPeer, _StartTLSPeer]:
        """Open a plain TCP connection that both ends upgrade with STARTTLS; return (server, client)."""
        factory = _ServerFactory(lambda: _StartTLSPeer(True, serverOptions))
        port = await self.listen(factory)
        clientPeer = _StartTLSPeer(False, client)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), clientPeer)
        serverPeer = await factory.peers.get()
        self.closeLater(clientPeer, serverPeer)
        return serverPeer, clientPeer

    async def handshake(self, serverOptions: object, client: _ClientOptions) -> tuple[_Snapshot, _Snapshot]:
        """Connect and wait for both ends to finish the handshake; return their (server, client) snapshots."""
        server, client_ = await self.connect(serverOptions, client)
        return await server.handshake, await client_.handshake


# -- handshakes ----------------------------------------------------------------------


class HandshakeTests(TLSTestCase):
    """ServerTLS contexts against a real OpenSSL client."""

    @asyncTest
    async def test_tls12(self) -> None:
        """A TLS 1.2-only client completes a verified ECDHE handshake with the default context."""
        server, client = await self.handshake(
            self.serverTLS().contextFactory(), _ClientOptions(trust=self.aCert, maxVersion=SSL.TLS1_2_VERSION)
        )
        self.assertEqual((server.version, client.version), ("TLSv1.2", "TLSv1.2"))
        self.assertTrue(server.cipher.startswith("ECDHE-ECDSA-"), server.cipher)

    @asyncTest
    async def test_tls13(self) -> None:
        """A current client gets TLS 1.3."""
        server, client = await self.handshake(self.serverTLS().contextFactory(), _ClientOptions(trust=self.aCert))
        self.assertEqual((server.version, client.version), ("TLSv1.3", "TLSv1.3"))

    @asyncTest
    async def test_minVersion13RefusesTLS12Client(self) -> None:
        """With minVersion 1.3 a client that speaks at most TLS 1.2 fails the handshake on both ends."""
        server, client = await self.connect(
            self.serverTLS(minVersion="1.3").contextFactory(), _ClientOptions(maxVersion=SSL.TLS1_2_VERSION)
        )
        for peer in (server, client):
            await self.assertFailure(peer.handshake, SSL.Error)

    @asyncTest
    async def test_sniSelectsHost(self) -> None:
        """SNI picks the named host's certificate, a subdomain its parent's, no SNI the default host's."""
        serverTLS = self.serverTLS()
        aDer = x509.load_pem_x509_certificate(open(self.aCert, "rb").read())
        bDer = x509.load_pem_x509_certificate(open(self.bCert, "rb").read())
        for sni, trust, expected in [
            ("b.example", self.bCert, bDer),
            ("a.example", self.aCert, aDer),
            ("muc.b.example", self.bCert, bDer),
            ("unknown.test", self.aCert, aDer),
            (None, self.aCert, aDer),
        ]:
            server, client = await self.handshake(serverTLS.contextFactory(), _ClientOptions(trust=trust, sni=sni))
            self.assertEqual(server.cert, expected, sni)
            self.assertEqual(client.conn.get_peer_certificate(as_cryptography=True), expected, sni)

    @asyncTest
    async def test_sniOverridesStartingHost(self) -> None:
        """A connection started on a.example's context still serves b.example when SNI names it."""
        server, _ = await self.handshake(
            self.serverTLS().serverOptions("a.example"), _ClientOptions(trust=self.bCert, sni="b.example")
        )
        self.assertIn("b.example", server.cert.subject.rfc4514_string())

    @asyncTest
    async def test_tlsEndpointConnection(self) -> None:
        """Behind TLSMemoryBIOFactory, tlsConnectionOf(transport) is the TLS protocol's Connection."""
        serverPeer, clientPeer = await self.connect(self.serverTLS().contextFactory(), _ClientOptions())
        server, client = await serverPeer.handshake, await clientPeer.handshake
        self.assertIsInstance(server.conn, SSL.Connection)
        self.assertIs(server.conn, serverPeer.transport._tlsConnection)
        self.assertEqual(server.serverRandom, client.serverRandom)

    @asyncTest
    async def test_startTLS(self) -> None:
        """STARTTLS on plain TCP: no Connection before, afterwards the one the reactor's TLS layer uses."""
        serverPeer, clientPeer = await self.connectStartTLS(
            self.serverTLS().serverOptions("b.example"), _ClientOptions(trust=self.bCert)
        )
        server, client = await serverPeer.handshake, await clientPeer.handshake
        self.assertIsNone(serverPeer.plainConnection)
        self.assertIsNone(clientPeer.plainConnection)
        self.assertIs(tlsConnectionOf(serverPeer.transport), serverPeer.transport.protocol.getHandle())
        self.assertIs(server.conn, tlsConnectionOf(serverPeer.transport))
        self.assertEqual(server.serverRandom, client.serverRandom)
        self.assertIn("b.example", server.cert.subject.rfc4514_string())
        self.assertEqual(server.bindings["tls-exporter"], client.bindings["tls-exporter"])

    def test_plainTransports(self) -> None:
        """Transports without TLS give no Connection, no bindings source and no peer certificate."""
        self.assertIsNone(tlsConnectionOf(StringTransport()))
        self.assertIsNone(tlsConnectionOf(object()))
        self.assertIsNone(peerCertificate(StringTransport()))


# -- channel bindings --------------------------------------------------------------


class ChannelBindingTests(TLSTestCase):
    """Server and client must derive the same channel binding data, per RFC 5929 and RFC 9266."""

    @asyncTest
    async def test_tls13(self) -> None:
        """TLS 1.3: equal tls-exporter on both ends, no tls-unique, tls-server-end-point = SHA-256 of the DER."""
        server, client = await self.handshake(self.serverTLS().contextFactory(), _ClientOptions())
        self.assertEqual(len(server.bindings["tls-exporter"]), 32)
        self.assertEqual(server.bindings["tls-exporter"], client.bindings["tls-exporter"])
        self.assertNotIn("tls-unique", server.bindings)
        self.assertNotIn("tls-unique", client.bindings)
        self.assertEqual(server.cert.signature_algorithm_oid, x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256)
        der = server.cert.public_bytes(serialization.Encoding.DER)
        self.assertEqual(server.bindings["tls-server-end-point"], hashlib.sha256(der).digest())
        self.assertEqual(client.bindings["tls-server-end-point"], hashlib.sha256(der).digest())

    @asyncTest
    async def test_tls12(self) -> None:
        """TLS 1.2 full handshake: tls-unique is the client's Finished on both ends, tls-exporter equal (EMS)."""
        server, client = await self.handshake(
            self.serverTLS().contextFactory(), _ClientOptions(maxVersion=SSL.TLS1_2_VERSION)
        )
        self.assertFalse(server.resumed)
        self.assertEqual(server.bindings["tls-unique"], client.bindings["tls-unique"])
        self.assertEqual(server.bindings["tls-unique"], client.finished)
        self.assertEqual(server.bindings["tls-exporter"], client.bindings["tls-exporter"])
        self.assertEqual(server.bindings["tls-server-end-point"], client.bindings["tls-server-end-point"])

    @asyncTest
    async def test_tls12Resumed(self) -> None:
        """TLS 1.2 resumed session: tls-unique is the server's Finished (sent first in an abbreviated handshake)."""
        serverTLS = self.serverTLS()
        clientOptions = _ClientOptions(maxVersion=SSL.TLS1_2_VERSION)
        _, first = await self.handshake(serverTLS.contextFactory(), clientOptions)
        clientOptions.session = first.session
        server, client = await self.handshake(serverTLS.contextFactory(), clientOptions)
        self.assertEqual((server.resumed, client.resumed), (True, True))
        self.assertEqual(server.bindings["tls-unique"], client.bindings["tls-unique"])
        self.assertEqual(server.bindings["tls-unique"], server.finished)
        self.assertNotEqual(server.bindings["tls-unique"], first.bindings["tls-unique"])

    @asyncTest
    async def test_tls12WithoutExtendedMasterSecret(self) -> None:
        """TLS 1.2 without the extended master secret offers no tls-exporter (RFC 9266 §3), still tls-unique."""
        if SSL.OPENSSL_VERSION_NUMBER < 0x30000000:
            self.skipTest("needs OpenSSL 3 to turn the extended master secret off")
        server, client = await self.handshake(
            self.serverTLS().contextFactory(),
            _ClientOptions(maxVersion=SSL.TLS1_2_VERSION, options=OP_NO_EXTENDED_MASTER_SECRET),
        )
        self.assertNotIn("tls-exporter", server.bindings)
        self.assertNotIn("tls-exporter", client.bindings)
        self.assertEqual(server.bindings["tls-unique"], client.bindings["tls-unique"])


# -- client certificates -------------------------------------------------------------


class ClientCertificateTests(TLSTestCase):
    """clientCA makes the server request (not require) a certificate for SASL EXTERNAL."""

    def setUp(self) -> None:
        super().setUp()
        self.ca = _TestCA.create(self.dir, "test-ca")
        self.clientFile, self.clientCert = self.ca.issueClient(self.dir, "juliet@a.example")

    @asyncTest
    async def test_verifiedClientCertificate(self) -> None:
        """A client certificate from the configured CA is returned by peerCertificate with its xmppAddr."""
        server, _ = await self.handshake(
            self.serverTLS(clientCA=self.ca.path).contextFactory(), _ClientOptions(certFile=self.clientFile)
        )
        self.assertEqual(server.verifiedPeer, self.clientCert)
        self.assertEqual(certificateAddresses(server.verifiedPeer), ["juliet@a.example"])

    @asyncTest
    async def test_verifiedClientCertificateStartTLS(self) -> None:
        """After STARTTLS, peerCertificate finds the verified client certificate through the reactor transport."""
        serverPeer, clientPeer = await self.connectStartTLS(
            self.serverTLS(clientCA=self.ca.path).serverOptions("a.example"), _ClientOptions(certFile=self.clientFile)
        )
        await gatherResults([serverPeer.handshake, clientPeer.handshake])
        self.assertEqual(peerCertificate(serverPeer.transport), self.clientCert)
        self.assertIsNone(peerCertificate(clientPeer.transport))  # the client didn't verify the server

    @asyncTest
    async def test_verifiedClientCertificateTLS12Resumed(self) -> None:
        """A resumed TLS 1.2 session still reports the verified client certificate."""
        serverTLS = self.serverTLS(clientCA=self.ca.path)
        clientOptions = _ClientOptions(maxVersion=SSL.TLS1_2_VERSION, certFile=self.clientFile)
        _, first = await self.handshake(serverTLS.contextFactory(), clientOptions)
        clientOptions.session = first.session
        server, _ = await self.handshake(serverTLS.contextFactory(), clientOptions)
        self.assertTrue(server.resumed)
        self.assertEqual(server.verifiedPeer, self.clientCert)

    @asyncTest
    async def test_untrustedClientCertificate(self) -> None:
        """A certificate from another CA fails the handshake, so it can never pass for a verified one."""
        other = _TestCA.create(self.dir, "other-ca")
        otherFile, _ = other.issueClient(self.dir, "romeo@a.example")
        server, _ = await self.connect(
            self.serverTLS(clientCA=self.ca.path).contextFactory(), _ClientOptions(certFile=otherFile)
        )
        await self.assertFailure(server.handshake, SSL.Error)

    @asyncTest
    async def test_noClientCertificate(self) -> None:
        """A client without a certificate still connects when a certificate is requested."""
        server, _ = await self.handshake(self.serverTLS(clientCA=self.ca.path).contextFactory(), _ClientOptions())
        self.assertIsNone(server.verifiedPeer)

    @asyncTest
    async def test_notRequestedWithoutClientCA(self) -> None:
        """Without clientCA the server doesn't ask, so no peer certificate is seen."""
        server, _ = await self.handshake(self.serverTLS().contextFactory(), _ClientOptions(certFile=self.clientFile))
        self.assertIsNone(server.conn.get_peer_certificate())
        self.assertIsNone(server.verifiedPeer)


# -- files and configuration ------------------------------------------------------------


class CertificateFileTests(TestCase):
    """Generating, finding and loading certificate files."""

    def setUp(self) -> None:
        self.dir = self.mktemp()

    def test_ensureCertificateIdempotent(self) -> None:
        """The first call generates and logs data_dir/certs/<host>.pem (0600), the second reuses it."""
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        certPath, keyPath = ensureCertificate(self.dir, "example.org")
        self.assertEqual((certPath, keyPath), (os.path.join(self.dir, "certs", "example.org.pem"),) * 2)
        self.assertEqual(stat.S_IMODE(os.stat(certPath).st_mode), 0o600)
        content = open(certPath, "rb").read()
        self.assertEqual(ensureCertificate(self.dir, "example.org"), (certPath, keyPath))
        self.assertEqual(open(certPath, "rb").read(), content)
        logged = [e for e in events if e.get("path") == certPath]
        self.assertEqual(len(logged), 1)
        self.assertEqual(logged[0]["host"], "example.org")
        self.assertEqual(os.listdir(os.path.dirname(certPath)), ["example.org.pem"])

    def test_ensureCertificateRefusesPathHosts(self) -> None:
        """A host that would escape the certs directory is refused."""
        for host in ["../evil", "a/b", "..", ""]:
            self.assertRaises(TLSConfigError, ensureCertificate, self.dir, host)

    def test_generatedCertificate(self) -> None:
        """The generated certificate is ECDSA P-256 and names host and *.host (DNS-IDs), SRV-IDs and xmppAddr."""
        path = os.path.join(self.dir, "deep", "x.pem")
        generateSelfSigned("example.net", path, days=30)
        key, cert, chain = loadKeyAndCert(path, None)
        self.assertEqual(chain, [])
        self.assertIsInstance(key, ec.EllipticCurvePrivateKey)
        self.assertEqual(key.curve.name, "secp256r1")
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["example.net", "*.example.net"])
        self.assertEqual(certificateAddresses(cert), ["example.net"])
        self.assertLess(cert.not_valid_after_utc - datetime.now(timezone.utc), timedelta(days=31))

    def test_unreadableCertificate(self) -> None:
        """A missing or non-PEM certificate file gives a TLSConfigError naming the file."""
        missing = os.path.join(self.dir, "missing.pem")
        error = self.assertRaises(TLSConfigError, loadKeyAndCert, missing, None)
        self.assertIn(missing, str(error))
        os.makedirs(self.dir)
        garbage = os.path.join(self.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("not a certificate\n")
        error = self.assertRaises(TLSConfigError, loadKeyAndCert, garbage, None)
        self.assertIn(garbage, str(error))
        error = self.assertRaises(TLSConfigError, ServerTLS, {"x.example": (garbage, None)}, "x.example")
        self.assertIn(garbage, str(error))

    def test_mismatchedKey(self) -> None:
        """A key that doesn't belong to the certificate is an error naming both files."""
        certPath, _ = ensureCertificate(self.dir, "one.example")
        keyPath, _ = ensureCertificate(self.dir, "two.example")
        error = self.assertRaises(TLSConfigError, loadKeyAndCert, certPath, keyPath)
        self.assertIn(certPath, str(error))
        self.assertIn(keyPath, str(error))
        self.assertEqual(len(str(error).splitlines()), 1)

    def test_chainAndSeparateKey(self) -> None:
        """Certificates after the first are the chain; the key may come from its own file."""
        os.makedirs(self.dir)
        ca = _TestCA.create(self.dir, "chain-ca")
        leafPath, leaf = ca.issueClient(self.dir, "leaf@example.com")
        keyPem = open(leafPath, "rb").read().split(b"-----END CERTIFICATE-----\n")[1]
        bundle = os.path.join(self.dir, "bundle.pem")
        keyFile = os.path.join(self.dir, "key.pem")
        with open(bundle, "wb") as f:
            f.write(leaf.public_bytes(serialization.Encoding.PEM) + open(ca.path, "rb").read())
        with open(keyFile, "wb") as f:
            f.write(keyPem)
        _, cert, chain = loadKeyAndCert(bundle, keyFile)
        self.assertEqual(cert, leaf)
        self.assertEqual([c.subject.rfc4514_string() for c in chain], ["CN=chain-ca"])

    def test_serverTLSConfigErrors(self) -> None:
        """A bad minimum version or a default host without certificate is a TLSConfigError."""
        certPath, keyPath = ensureCertificate(self.dir, "x.example")
        certs = {"x.example": (certPath, keyPath)}
        self.assertRaises(TLSConfigError, ServerTLS, certs, "x.example", minVersion="1.1")
        self.assertRaises(TLSConfigError, ServerTLS, certs, "y.example")
        self.assertRaises(TLSConfigError, ServerTLS, certs, "x.example", ciphers="NO-SUCH-CIPHER")
        self.assertRaises(TLSConfigError, ServerTLS, certs, "x.example", clientCA=os.path.join(self.dir, "nope.pem"))


# -- identities ---------------------------------------------------------------------------


class IdentityTests(TestCase):
    """Reading XMPP identities out of certificates."""

    def setUp(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    def cert(self, *names: x509.GeneralName) -> x509.Certificate:
        """A self-signed certificate with the given SAN entries (none: no SAN extension)."""
        return _certificate("ignored.example", self.key, san=list(names) or None)

    def test_verifyPeerDomainSelfSigned(self) -> None:
        """A generated certificate matches its host and direct subdomains, nothing else."""
        path = os.path.join(self.mktemp(), "c.pem")
        generateSelfSigned("example.com", path)
        _, cert, _ = loadKeyAndCert(path, None)
        self.assertTrue(verifyPeerDomain(cert, "example.com"))
        self.assertTrue(verifyPeerDomain(cert, "EXAMPLE.com"))
        self.assertTrue(verifyPeerDomain(cert, "conference.example.com"))
        self.assertFalse(verifyPeerDomain(cert, "a.b.example.com"))
        self.assertFalse(verifyPeerDomain(cert, "example.org"))
        self.assertFalse(verifyPeerDomain(cert, "127.0.0.1"))

    def test_verifyPeerDomainSRVOnly(self) -> None:
        """An SRV-ID _xmpp-server.<domain> alone identifies the domain; _xmpp-client does not."""
        srv = lambda s: x509.OtherName(tls.ID_ON_DNSSRV, bytes([0x16, len(s)]) + s.encode())  # noqa: E731
        self.assertTrue(verifyPeerDomain(self.cert(srv("_xmpp-server.example.com")), "example.com"))
        self.assertFalse(verifyPeerDomain(self.cert(srv("_xmpp-client.example.com")), "example.com"))

    def test_verifyPeerDomainXmppAddrOnly(self) -> None:
        """An xmppAddr equal to the domain is accepted for older servers; the CN never is."""
        xmppAddr = x509.OtherName(ID_ON_XMPPADDR, _utf8Der("example.com"))
        self.assertTrue(verifyPeerDomain(self.cert(xmppAddr), "example.com"))
        self.assertFalse(verifyPeerDomain(_certificate("example.com", self.key), "example.com"))

    def test_certificateAddresses(self) -> None:
        """All xmppAddr values are returned; malformed ones, other names and missing SANs are ignored."""
        cert = self.cert(
            x509.DNSName("example.com"),
            x509.OtherName(ID_ON_XMPPADDR, _utf8Der("juliet@example.com")),
            x509.OtherName(ID_ON_XMPPADDR, b"\x16\x03abc"),  # IA5String, not UTF8String
            x509.OtherName(ID_ON_XMPPADDR, _utf8Der("ρωμέο@example.com")),
        )
        self.assertEqual(certificateAddresses(cert), ["juliet@example.com", "ρωμέο@example.com"])
        self.assertEqual(certificateAddresses(self.cert()), [])

    def test_malformedDer(self) -> None:
        """The otherName string decoder rejects truncated, overlong and mistagged values instead of raising."""
        for data in [b"", b"\x0c", b"\x0c\x05abc", b"\x0c\x02abc", b"\x0c\x85\x00\x00\x00\x00\x01a", b"\x16\x01a"]:
            self.assertIsNone(tls._parseDerString(0x0C, data), data)
        self.assertEqual(tls._parseDerString(0x0C, b"\x0c\x81\x01a"), b"a")

    def test_longXmppAddr(self) -> None:
        """An xmppAddr longer than 127 bytes (long-form DER length) round-trips."""
        jid = "x" * 300 + "@example.com"
        value = tls._derString(0x0C, jid.encode())
        self.assertEqual(certificateAddresses(self.cert(x509.OtherName(ID_ON_XMPPADDR, value))), [jid])


class LocalhostCertificateTests(TestCase):
    """The zero-configuration certificate must verify with strict RFC 6125 checkers."""

    def test_localhostCertificateVerifiesWithServiceIdentity(self):
        """service_identity accepts the generated localhost certificate for localhost and conference.localhost."""
        import tempfile

        from service_identity.cryptography import verify_certificate_hostname

        path = os.path.join(tempfile.mkdtemp(), "localhost.pem")
        generateSelfSigned("localhost", path)
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        verify_certificate_hostname(cert, "localhost")
        verify_certificate_hostname(cert, "conference.localhost")
