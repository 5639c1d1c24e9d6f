"""
Who is the peer server: its certificate checked in Python after the handshake.

TLS on s2s asks for the peer's certificate but accepts whatever comes (a
self-signed peer must still be able to fall back to dialback; a
ServerTLS with clientCA would fail such handshakes instead).  This module
then decides, per domain, whether the certificate authenticates the peer:
the chain must verify against the trust store (the configured CA bundle or
OpenSSL's default paths) and the certificate must name the domain as an
XMPP server (RFC 6125 as RFC 6120 §13.7.2 applies it, L{tls.verifyPeerDomain}).

The extended key usage matters in one place: a certificate used to log in
with SASL EXTERNAL (XEP-0178) as the initiating server is a TLS *client*
certificate, so when it lists EKUs, clientAuth must be one of them (many
public CAs now issue serverAuth only; such peers use dialback instead).
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import SSL, crypto
from twisted.logger import Logger

from jabberd import tls

log = Logger()

__all__ = ["TrustStore", "PeerCertificate", "CLIENT", "SERVER", "ANY"]

#: what a certificate is being used for, checked against its EKU
CLIENT, SERVER, ANY = "client", "server", "any"

_EKU = {
    CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
    SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
}


class TrustStore:
    """The CAs peer certificates must chain to."""

    def __init__(self, caFile: str = "") -> None:
        self._store = crypto.X509Store()
        if caFile:
            try:
                self._store.load_locations(caFile)
            except (crypto.Error, SSL.Error, OSError) as e:
                raise tls.TLSConfigError(f"{caFile}: cannot load CA certificates: {e}") from None
        else:
            paths = ssl.get_default_verify_paths()
            cafile = os.environ.get(paths.openssl_cafile_env) or paths.cafile
            capath = os.environ.get(paths.openssl_capath_env) or paths.capath
            if cafile or capath:
                try:
                    self._store.load_locations(cafile or None, capath or None)
                except (crypto.Error, SSL.Error, OSError) as e:
                    log.warn("cannot load the default CA store: {e}", e=e)

    def verifies(self, leaf: x509.Certificate, chain: list[x509.Certificate]) -> bool:
        """Whether C{leaf} chains to a trusted CA through C{chain} (validity dates included)."""
        try:
            context = crypto.X509StoreContext(
                self._store,
                crypto.X509.from_cryptography(leaf),
                [crypto.X509.from_cryptography(c) for c in chain],
            )
            context.verify_certificate()
        except crypto.X509StoreContextError as e:
            log.debug("peer certificate does not verify: {e}", e=e)
            return False
        except Exception:  # a certificate from the network that OpenSSL cannot even load
            log.failure("checking a peer certificate failed")
            return False
        return True


def _allows(cert: x509.Certificate, purpose: str) -> bool:
    """Whether the certificate's EKU (if it has one) allows C{purpose}."""
    if purpose == ANY:
        return True
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
    return _EKU[purpose] in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


class PeerCertificate:
    """The certificate a peer presented on one connection, and what it proves."""

    def __init__(self, trust: TrustStore, leaf: x509.Certificate | None, chain: list[x509.Certificate]) -> None:
        self.leaf = leaf
        self._trusted = leaf is not None and trust.verifies(leaf, chain)

    @classmethod
    def of(cls, trust: TrustStore, transport: Any) -> PeerCertificate:
        """The peer certificate on C{transport} (none when it is not TLS or the peer sent none)."""
        conn = tls.tlsConnectionOf(transport)
        if conn is None:
            return cls(trust, None, [])
        leaf = conn.get_peer_certificate(as_cryptography=True)
        sent = conn.get_peer_cert_chain(as_cryptography=True) or []
        # The client side's chain starts with the leaf; the server side's doesn't.
        chain = [c for c in sent if leaf is None or c != leaf]
        return cls(trust, leaf, chain)

    @property
    def trusted(self) -> bool:
        """The chain verifies against the trust store."""
        return self._trusted

    def authenticates(self, domain: str, purpose: str = ANY) -> bool:
        """Whether the certificate is trusted, names C{domain} and may be used for C{purpose}."""
        if not self._trusted or self.leaf is None:
            return False
        return _allows(self.leaf, purpose) and tls.verifyPeerDomain(self.leaf, domain)
