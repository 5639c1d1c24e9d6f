"""
TLS for the client: who we trust, how the server proves its name, and the
channel-binding data SCRAM-*-PLUS needs.

RFC 6120 §13.7.2 / RFC 7590: the reference identity is the XMPP domain we
asked for, never the host an SRV record pointed to, so a hijacked DNS
answer cannot redirect us to another certificate holder. The certificate
must name the domain as a DNS-ID or as the SRV-ID C{_xmpp-client.<domain>}
(RFC 6125); service_identity checks both. Skipping all of this is possible
only by asking for it (C{insecure=True}); a self-signed test server is
better trusted explicitly (C{trust=<its certificate>}).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import idna
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from OpenSSL import SSL, crypto
from cryptography import x509
from service_identity.exceptions import CertificateError, VerificationError
from service_identity.hazmat import (
    DNS_ID,
    SRV_ID,
    DNSPattern,
    IPAddress_ID,
    IPAddressPattern,
    SRVPattern,
    verify_service_identity,
)
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from jabberd.client.errors import TLSFailed

try:
    # pyOpenSSL has no public call for "did TLS 1.2 negotiate the extended
    # master secret" or for the text of a verify error; its cryptography
    # bindings do.  Every use is guarded and falls back to the safe answer.
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib
except ImportError:  # pragma: no cover
    _ffi = _lib = None

__all__ = ["ClientTLS", "channelBindings", "tlsConnection"]

#: RFC 4985: otherName carrying an SRV-ID ("_xmpp-client.example.com").
ID_ON_DNSSRV = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")

_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}


def _verifyErrorText(err: int) -> str:
    """OpenSSL's words for a certificate verification error code."""
    if _lib is not None and hasattr(_lib, "X509_verify_cert_error_string"):
        try:
            return _ffi.string(_lib.X509_verify_cert_error_string(err)).decode("ascii", "replace")
        except Exception:  # pragma: no cover - defensive
            pass
    return f"verification error {err}"


def _serviceIDs(domain: str) -> list[Any]:
    """The identities that may name the XMPP service of C{domain}."""
    try:
        return [IPAddress_ID(str(ipaddress.ip_address(domain.strip("[]"))))]
    except ValueError:
        pass
    return [DNS_ID(domain), SRV_ID("_xmpp-client." + domain)]


def _ia5(data: bytes) -> bytes | None:
    """The content of a short-form DER IA5String (an SRV-ID is at most 255 octets)."""
    if len(data) >= 2 and data[0] == 0x16:
        if data[1] < 0x80 and len(data) == 2 + data[1]:
            return data[2:]
        if data[1] == 0x81 and len(data) >= 3 and len(data) == 3 + data[2]:
            return data[3:]
    return None


def _patterns(cert: Any) -> list[Any]:
    """
    The certificate's DNS, SRV and IP identities, each checked on its own.

    service_identity's C{extract_patterns} rejects the whole certificate
    when one name is unusable for it (e.g. "*.localhost", a wildcard over a
    single label); one odd name must not hide a good one, so we parse the
    names one by one and skip those it refuses.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    patterns: list[Any] = []
    for name in san.get_values_for_type(x509.DNSName):
        try:
            patterns.append(DNSPattern.from_bytes(name.encode("utf-8")))
        except (CertificateError, ValueError):
            continue
    for address in san.get_values_for_type(x509.IPAddress):
        patterns.append(IPAddressPattern(address))
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id != ID_ON_DNSSRV:
            continue
        value = _ia5(other.value)
        try:
            if value is not None:
                patterns.append(SRVPattern.from_bytes(value))
        except (CertificateError, ValueError):
            continue
    return patterns


def certificateNames(cert: Any, domain: str) -> bool:
    """Whether the (cryptography) certificate names C{domain}'s XMPP service."""
    try:
        patterns = _patterns(cert)
        ids = _serviceIDs(domain)
    except (CertificateError, ValueError, TypeError):
        return False
    for serviceID in ids:
        try:
            verify_service_identity(patterns, obligatory_ids=[serviceID], optional_ids=[])
        except (VerificationError, CertificateError):
            continue
        return True
    return False


