"""
What the federation tests share: certificates (a throwaway CA, self-signed
ones), jabberd nodes on loopback with static routes, raw clients logged in
to any server, and a loopback DNS server.
"""

from __future__ import annotations

import base64
import os
import socket
import tempfile
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import defer, reactor, task
from twisted.names import authority, dns, server
from twisted.names import client as dnsclient
from twisted.trial import unittest

from jabberd import tls
from jabberd.config import fromDict
from jabberd.passwords import credentialsFor
from jabberd.service import XMPPServer
from tests.harness import LOOPBACK, NS_SASL, NS_TLS, ClientTLSOptions, RawClient, rawConnect, xml

__all__ = [
    "LOOPBACK",
    "TestCA",
    "Node",
    "RawClient",
    "freePort",
    "loginRaw",
    "startDNS",
    "eventually",
    "xml",
]


def freePort() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# -- certificates -------------------------------------------------------------------


def _pemKey(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class TestCA:
    """A throwaway CA issuing XMPP server certificates (DNS-IDs, both EKUs unless told)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jabberd s2s test CA")])
        now = datetime.now(timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = os.path.join(directory, "ca.pem")
        with open(self.path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(self.path, 0o644)

    def issue(self, domain: str, clientAuth: bool = True, names: list[str] | None = None) -> tuple[str, str]:
        """A certificate for C{domain} (and *.domain): (cert path, key path), world readable."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if clientAuth else [])
        sans = [x509.DNSName(n) for n in (names or [domain, "*." + domain])]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        suffix = "" if clientAuth else "-serveronly"
        certPath = os.path.join(self.directory, f"{domain}{suffix}.crt")
        keyPath = os.path.join(self.directory, f"{domain}{suffix}.key")
        with open(certPath, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(keyPath, "wb") as f:
            f.write(_pemKey(key))
        os.chmod(certPath, 0o644)
        os.chmod(keyPath, 0o644)
        return certPath, keyPath


def combined(pair: tuple[str, str]) -> str:
    """One PEM file with the certificate and its key (for ClientTLSOptions(certFile=...))."""
    path = pair[0] + ".combined.pem"
    with open(path, "wb") as out:
        for part in pair:
            with open(part, "rb") as f:
                out.write(f.read())
    return path


def selfSigned(directory: str, domain: str) -> tuple[str, str]:
    """A self-signed certificate for C{domain}, as jabberd generates: (cert path, key path)."""
    path = os.path.join(directory, f"{domain}-self.pem")
    tls.generateSelfSigned(domain, path)
    os.chmod(path, 0o644)
    with open(path, "rb") as f:
        data = f.read()
    certPath, keyPath = path + ".crt", path + ".key"
    start = data.index(b"-----BEGIN CERTIFICATE-----")
    with open(certPath, "wb") as f:
        f.write(data[start:])
    with open(keyPath, "wb") as f:
        f.write(data[:start])
    os.chmod(certPath, 0o644)
    os.chmod(keyPath, 0o644)
    return certPath, keyPath


# -- jabberd nodes ------------------------------------------------------------------


class Node:
    """
    One jabberd on loopback serving C{domains}, its s2s listener on a port
    chosen up front (so peers' static routes can name it).
    """

    def __init__(self, test: unittest.TestCase, *domains: str, certificate: tuple[str, str] | None = None, **s2s: Any) -> None:
        self.test = test
        self.domains = domains
        self.dataDir = tempfile.mkdtemp(prefix="jabberd-s2s-")
        self.s2sPort = freePort()
        self.certificate = certificate
        s2s.setdefault("listen", [f"tcp:{self.s2sPort}:interface={LOOPBACK}"])
        self.s2sConfig = s2s
        self.server: XMPPServer | None = None

    def route(self, *domains: str) -> dict[str, str]:
        """Static routes to this node for C{domains} (its own by default)."""
        return {d: f"{LOOPBACK}:{self.s2sPort}" for d in (domains or self.domains)}

    def configure(self, **s2s: Any) -> None:
        self.s2sConfig.update(s2s)

    @defer.inlineCallbacks
    def start(self, resolver: Any = None, **overrides: Any):
        data: dict[str, Any] = {
            "hosts": list(self.domains),
            "data_dir": self.dataDir,
            "c2s": {"listen": [f"tcp:0:interface={LOOPBACK}"], "listen_tls": []},
            "http": {"listen": [], "listen_tls": []},
            "s2s": self.s2sConfig,
            "auth": {"scram_iterations": 4096},
        }
        if self.certificate is not None:
            data["tls"] = {"certificate": self.certificate[0], "key": self.certificate[1]}
        data.update(overrides)
        if os.environ.get("JABBERD_S2S_TRAFFIC"):
            from jabberd.s2s import stream

            stream.LOG_TRAFFIC = True
        self.server = XMPPServer(fromDict(data), reactor=reactor)
        self.server.s2sResolver = resolver
        self.server.startService()
        self.test.addCleanup(self.stop)
        yield self.server.ready
        return self

    @defer.inlineCallbacks
    def stop(self):
        if self.server is not None and self.server.running:
            yield self.server.stopService()

    @property
    def fed(self):
        return self.server.s2s

    @defer.inlineCallbacks
    def addUser(self, address: str, password: str = "secret"):
        user, _, host = address.partition("@")
        yield self.server.accounts.create(host, user, credentialsFor(password, 4096))

    def trustFile(self, domain: str) -> str:
        return self.certificate[0] if self.certificate else os.path.join(self.dataDir, "certs", f"{domain}.pem")

    @defer.inlineCallbacks
    def login(self, address: str, password: str = "secret", resource: str = "r", create: bool = True):
        """A raw client on this node, authenticated and bound (C{address}/C{resource})."""
        if create:
            yield self.addUser(address, password)
        client = yield loginRaw(
            self.test, LOOPBACK, self.server.port("c2s"), address, password, resource, trust=None
        )
        return client


@defer.inlineCallbacks
def loginRaw(test: unittest.TestCase, host: str, port: int, address: str, password: str, resource: str, trust: str | None = None):
    """
    Log in with STARTTLS and PLAIN to any server and bind C{resource}; the
    client's C{jid} is the bound JID and C{read} its element reader.
    """
    user, _, domain = address.partition("@")
    client = yield rawConnect(port)
    test.addCleanup(client.disconnect)
    client.open(domain)
    features = yield client.next()
    assert features.name == "features", xml(features)
    client.send(f"<starttls xmlns='{NS_TLS}'/>")
    proceed = yield client.next()
    assert proceed.name == "proceed", xml(proceed)
    client.startTLS(ClientTLSOptions(trust=trust, sni=domain))
    client.open(domain)
    yield client.next()
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
    answer = yield client.next()
    assert answer.name == "success", xml(answer)
    client.restart()
    client.open(domain)
    yield client.next()
    client.send(f"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")
    reply = yield client.next()
    assert reply.getAttribute("type") == "result", xml(reply)
    client.jid = str(reply.bind.jid)
    return client


def inboundMethods(fed: Any, remote: str) -> list[str]:
    """How C{remote} authenticated, for each of our domains on each open incoming stream."""
    from jabberd.s2s.stream import InboundStream

    return [
        how
        for s in fed.streams
        if isinstance(s, InboundStream) and not s.closing
        for (sender, _), how in sorted(s.pairs.items())
        if sender == remote
    ]


@defer.inlineCallbacks
def nextMatching(client: RawClient, predicate: Any, timeout: float = 10.0):
    """The next element (skipping others) for which C{predicate} is true."""
    while True:
        element = yield client.next(timeout)
        if predicate(element):
            return element


@defer.inlineCallbacks
def eventually(predicate: Any, timeout: float = 10.0):
    """Wait until C{predicate()} is true."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not reached in time")
        yield task.deferLater(reactor, 0.02, lambda: None)


# -- DNS ----------------------------------------------------------------------------


class MemoryAuthority(authority.FileAuthority):
    """An authoritative zone held in memory: {name: [Record_*, ...]}."""

    def __init__(self, zone: str, records: dict[str, list[Any]]) -> None:
        self._zone, self._records = zone, records
        super().__init__(zone)

    def loadFile(self, filename: Any) -> None:
        zone = self._zone.encode()
        self.soa = (
            zone,
            dns.Record_SOA(mname=b"ns." + zone, rname=b"root." + zone, serial=1, refresh=60, retry=60, expire=60, minimum=60, ttl=60),
        )
        self.records = {zone: [self.soa[1]]}
        for name, records in self._records.items():
            self.records.setdefault(name.lower().encode(), []).extend(records)


def startDNS(test: unittest.TestCase, zone: str, records: dict[str, list[Any]]) -> tuple[Any, int]:
    """
    Serve C{records} from a twisted.names server on 127.0.0.1 (UDP and TCP,
    one ephemeral port); returns (a resolver asking only it, the port).
    """
    factory = server.DNSServerFactory(authorities=[MemoryAuthority(zone, records)])
    for _ in range(20):
        port = freePort()
        try:
            udp = reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface=LOOPBACK)
        except Exception:
            continue
        try:
            tcp = reactor.listenTCP(port, factory, interface=LOOPBACK)
        except Exception:
            udp.stopListening()
            continue
        test.addCleanup(udp.stopListening)
        test.addCleanup(tcp.stopListening)
        break
    else:
        raise RuntimeError("no free port for the DNS server")
    resolver = dnsclient.Resolver(servers=[(LOOPBACK, port)], reactor=reactor)
    return resolver, port
