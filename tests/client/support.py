"""
What the client tests need besides a jabberd server: certificates, a
Prosody server from Debian run from a temp folder, a local DNS server, the
command line as a subprocess, and connected L{Client}s.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import defer, protocol, reactor, ssl
from twisted.names import authority, dns, server
from twisted.names import client as dnsclient
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.client import Client, ClientOptions
from jabberd.xmlstream import StreamError as XMLStreamError
from jabberd.xmlstream import StreamParser

LOOPBACK = "127.0.0.1"
ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")


# -- certificates ------------------------------------------------------------------


def _write(path: str, *parts: bytes) -> str:
    with open(path, "wb") as f:
        for part in parts:
            f.write(part)
    return path


def _pem(key: Any, cert: x509.Certificate) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: x509.Name | None, key: Any) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )


def makeServerCertificate(directory: str, names: list[str], filename: str = "server.pem") -> tuple[str, str]:
    """A self-signed server certificate naming C{names} (DNS-IDs); returns (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(names[0], None, key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certPath = _write(os.path.join(directory, filename), cert.public_bytes(serialization.Encoding.PEM))
    keyPath = _write(
        os.path.join(directory, filename + ".key"),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return certPath, keyPath


class CertificateAuthority:
    """A throwaway CA that issues client certificates with an xmppAddr (XEP-0178)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            _builder("jabberd test CA", None, self.key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = _write(os.path.join(directory, "ca.pem"), self.cert.public_bytes(serialization.Encoding.PEM))

    def issueClient(self, address: str) -> str:
        """A PEM file (key + certificate) for the JID C{address}."""
        key = ec.generate_private_key(ec.SECP256R1())
        value = address.encode("utf-8")
        san = x509.SubjectAlternativeName([x509.OtherName(ID_ON_XMPPADDR, bytes([0x0C, len(value)]) + value)])
        cert = (
            _builder(address, self.cert.subject, key)
            .add_extension(san, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return _write(os.path.join(self.directory, f"client-{address}.pem"), _pem(key, cert))


def freePort() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def waitForPort(port: int, timeout: float = 15.0) -> None:
    """Block until something accepts connections on loopback C{port}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# -- Prosody ---------------------------------------------------------------------------

PROSODY_CONFIG = """
-- written by jabberd's client tests
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ {c2sTLS} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
component_ports = {{ }}
admin_socket = "{dir}/prosody.sock"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "vcard_legacy", "posix", "version" }}
modules_disabled = {{ "s2s", "offline" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
certificates = "{dir}/certs"
ssl = {{ certificate = "{cert}"; key = "{key}"; }}

VirtualHost "localhost"
    ssl = {{ certificate = "{cert}"; key = "{key}"; }}

VirtualHost "sha256.localhost"
    password_hash = "SHA-256"
    ssl = {{ certificate = "{cert}"; key = "{key}"; }}
"""


def _dieWithParent() -> None:
    """In the child: get SIGTERM when the test process dies, even if it crashes (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Prosody:
    """
    Prosody from Debian, run from a config written into a temp folder:
    loopback only, free ports, its own data folder and certificate. Two
    hosts: "localhost" (SCRAM-SHA-1 credentials, Prosody's default) and
    "sha256.localhost" (SCRAM-SHA-256).
    """

    binary = shutil.which("prosody")
    ctl = shutil.which("prosodyctl")

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="jabberd-prosody-")
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "certs"))
        self.cert, self.key = makeServerCertificate(self.dir, ["localhost", "sha256.localhost"])
        self.c2s, self.c2sTLS = freePort(), freePort()
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        with open(self.config, "w") as f:
            f.write(PROSODY_CONFIG.format(dir=self.dir, c2s=self.c2s, c2sTLS=self.c2sTLS, cert=self.cert, key=self.key))
        self.process: subprocess.Popen | None = None
        self._accounts: set[tuple[str, str]] = set()

    @classmethod
    def skipReason(cls) -> str | None:
        """Why Prosody tests cannot run here, or None."""
        if not cls.binary or not cls.ctl:
            return "Prosody is not installed (apt-get install -y prosody)"
        return None

    def start(self) -> None:
        """Start Prosody in the foreground and wait until it accepts connections."""
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config, "-F"],
            stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "stdout.log"), "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_dieWithParent,
        )
        try:
            waitForPort(self.c2s)
            waitForPort(self.c2sTLS)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"Prosody did not start; see {self.dir}/prosody.log")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def register(self, address: str, password: str) -> str:
        """Create the account (prosodyctl register); returns the address."""
        user, _, host = address.partition("@")
        if (user, host) not in self._accounts:
            subprocess.run(
                [self.ctl, "--config", self.config, "register", user, host, password],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=30,
            )
            self._accounts.add((user, host))
        return address

    def options(self, **kw: Any) -> ClientOptions:
        """ClientOptions for this Prosody (STARTTLS port, trusting its certificate)."""
        kw.setdefault("host", LOOPBACK)
        kw.setdefault("port", self.c2sTLS if kw.get("directTLS") else self.c2s)
        kw.setdefault("trust", self.cert)
        kw.setdefault("timeout", 10.0)
        kw.setdefault("requestTimeout", 10.0)
        return ClientOptions(**kw)


_shared: dict[str, Prosody] = {}


def sharedProsody() -> Prosody:
    """
    One Prosody for the whole test run, started on first use and stopped
    when the process exits (trial has no per-class setup hook).
    """
    if "prosody" not in _shared:
        reason = Prosody.skipReason()
        if reason:
            raise unittest.SkipTest(reason)
        prosody = Prosody()
        prosody.start()
        atexit.register(prosody.stop)
        _shared["prosody"] = prosody
    return _shared["prosody"]


class ProsodyTestCase(unittest.TestCase):
    """Tests against the shared Prosody; each test uses its own accounts."""

    prosody: Prosody

    def setUp(self) -> None:
        self.prosody = sharedProsody()

    @defer.inlineCallbacks
    def login(self, address: str, password: str = "secret", **kw: Any):
        """A connected Client for a (new) Prosody account, closed at cleanup."""
        self.prosody.register(address.split("/")[0], password)
        client = Client(address, password, self.prosody.options(**kw))
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        return client


# -- jabberd -------------------------------------------------------------------------


def jabberdOptions(test: Any, **kw: Any) -> ClientOptions:
    """ClientOptions for the ServerMixin's server: loopback, trusting its certificate."""
    direct = kw.get("directTLS")
    kw.setdefault("host", LOOPBACK)
    kw.setdefault("port", test.server.port("c2s_tls" if direct else "c2s"))
    kw.setdefault("trust", test.certificatePath())
    kw.setdefault("timeout", 10.0)
    kw.setdefault("requestTimeout", 10.0)
    return ClientOptions(**kw)


@defer.inlineCallbacks
def loginJabberd(test: Any, address: str, password: str = "secret", **kw: Any):
    """A connected Client on the ServerMixin's server, closed at cleanup."""
    client = Client(address, password, jabberdOptions(test, **kw))
    yield defer.ensureDeferred(client.connect())
    test.addCleanup(client.close)
    return client


# -- waiting for stanzas -------------------------------------------------------------


class Inbox:
    """Collects what a listener is given; C{next()} waits for the next one matching."""

    def __init__(self, predicate: Any = None) -> None:
        self.items: list[Any] = []
        self.predicate = predicate or (lambda item: True)
        self._waiters: list[tuple[Any, defer.Deferred]] = []

    def __call__(self, item: Any) -> None:
        if not self.predicate(item):
            return
        for entry in list(self._waiters):
            predicate, d = entry
            if predicate(item):
                self._waiters.remove(entry)
                d.callback(item)
                return
        self.items.append(item)

    def next(self, predicate: Any = None, timeout: float = 5.0) -> defer.Deferred:
        predicate = predicate or (lambda item: True)
        for item in self.items:
            if predicate(item):
                self.items.remove(item)
                return defer.succeed(item)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((predicate, d))
        d.addTimeout(timeout, reactor)
        return d


@defer.inlineCallbacks
def eventually(predicate: Any, timeout: float = 5.0):
    """Wait until C{predicate()} is true (the server's side of a close lands a moment later)."""
    from twisted.internet import task

    def holds() -> bool:
        try:
            return bool(predicate())
        except LookupError:  # e.g. the roster item is not there yet
            return False

    deadline = reactor.seconds() + timeout
    while not holds():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not reached in time")
        yield task.deferLater(reactor, 0.01, lambda: None)


# -- a scripted receiving entity ------------------------------------------------------

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_COMPRESS = "http://jabber.org/protocol/compress"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " from='localhost' id='s{n}' version='1.0'>"
)


class ScriptedServer(protocol.Protocol):
    """
    A scripted receiving entity: STARTTLS, then SASL PLAIN for
    alice/secret, then (if C{offer}) zlib compression, then bind (and the
    legacy session if C{session} says so); after that it echoes every
    message back to its sender.
    """

    def __init__(self, factory: ScriptedServerFactory) -> None:
        self.f = factory
        self.stage = "tls"
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.headers = 0

    def connectionMade(self) -> None:
        self.f.protocols.append(self)
        self.newParser()

    def newParser(self) -> None:
        self.parser = StreamParser(self.onStart, self.onElement, self.onEnd, 10**6, 100)

    def onEnd(self) -> None:
        self.write("</stream:stream>")
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.inflate is not None:
            self.f.compressedIn += len(data)
            data = self.inflate.decompress(data)
            self.f.decompressed += data
        try:
            self.parser.feed(data)
        except XMLStreamError:
            # e.g. a client closing the old stream right after <success/>
            self.f.unparsed.append(data)
            self.transport.loseConnection()

    def write(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.transport.write(data)

    def onStart(self, attrs: dict) -> None:
        self.headers += 1
        self.f.headers.append(self.stage)
        features = {
            "tls": f"<starttls xmlns='{NS_TLS}'><required/></starttls>",
            "sasl": f"<mechanisms xmlns='{NS_SASL}'><mechanism>{self.f.mechanism}</mechanism></mechanisms>",
            "authenticated": (
                f"<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>" if self.f.offer else ""
            )
            + f"<bind xmlns='{NS_BIND}'/>",
            "compressed": f"<bind xmlns='{NS_BIND}'/>",
        }[self.stage]
        if self.stage in ("authenticated", "compressed") and self.f.session:
            optional = "<optional/>" if self.f.session == "optional" else ""
            features += f"<session xmlns='{NS_SESSION}'>{optional}</session>"
        self.write(HEADER.format(n=self.headers) + f"<stream:features>{features}</stream:features>")

    def onElement(self, e: domish.Element) -> None:
        if (e.uri, e.name) == (NS_TLS, "starttls"):
            self.write(f"<proceed xmlns='{NS_TLS}'/>")
            self.transport.startTLS(self.f.tlsOptions)
            self.stage = "sasl"
            self.newParser()
        elif (e.uri, e.name) == (NS_SASL, "auth") and self.f.mechanism == "SCRAM-SHA-1":
            # A server that does not know the password: it plays along, then
            # claims success with a made-up server signature.
            clientNonce = base64.b64decode(str(e)).decode().split(",r=", 1)[1]
            first = f"r={clientNonce}forged,s=QSXCR+Q6sek8bf92,i=4096"
            self.write(f"<challenge xmlns='{NS_SASL}'>{base64.b64encode(first.encode()).decode()}</challenge>")
        elif (e.uri, e.name) == (NS_SASL, "response"):
            self.f.proofs.append(base64.b64decode(str(e)))
            forged = base64.b64encode(b"v=" + base64.b64encode(b"\0" * 20)).decode()
            self.write(f"<success xmlns='{NS_SASL}'>{forged}</success>")
            self.stage = "authenticated"
            self.newParser()
        elif (e.uri, e.name) == (NS_SASL, "auth"):
            if base64.b64decode(str(e)) == b"\0alice\0secret":
                self.write(f"<success xmlns='{NS_SASL}'/>")
                self.stage = "authenticated"
                self.newParser()
            else:
                self.write(f"<failure xmlns='{NS_SASL}'><not-authorized/></failure>")
        elif (e.uri, e.name) == (NS_COMPRESS, "compress"):
            self.f.compressRequest = e.toXml()
            if self.f.refuse:
                self.write(f"<failure xmlns='{NS_COMPRESS}'><{self.f.refuse}/></failure>")
                return
            self.write(f"<compressed xmlns='{NS_COMPRESS}'/>")
            self.deflate, self.inflate = zlib.compressobj(), zlib.decompressobj()
            self.stage = "compressed"
            self.newParser()
        elif e.name == "iq" and e.getAttribute("type") == "set" and e.firstChildElement().name == "session":
            self.f.sessionRequests.append(e.firstChildElement().toXml())
            self.write(f"<iq type='result' id='{e['id']}'/>")
        elif e.name == "iq" and e.getAttribute("type") == "set":
            self.write(f"<iq type='result' id='{e['id']}'><bind xmlns='{NS_BIND}'><jid>alice@localhost/z</jid></bind></iq>")
        elif e.name == "message":
            self.f.messages.append(e.toXml())
            self.write(f"<message from='echo@localhost' to='alice@localhost/z' type='chat'><body>{e.body}</body></message>")
        elif (e.uri, e.name) == (NS_STREAMS, "error"):
            self.f.errors.append([(c.uri, c.name, [g.name for g in c.elements()]) for c in e.elements()])


class ScriptedServerFactory(protocol.Factory):
    def __init__(
        self, tlsOptions: object, offer: bool = True, refuse: str | None = None, session: str | None = None, mechanism: str = "PLAIN"
    ) -> None:
        self.tlsOptions = tlsOptions
        self.mechanism = mechanism
        self.proofs: list[bytes] = []
        self.offer = offer
        self.refuse = refuse
        self.session = session
        self.sessionRequests: list[str] = []
        self.protocols: list[CompressingServer] = []
        self.compressRequest: str | None = None
        self.headers: list[str] = []
        self.unparsed: list[bytes] = []
        self.messages: list[str] = []
        self.errors: list[str] = []
        self.compressedIn = 0
        self.decompressed = b""

    def buildProtocol(self, addr: object) -> ScriptedServer:
        return ScriptedServer(self)



def serveScripted(test: unittest.TestCase, **kw: Any) -> tuple[ScriptedServerFactory, int, str]:
    """Run a L{ScriptedServer} on loopback; returns (factory, port, its certificate to trust)."""
    certPath, keyPath = makeServerCertificate(tempfile.mkdtemp(), ["localhost"])
    with open(certPath, "rb") as c, open(keyPath, "rb") as k:
        options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
    factory = ScriptedServerFactory(options, **kw)
    port = reactor.listenTCP(0, factory, interface=LOOPBACK)
    test.addCleanup(port.stopListening)
    return factory, port.getHost().port, certPath


# -- DNS -------------------------------------------------------------------------------


class MemoryAuthority(authority.FileAuthority):
    """An authoritative zone held in memory: {name: [Record_*, ...]}."""

    def __init__(self, zone: str, records: dict[str, list[Any]]) -> None:
        self._zone, self._records = zone, records
        super().__init__(zone)

    def loadFile(self, filename: Any) -> None:
        zone = self._zone.encode()
        self.soa = (zone, dns.Record_SOA(mname=b"ns." + zone, rname=b"root." + zone, serial=1, refresh=60, retry=60, expire=60, minimum=60, ttl=60))
        self.records = {zone: [self.soa[1]]}
        for name, records in self._records.items():
            self.records.setdefault(name.lower().encode(), []).extend(records)


def startDNS(test: unittest.TestCase, zone: str, records: dict[str, list[Any]]):
    """
    Serve C{records} from an authoritative twisted.names server on
    127.0.0.1 (ephemeral UDP port); returns a resolver that asks only it.
    """
    factory = server.DNSServerFactory(authorities=[MemoryAuthority(zone, records)])
    port = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface=LOOPBACK)
    test.addCleanup(port.stopListening)
    resolver = dnsclient.Resolver(servers=[(LOOPBACK, port.getHost().port)], reactor=reactor)
    return resolver


# -- the command line ---------------------------------------------------------------


class CLIProcess(protocol.ProcessProtocol):
    """C{python -m jabberd.client ...} as a user runs it: stdout, stderr, exit code."""

    def __init__(self, stdin: bytes | None) -> None:
        self.stdin = stdin
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred = defer.Deferred()
        self._errWaiters: list[tuple[bytes, defer.Deferred]] = []
        self._outWaiters: list[tuple[int, defer.Deferred]] = []
        self._textWaiters: list[tuple[bytes, defer.Deferred]] = []

    def connectionMade(self) -> None:
        if self.stdin is not None:
            self.transport.write(self.stdin)
            self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out += data
        for entry in list(self._outWaiters):
            lines, d = entry
            if self.out.count(b"\n") >= lines:
                self._outWaiters.remove(entry)
                d.callback(self.out)
        for entry in list(self._textWaiters):
            text, d = entry
            if text in self.out:
                self._textWaiters.remove(entry)
                d.callback(self.out)

    def errReceived(self, data: bytes) -> None:
        self.err += data
        for entry in list(self._errWaiters):
            text, d = entry
            if text in self.err:
                self._errWaiters.remove(entry)
                d.callback(self.err)

    def processEnded(self, reason: Any) -> None:
        code = reason.value.exitCode
        self.ended.callback((self.out.decode(), self.err.decode(), code))
        for _, d in self._errWaiters + self._outWaiters + self._textWaiters:
            if not d.called:
                d.errback(RuntimeError(f"the command ended ({code}): {self.err.decode()!r}"))

    def waitStderr(self, text: str, timeout: float = 15.0) -> defer.Deferred:
        """Wait until stderr contains C{text} (e.g. the -v "listening as" line)."""
        if text.encode() in self.err:
            return defer.succeed(self.err)
        d: defer.Deferred = defer.Deferred()
        self._errWaiters.append((text.encode(), d))
        return d.addTimeout(timeout, reactor)

    def waitStdout(self, text: str, timeout: float = 15.0) -> defer.Deferred:
        """Wait until stdout contains C{text}."""
        d: defer.Deferred = defer.Deferred()
        self._textWaiters.append((text.encode(), d))
        self.outReceived(b"")
        return d.addTimeout(timeout, reactor)

    def waitLines(self, count: int, timeout: float = 15.0) -> defer.Deferred:
        """Wait until stdout has C{count} lines."""
        d: defer.Deferred = defer.Deferred()
        self._outWaiters.append((count, d))
        self.outReceived(b"")
        return d.addTimeout(timeout, reactor)

    def interrupt(self) -> None:
        """Ctrl-C."""
        self.transport.signalProcess("INT")


def startCLI(test: unittest.TestCase, args: list[str], password: str | None = "secret", stdin: bytes | None = b"", env: dict[str, str] | None = None) -> CLIProcess:
    """Start the command line with C{args}; the password goes in through the environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("JABBERD_CLIENT_")}
    if password is not None:
        environment["JABBERD_CLIENT_PASSWORD"] = password
    environment.update(env or {})
    process = CLIProcess(stdin)
    transport = reactor.spawnProcess(process, sys.executable, [sys.executable, "-m", "jabberd.client", *args], env=environment, path=os.getcwd())

    def kill() -> Any:
        if not process.ended.called:
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass
        return process.ended

    test.addCleanup(kill)
    return process


def runCLI(test: unittest.TestCase, args: list[str], **kw: Any) -> defer.Deferred:
    """Run the command line to its end: fires with (stdout, stderr, exit code)."""
    return startCLI(test, args, **kw).ended.addTimeout(60, reactor)