@implementer(IOpenSSLClientConnectionCreator)
class ClientTLS:
    """
    What C{startTLS} and C{wrapClientTLS} take: one client TLS connection
    to the XMPP service of C{domain}.

    @param trust: a PEM file of certificates to trust instead of the
        system's CAs (a private CA, or the self-signed certificate itself).
    @param insecure: accept any certificate; for test servers only, and
        only when the caller says so.
    @param certificate: a PEM file with the client certificate (and chain)
        for SASL EXTERNAL; C{key} is its private key (default: same file).
    @param alpn: ALPN protocols to offer (XEP-0368: C{["xmpp-client"]}).
    @param minVersion: oldest TLS version, "1.2" or "1.3".
    @param maxVersion: newest TLS version; only tests have a reason to cap it.
    """

    def __init__(
        self,
        domain: str,
        *,
        trust: str | None = None,
        insecure: bool = False,
        certificate: str | None = None,
        key: str | None = None,
        alpn: list[str] | None = None,
        minVersion: str = "1.2",
        maxVersion: str | None = None,
    ) -> None:
        if trust and insecure:
            raise ValueError("trust and insecure contradict each other; choose one")
        self.domain = domain
        self.insecure = insecure
        self._sni: bytes | None
        try:
            ipaddress.ip_address(domain.strip("[]"))
            self._sni = None  # RFC 6066: no IP literals in SNI
        except ValueError:
            self._sni = idna.encode(domain, uts46=True)
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        try:
            ctx.set_min_proto_version(_VERSIONS[minVersion])
            if maxVersion is not None:
                ctx.set_max_proto_version(_VERSIONS[maxVersion])
        except KeyError as e:
            raise ValueError(f"TLS version must be one of {', '.join(_VERSIONS)}, not {e.args[0]!r}") from None
        ctx.set_options(SSL.OP_NO_COMPRESSION | getattr(SSL, "OP_NO_RENEGOTIATION", 0))
        if not insecure:
            try:
                if trust:
                    ctx.load_verify_locations(trust)
                else:
                    ctx.set_default_verify_paths()
            except (SSL.Error, OSError) as e:
                raise TLSFailed(f"cannot load trusted certificates from {trust}: {e}") from None
        if certificate:
            try:
                ctx.use_certificate_chain_file(certificate)
                ctx.use_privatekey_file(key or certificate)
                ctx.check_privatekey()
            except (SSL.Error, OSError) as e:
                raise TLSFailed(f"cannot use client certificate {certificate}: {e}") from None
        if alpn:
            ctx.set_alpn_protos([p.encode("ascii") for p in alpn])
        self._context = ctx

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A new Connection verifying the server against C{domain}."""
        connection = SSL.Connection(self._context, None)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        if self.insecure:
            connection.set_verify(SSL.VERIFY_NONE, lambda *a: True)
        else:
            connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verifier(tlsProtocol))
        return connection

    def _verifier(self, tlsProtocol: Any):
        """
        The OpenSSL verify callback for one connection.

        It reports the first problem as a L{TLSFailed} through
        C{failVerification}, so the stream ends with a reason a person can
        act on instead of OpenSSL's generic "certificate verify failed".
        """
        domain = self.domain
        state = {"protocol": tlsProtocol}

        def fail(message: str) -> bool:
            protocol = state.pop("protocol", None)
            if protocol is not None:
                protocol.failVerification(Failure(TLSFailed(message)))
            return False

        def verify(conn: SSL.Connection, cert: crypto.X509, err: int, depth: int, ok: int) -> bool:
            if "protocol" not in state:
                return False  # already failed
            if not ok:
                return fail(
                    f"the certificate of {domain} is not trusted: {_verifyErrorText(err)}"
                    " (give its CA or the certificate itself with trust, or use insecure for a test server)"
                )
            if depth == 0 and not certificateNames(cert.to_cryptography(), domain):
                return fail(f"the server's certificate does not name {domain}")
            return True

        return verify


def tlsConnection(transport: Any) -> SSL.Connection | None:
    """The pyOpenSSL Connection under a transport, or None if it is not TLS."""
    getHandle = getattr(transport, "getHandle", None)
    if getHandle is None:
        return None
    try:
        handle = getHandle()
    except Exception:
        return None
    return handle if isinstance(handle, SSL.Connection) else None


def _extendedMasterSecret(conn: SSL.Connection) -> bool:
    """Whether TLS 1.2 negotiated the extended master secret (RFC 7627); False if unknown."""
    function = getattr(_lib, "SSL_get_extms_support", None) if _lib is not None else None
    ssl = getattr(conn, "_ssl", None)
    if function is None or ssl is None or not getattr(_lib, "Cryptography_HAS_GET_EXTMS_SUPPORT", True):
        return False
    return int(function(ssl)) == 1


def _serverEndPoint(conn: SSL.Connection) -> bytes | None:
    """RFC 5929 §4.1: the server certificate hashed with its signature's hash (MD5/SHA-1 → SHA-256)."""
    cert = conn.get_peer_certificate(as_cryptography=True)
    if cert is None:
        return None
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:  # Ed25519 and friends: undefined
        return None
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


def channelBindings(conn: SSL.Connection) -> dict[str, bytes]:
    """
    The channel-binding data of this (client) connection, by type.

    tls-exporter (RFC 9266) on TLS 1.3, and on TLS 1.2 with the extended
    master secret; tls-unique (RFC 5929) on TLS 1.2 only: in a full
    handshake it is the client's own Finished message (this client never
    resumes sessions: each connection has a fresh context); and
    tls-server-end-point whenever the certificate's signature has a hash.
    """
    bindings: dict[str, bytes] = {}
    version = conn.get_protocol_version_name()
    if version == "TLSv1.2" and conn.total_renegotiations() == 0:
        finished = conn.get_finished()
        if finished:
            bindings["tls-unique"] = finished
    if version == "TLSv1.3" or (version == "TLSv1.2" and _extendedMasterSecret(conn)):
        bindings["tls-exporter"] = conn.export_keying_material(b"EXPORTER-Channel-Binding", 32, b"")
    if version in ("TLSv1.2", "TLSv1.3"):
        endPoint = _serverEndPoint(conn)
        if endPoint:
            bindings["tls-server-end-point"] = endPoint
    return bindings
