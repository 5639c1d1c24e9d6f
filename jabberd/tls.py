"""
TLS for jabberd: certificates, server contexts, channel bindings, peer identity.

Everything that touches pyOpenSSL lives here, so streams (c2s, s2s, BOSH) only
ever ask three questions: "give me something to pass to startTLS", "what are
this connection's channel bindings" and "who is the peer".

How to get at the TLS connection from Twisted (26): both for a reactor
transport after C{transport.startTLS(...)} and for a protocol wrapped by
L{TLSMemoryBIOFactory} (a TLS endpoint, XEP-0368 direct TLS), the protocol's
C{transport.getHandle()} returns the L{OpenSSL.SSL.Connection}. On a plain TCP
transport C{getHandle()} returns the socket, and some time after the
connection is lost the TLS layer drops its Connection (C{getHandle()} is
then C{None}); so L{tlsConnectionOf} checks the type rather than trusting
the method's name.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from service_identity.cryptography import extract_patterns
from service_identity.exceptions import CertificateError, VerificationError
from service_identity.hazmat import DNS_ID, SRV_ID, verify_service_identity
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

try:
    # pyOpenSSL has no public API for "was this session resumed" or "was the
    # extended master secret negotiated"; its cryptography bindings do. Every
    # use below is guarded and degrades to the safe answer: omit the binding.
    from OpenSSL._util import lib as _lib
except ImportError:  # pragma: no cover - a pyOpenSSL that moved its internals
    _lib = None

log = Logger()

__all__ = [
    "TLSConfigError",
    "ServerTLS",
    "generateSelfSigned",
    "ensureCertificate",
    "loadKeyAndCert",
    "channelBindings",
    "tlsConnectionOf",
    "peerCertificate",
    "certificateAddresses",
    "verifyPeerDomain",
    "ID_ON_XMPPADDR",
    "ID_ON_DNSSRV",
]

#: XEP-0178 / RFC 6120 §13.7.1.4: otherName carrying a JID as UTF8String.
ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")
#: RFC 4985: otherName carrying an SRV-ID ("_xmpp-server.example.com") as IA5String.
ID_ON_DNSSRV = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")

#: TLS 1.2 suites: forward secret AEAD only (Mozilla "intermediate" without
#: DHE, which OpenSSL 3 would need explicit parameters for). TLS 1.3 suites are
#: OpenSSL's defaults, which are all fine.
DEFAULT_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

#: The private keys a server certificate can usefully have: DSA is left out
#: because neither TLS 1.3 nor DEFAULT_CIPHERS can use it. (Ed25519/Ed448
#: work with TLS 1.3 clients only.)
ServerPrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
_SERVER_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)

_MIN_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}

_PEM_KEY = re.compile(
    rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL
)


class TLSConfigError(Exception):
    """A certificate, key or TLS setting is unusable; the message names the file or setting."""


# -- certificates -------------------------------------------------------------


def _aLabel(host: str) -> str:
    """Return the ASCII (IDNA A-label) form of host, as dNSName and SRVName require."""
    try:
        return host.encode("ascii").decode("ascii").lower()
    except UnicodeEncodeError:
        import idna

        return idna.encode(host, uts46=True).decode("ascii")


def _sha256(data: bytes) -> bytes:
    """SHA-256 of data."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def _derString(tag: int, value: bytes) -> bytes:
    """DER-encode a string value (tag 0x0c UTF8String, 0x16 IA5String) for an otherName."""
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    length = len(value).to_bytes((len(value).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def _parseDerString(tag: int, data: bytes) -> bytes | None:
    """Decode a DER string of the given tag; None for anything malformed (certificates are untrusted)."""
    if len(data) < 2 or data[0] != tag:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if len(data) != offset + length:
        return None
    return data[offset:]


def generateSelfSigned(host: str, path: str, days: int = 3650) -> None:
    """
    Write a new self-signed key and certificate for host as one PEM file (0600).

    EC P-256 keeps handshakes cheap. The certificate names host and *.host
    (so MUC/pubsub subdomains are covered; conference.host for a single-label
    host like localhost) as DNS-IDs, the XMPP SRV-IDs, and
    the host as xmppAddr for peers that still only check that (RFC 6120
    §13.7.1.2). The file is written to a temporary name and renamed so a
    crash or a concurrent reader never sees half a file.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    aLabel = _aLabel(host)
    # CN is limited to 64 characters; the SAN is what peers check anyway.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host if len(host) <= 64 else aLabel[:64])])
    now = datetime.now(timezone.utc)
    # A wildcard over a single label (*.localhost) makes RFC 6125 checkers
    # such as service_identity reject the whole certificate, so such hosts
    # name their default MUC subdomain explicitly instead.
    subdomains = [x509.DNSName("*." + aLabel)] if "." in aLabel else [x509.DNSName("conference." + aLabel)]
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName(aLabel),
            *subdomains,
            x509.OtherName(ID_ON_DNSSRV, _derString(0x16, b"_xmpp-client." + aLabel.encode())),
            x509.OtherName(ID_ON_DNSSRV, _derString(0x16, b"_xmpp-server." + aLabel.encode())),
            x509.OtherName(ID_ON_XMPPADDR, _derString(0x0C, host.encode("utf-8"))),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))  # tolerate peers with a slow clock
        .not_valid_after(now + timedelta(days=days))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    _atomicWrite(path, data)


def _atomicWrite(path: str, data: bytes) -> None:
    """Write data to path via a 0600 temporary file in the same directory and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def ensureCertificate(dataDir: str, host: str) -> tuple[str, str]:
    """
    Return (certPath, keyPath) of data_dir/certs/<host>.pem, generating it if missing.

    This is what makes the zero-config start work: a host without a
    configured certificate gets a self-signed one that survives restarts.
    """
    if not host or host in (".", "..") or "/" in host or "\\" in host or "\0" in host:
        raise TLSConfigError(f"cannot name a certificate file after host {host!r}")
    path = os.path.join(dataDir, "certs", host + ".pem")
    if not os.path.exists(path):
        generateSelfSigned(host, path)
        log.info("Generated a self-signed certificate for {host} at {path}", host=host, path=path)
    return path, path


def _readFile(path: str) -> bytes:
    """Read a whole file, turning OS errors into a one-line TLSConfigError naming it."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"{path}: cannot read: {e.strerror or e}") from None


def loadKeyAndCert(
    certPath: str, keyPath: str | None
) -> tuple[ServerPrivateKey, x509.Certificate, list[x509.Certificate]]:
    """
    Load a private key, its certificate and the chain certificates after it.

    The key may be in the certificate file (keyPath None or the same path),
    as ensureCertificate writes it and as many admins keep it. Every failure
    is one TLSConfigError line naming the file, because it ends up in the
    startup log of someone who just edited the config. The objects are
    cryptography's: pyOpenSSL 26 deprecates passing its own X509/PKey to
    Context.use_certificate/use_privatekey, and takes these directly.
    """
    certData = _readFile(certPath)
    keyData = certData if keyPath is None or keyPath == certPath else _readFile(keyPath)
    keyFile = certPath if keyPath is None else keyPath
    try:
        certs = x509.load_pem_x509_certificates(certData)
    except ValueError:
        raise TLSConfigError(f"{certPath}: no PEM certificate found") from None
    match = _PEM_KEY.search(keyData)
    if match is None:
        raise TLSConfigError(f"{keyFile}: no PEM private key found")
    try:
        key = serialization.load_pem_private_key(match.group(0), password=None)
    except TypeError:
        raise TLSConfigError(f"{keyFile}: the private key is encrypted; give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TLSConfigError(f"{keyFile}: unusable private key: {e}") from None
    if not isinstance(key, _SERVER_KEY_TYPES):
        raise TLSConfigError(f"{keyFile}: unsupported private key type {type(key).__name__}")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise TLSConfigError(f"{keyFile}: the private key does not match the certificate in {certPath}")
    return key, certs[0], certs[1:]


# -- server contexts ----------------------------------------------------------


def _normalHost(name: str | bytes | None) -> str | None:
    """Lower-case a host or SNI name without its trailing dot; None if unusable."""
    if name is None:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.rstrip(".").lower() or None


def _verifiedOnly(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    """
    Keep OpenSSL's verdict on the client's certificate chain.

    A certificate that doesn't verify fails the handshake (a missing one
    doesn't). That is what makes peerCertificate trustworthy with public API
    only: pyOpenSSL resets the recorded verify result to "ok" whenever a
    callback accepts, so a tolerant callback would leave an unverified
    certificate indistinguishable from a verified one, including in the
    resumed sessions it would be cached into.
    """
    return bool(ok)


@implementer(IOpenSSLServerConnectionCreator)
class _ServerOptions:
    """What startTLS and TLSMemoryBIOFactory take: a new server Connection on the chosen host's context."""

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """Make the Connection for one TLS session (Twisted sets accept state and app data)."""
        return SSL.Connection(self._context, None)

    def getContext(self) -> SSL.Context:
        """The context itself, for code written against the older IOpenSSLContextFactory."""
        return self._context


class ServerTLS:
    """
    Holds one pyOpenSSL Context per host and selects it by SNI.

    One context per host rather than one certificate list, because the
    STARTTLS case knows the host from the stream header before TLS starts
    (and clients often send no SNI), while direct TLS only learns it from
    SNI. All contexts share every setting but the certificate, so switching
    contexts in the SNI callback changes nothing else about the session.
    """

    def __init__(
        self,
        certificates: dict[str, tuple[str, str | None]],
        defaultHost: str,
        minVersion: str = "1.2",
        ciphers: str = "",
        clientCA: str | None = None,
    ) -> None:
        if minVersion not in _MIN_VERSIONS:
            raise TLSConfigError(f"TLS minimum version must be one of {', '.join(_MIN_VERSIONS)}, not {minVersion!r}")
        self._contexts: dict[str, SSL.Context] = {}
        for host, (certPath, keyPath) in certificates.items():
            self._contexts[_normalHost(host) or host] = self._makeContext(
                host, certPath, keyPath, _MIN_VERSIONS[minVersion], ciphers or DEFAULT_CIPHERS, clientCA
            )
        self.defaultHost = _normalHost(defaultHost) or defaultHost
        if self.defaultHost not in self._contexts:
            raise TLSConfigError(f"no certificate for the default host {defaultHost!r}")

    def _makeContext(
        self, host: str, certPath: str, keyPath: str | None, minVersion: int, ciphers: str, clientCA: str | None
    ) -> SSL.Context:
        """Build one host's context: its certificate plus the settings every host shares."""
        key, cert, chain = loadKeyAndCert(certPath, keyPath)
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(minVersion)
        # Compression leaks secrets (CRIME); renegotiation is never needed and
        # would make tls-unique ambiguous. ECDHE groups are OpenSSL's automatic
        # choice (X25519, P-256, ...) since 1.1.0; nothing to set.
        ctx.set_options(SSL.OP_NO_COMPRESSION | getattr(SSL, "OP_NO_RENEGOTIATION", 0))
        # XMPP keeps many idle connections; don't hold 2x16 KiB of buffers each.
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        try:
            ctx.set_cipher_list(ciphers.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError):
            raise TLSConfigError(f"no usable TLS 1.2 cipher in {ciphers!r}") from None
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
        for extra in chain:
            ctx.add_extra_chain_cert(extra)
        # Required for session resumption once client certificates are
        # requested; per host so a session is only resumed on its own host.
        # (At most 32 bytes: exactly a SHA-256.)
        ctx.set_session_id(_sha256(b"jabberd\0" + host.encode("utf-8")))
        if clientCA is not None:
            try:
                ctx.load_verify_locations(clientCA)
                ctx.load_client_ca(clientCA.encode())  # names the acceptable CAs to the client
            except (SSL.Error, OSError) as e:
                raise TLSConfigError(f"{clientCA}: cannot load client CA certificates: {e}") from None
            # Request, never require (no VERIFY_FAIL_IF_NO_PEER_CERT).
            ctx.set_verify(SSL.VERIFY_PEER, _verifiedOnly)
        ctx.set_tlsext_servername_callback(self._switchBySNI)
        return ctx

    def _lookup(self, host: str | bytes | None) -> SSL.Context | None:
        """The context for host, else for its parent domain (covered by the *.host name), else None."""
        name = _normalHost(host)
        if name is None:
            return None
        ctx = self._contexts.get(name)
        if ctx is None and "." in name:
            ctx = self._contexts.get(name.split(".", 1)[1])
        return ctx

    def _switchBySNI(self, conn: SSL.Connection) -> None:
        """SNI callback: if the client named another hosted domain, serve that domain's certificate."""
        ctx = self._lookup(conn.get_servername())
        if ctx is not None and ctx is not conn.get_context():
            conn.set_context(ctx)

    def contextFor(self, host: str | None) -> SSL.Context:
        """The context of host (a hosted domain or a subdomain of one), else of the default host."""
        return self._lookup(host) or self._contexts[self.defaultHost]

    def serverOptions(self, host: str | None = None) -> _ServerOptions:
        """
        An object for transport.startTLS(...) and TLSMemoryBIOFactory starting at host's context.

        For STARTTLS pass the stream's `to` host; SNI, when sent and naming
        another hosted domain, still wins.
        """
        return _ServerOptions(self.contextFor(host))

    def contextFactory(self) -> _ServerOptions:
        """serverOptions for the default host: for direct TLS (XEP-0368), where only SNI names the host."""
        return self.serverOptions(None)

    @property
    def hosts(self) -> list[str]:
        """The hosts that have a context."""
        return list(self._contexts)


# -- connection facts ---------------------------------------------------------


def tlsConnectionOf(transport: object) -> SSL.Connection | None:
    """
    The pyOpenSSL Connection under a Twisted transport, or None when it isn't TLS.

    After startTLS on a reactor transport Twisted replaces the transport's
    getHandle with the TLS layer's; a protocol behind TLSMemoryBIOFactory has
    the TLS protocol itself as transport, whose getHandle is the Connection.
    Plain TCP returns its socket, and test transports have no getHandle.
    """
    getHandle: Callable[[], object] | None = getattr(transport, "getHandle", None)
    if getHandle is None:
        return None
    try:
        handle = getHandle()
    except Exception:
        return None
    return handle if isinstance(handle, SSL.Connection) else None


def _nativeCall(name: str, conn: SSL.Connection) -> int | None:
    """Call an OpenSSL function on the connection's SSL*; None if this build doesn't expose it."""
    function = getattr(_lib, name, None) if _lib is not None else None
    ssl = getattr(conn, "_ssl", None)
    if function is None or ssl is None:
        return None
    return int(function(ssl))


def _sessionReused(conn: SSL.Connection) -> bool | None:
    """Whether the handshake resumed a session (abbreviated handshake); None if unknown."""
    result = _nativeCall("SSL_session_reused", conn)
    return None if result is None else bool(result)


def _extendedMasterSecret(conn: SSL.Connection) -> bool | None:
    """Whether TLS 1.2 negotiated the extended master secret (RFC 7627); None if unknown."""
    if _lib is not None and not getattr(_lib, "Cryptography_HAS_GET_EXTMS_SUPPORT", True):
        return None
    result = _nativeCall("SSL_get_extms_support", conn)
    return None if result is None or result < 0 else bool(result)


def _tlsUnique(conn: SSL.Connection, isServer: bool) -> bytes | None:
    """
    RFC 5929 tls-unique: the first Finished message of the (only) handshake.

    In a full handshake the client sends its Finished first; in an
    abbreviated (resumed) one the server does. So a server without
    resumption takes the peer's Finished, with resumption its own, and a
    client the other way round. Omitted when ambiguous: renegotiation
    happened, resumption can't be detected, or a resumed session lacks the
    extended master secret (the triple handshake attack makes such values
    collide across connections, RFC 7627).
    """
    if conn.total_renegotiations() != 0:
        return None
    resumed = _sessionReused(conn)
    if resumed is None or (resumed and _extendedMasterSecret(conn) is not True):
        return None
    serverSentFirst = resumed
    return conn.get_finished() if serverSentFirst == isServer else conn.get_peer_finished()


def _serverEndPoint(conn: SSL.Connection, isServer: bool) -> bytes | None:
    """
    RFC 5929 §4.1 tls-server-end-point: hash of the server certificate.

    The hash is the certificate's signature hash, MD5 and SHA-1 upgraded to
    SHA-256; undefined (None) for signatures without one, like Ed25519.
    """
    cert = conn.get_certificate(as_cryptography=True) if isServer else conn.get_peer_certificate(as_cryptography=True)
    if cert is None:
        return None
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


def channelBindings(conn: SSL.Connection, isServer: bool = True) -> dict[str, bytes]:
    """
    The channel binding data this connection can offer, by type name.

    For SCRAM-*-PLUS and XEP-0440: tls-unique only on TLS 1.2 (RFC 5929 is
    not defined for 1.3), tls-exporter (RFC 9266) on TLS 1.3 and on TLS 1.2
    only with the extended master secret, tls-server-end-point always when
    the certificate's signature has a hash.
    """
    bindings: dict[str, bytes] = {}
    version = conn.get_protocol_version_name()
    if version == "TLSv1.2":
        unique = _tlsUnique(conn, isServer)
        if unique:
            bindings["tls-unique"] = unique
    if version == "TLSv1.3" or (version == "TLSv1.2" and _extendedMasterSecret(conn) is True):
        # RFC 9266 §2: a zero-length context (not "no context": in TLS 1.2
        # the two differ; pyOpenSSL sends use_context=1 for b"").
        bindings["tls-exporter"] = conn.export_keying_material(b"EXPORTER-Channel-Binding", 32, b"")
    if version in ("TLSv1.2", "TLSv1.3"):
        endPoint = _serverEndPoint(conn, isServer)
        if endPoint:
            bindings["tls-server-end-point"] = endPoint
    return bindings


def peerCertificate(transport: object) -> x509.Certificate | None:
    """
    The peer's certificate if it was verified during the handshake, else None.

    A connection whose verify mode has VERIFY_PEER only completes its
    handshake with a certificate that verified (ServerTLS with clientCA: one
    from that CA) or with none; a resumed session carries the certificate
    verified when it was made. Without VERIFY_PEER (no clientCA) nothing was
    verified, so nothing is returned, whatever the peer sent.
    """
    conn = tlsConnectionOf(transport)
    if conn is None or not conn.get_verify_mode() & SSL.VERIFY_PEER:
        return None
    return conn.get_peer_certificate(as_cryptography=True)


# -- identities in certificates -------------------------------------------------


def _asCryptography(cert: x509.Certificate | crypto.X509) -> x509.Certificate:
    """Accept pyOpenSSL certificates too, since that's what some Twisted APIs hand out."""
    return cert.to_cryptography() if isinstance(cert, crypto.X509) else cert


def certificateAddresses(cert: x509.Certificate | crypto.X509) -> list[str]:
    """
    The xmppAddr JIDs (XEP-0178 / RFC 6120 §13.7.1.4) in the certificate's SAN.

    Malformed entries are skipped, not fatal: the certificate came from the
    network. The strings are not yet validated as JIDs; the caller does that.
    """
    try:
        san = _asCryptography(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    addresses = []
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id != ID_ON_XMPPADDR:
            continue
        value = _parseDerString(0x0C, other.value)
        if value is None:
            continue
        try:
            addresses.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return addresses


def verifyPeerDomain(cert: x509.Certificate | crypto.X509, domain: str) -> bool:
    """
    Whether cert names domain for an XMPP server (RFC 6125 as RFC 6120 §13.7.2.1 applies it).

    Any one presented identifier matching is enough: a DNS-ID (wildcards as
    RFC 6125 allows), the SRV-ID _xmpp-server.<domain>, or, for older
    servers, an xmppAddr equal to the domain. The CN is never used.
    """
    cert = _asCryptography(cert)
    try:
        patterns = extract_patterns(cert)
        ids = [DNS_ID(domain), SRV_ID("_xmpp-server." + domain)]
    except (CertificateError, ValueError, TypeError):
        patterns, ids = [], []
    for serviceID in ids:
        try:
            verify_service_identity(patterns, obligatory_ids=[serviceID], optional_ids=[])
        except (VerificationError, CertificateError):
            continue
        return True
    wanted = domain.rstrip(".").casefold()
    return any(address.casefold() == wanted for address in certificateAddresses(cert))
