"""
The PROXY protocol (jabberd/proxyprotocol.py): a listener written
C{haproxy:...} takes the client's address from the header a proxy sends
first, and every per-address defence (the connection limit, the SASL
throttle, the log) uses it; a bad or missing header closes only that
connection.  Then the standalone connection manager (a real `twistd -n
jabberd-bosh`) with C{[core] proxy_protocol}: 150 web clients behind it are
150 addresses to the server, past its limit of 100 per address.
"""

from __future__ import annotations

import base64
import os
import struct

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from components.bosh.framing import NS_HTTPBIND
from jabberd.proxyprotocol import v1Header
from tests.c2s.test_plus import ScramClient, clientBinding, features
from tests.components.bosh.support import WebMixin
from tests.harness import LOOPBACK, NS_SASL, rawConnect, xml
from tests.hostile.base import HostileMixin
from tests.hostile.test_attacks import sleep
from tests.hostile.test_web import ByteClient
from tests.test_ctl import tomlString
from tests.test_twistd import TwistdMixin, listening

PROXY = f"haproxy:tcp:0:interface={LOOPBACK}"
PLAIN = f"tcp:0:interface={LOOPBACK}"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
STREAM_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)


def v1(source: str, family: str = "TCP4", destination: str = LOOPBACK) -> bytes:
    """A PROXY v1 line as HAProxy writes it for a client at C{source}."""
    return f"PROXY {family} {source} {destination} 40000 5222\r\n".encode()


def v2(source: str, command: int = 0x1) -> bytes:
    """A PROXY v2 header (version 2, C{command} 1 = PROXY, 0 = LOCAL) for an IPv4 TCP client at C{source}."""
    addresses = bytes(map(int, source.split("."))) + bytes([127, 0, 0, 1]) + struct.pack("!HH", 40000, 5222)
    return V2_SIGNATURE + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def plainAuth(user: str, password: str) -> str:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


class ProxyListenerTests(HostileMixin, unittest.TestCase):
    """c2s listeners written haproxy:..., next to ordinary ones."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(
            c2s={"listen": [PLAIN, PROXY], "listen_tls": [PLAIN, PROXY], "max_connections_per_address": 3},
            auth={"throttle_delay": 0.3, "throttle_max_delay": 5.0, "max_attempts": 10},
        )
        yield self.addUser("alice@localhost")
        self.factory = self.server._c2sFactories[0]

    def proxyPort(self, kind: str = "c2s") -> int:
        """The haproxy: listener of C{kind} (listed second)."""
        return self.server.ports[kind][1].getHost().port

    @defer.inlineCallbacks
    def viaProxy(self, header: bytes, kind: str = "c2s"):
        """A L{RawClient} on the haproxy: listener that has sent C{header}."""
        client = yield rawConnect(self.proxyPort(kind))
        self.addCleanup(client.disconnect)
        client.send(header)
        return client

    def addressOf(self, client) -> str:
        """The address the server recorded for the stream of C{client} (matched by its local port)."""
        port = client.transport.getHost().port
        for stream in (s for f in self.server._c2sFactories for s in f.streams):
            if self._tcpPeerPort(stream.transport) == port:
                return stream.peerAddress
        raise AssertionError(f"no stream for local port {port}")

    @staticmethod
    def _tcpPeerPort(transport) -> int:
        while getattr(transport, "transport", None) is not None:
            transport = transport.transport
        return transport.getPeer().port

    def captureLog(self) -> list[str]:
        lines: list[str] = []

        def observer(event):
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return lines

    # -- the address the header names is the client's ---------------------------------

    @defer.inlineCallbacks
    def test_countedUnderClaimedAddress(self):
        """Connections whose header names 127.0.0.5 are counted as 127.0.0.5: its limit is reached, another claimed address and the proxy's own are not."""
        log = self.captureLog()
        clients = []
        for _ in range(3):
            client = yield self.viaProxy(v1("127.0.0.5"))
            yield self.openStream(client)
            clients.append(client)
        self.assertEqual(self.addressOf(clients[0]), "127.0.0.5")
        extra = yield self.viaProxy(v1("127.0.0.5"))
        yield self.assertStreamError(extra, "policy-violation")
        self.assertNotIn("from", extra.headers[0])  # refused before any byte was read
        self.assertIn("too many connections from 127.0.0.5", log)
        other = yield self.viaProxy(v1("127.0.0.6"))
        yield self.openStream(other)
        self.assertEqual(self.factory.perAddress.counts, {"127.0.0.5": 3, "127.0.0.6": 1})
        # Every proxied connection came from 127.0.0.1, which is not charged:
        # an ordinary client from there gets its own three.
        for _ in range(3):
            direct = yield self.connect()
            yield self.openStream(direct)
        self.assertEqual(self.factory.perAddress.counts, {"127.0.0.5": 3, "127.0.0.6": 1, LOOPBACK: 3})
        self.assertFalse(any(c.lost for c in clients))
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_v2AndIPv6Headers(self):
        """A binary v2 header and a v1 TCP6 header name their clients; a v2 LOCAL header (a health check) counts as the proxy itself."""
        binary = yield self.viaProxy(v2("127.0.0.7"))
        yield self.openStream(binary)
        six = yield self.viaProxy(v1("2001:db8::1", "TCP6", "::1"))
        yield self.openStream(six)
        local = yield self.viaProxy(v2("0.0.0.0", command=0x0))
        yield self.openStream(local)
        self.assertEqual(
            (self.addressOf(binary), self.addressOf(six), self.addressOf(local)), ("127.0.0.7", "2001:db8::1", LOOPBACK)
        )
        self.assertEqual(self.factory.perAddress.counts, {"127.0.0.7": 1, "2001:db8::1": 1, LOOPBACK: 1})

    @defer.inlineCallbacks
    def test_headerInPieces(self):
        """A header that arrives a few bytes at a time, with the stream header in the same read as its end, is still read."""
        header = v1("127.0.0.9")
        pieces = [header[i : i + 4] for i in range(0, len(header), 4)]
        client = yield self.viaProxy(pieces[0])
        for piece in pieces[1:-1]:
            yield sleep(0.01)
            client.send(piece)
        client.send(pieces[-1] + STREAM_HEADER)
        answer = yield client.next()
        self.assertEqual(answer.name, "features", xml(answer))
        self.assertEqual(self.addressOf(client), "127.0.0.9")

    @defer.inlineCallbacks
    def test_saslThrottleKeyedOnClaimedAddress(self):
        """A second failed login from the claimed address waits; a guess claiming another address, or from the proxy's own, does not."""

        @defer.inlineCallbacks
        def guess(client, user: str):
            yield self.openStream(client)
            yield self.starttls(client)
            start = reactor.seconds()
            client.send(plainAuth(user, "wrong"))
            answer = yield client.next(timeout=10)
            self.assertEqual(answer.name, "failure", xml(answer))
            return reactor.seconds() - start

        took = yield guess((yield self.viaProxy(v1("127.0.0.5"))), "alice")
        self.assertLess(took, 0.25)
        took = yield guess((yield self.viaProxy(v1("127.0.0.5"))), "mallory")
        self.assertGreaterEqual(took, 0.28)
        took = yield guess((yield self.viaProxy(v1("127.0.0.6"))), "trent")
        self.assertLess(took, 0.25)
        took = yield guess((yield self.connect()), "walter")
        self.assertLess(took, 0.25)

    # -- TLS through the wrapper --------------------------------------------------------

    @defer.inlineCallbacks
    def scramPlus(self, client) -> str:
        """SCRAM-SHA-256-PLUS with tls-exporter on a stream under TLS; the bound JID."""
        offered = features(client.elements[-1])
        self.assertIn("SCRAM-SHA-256-PLUS", offered[0])
        sc = ScramClient("SCRAM-SHA-256-PLUS", "alice", "secret", "tls-exporter", clientBinding(client, "tls-exporter"))
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256-PLUS'>{base64.b64encode(sc.first()).decode()}</auth>")
        challenge = yield client.next()
        response = sc.final(base64.b64decode(str(challenge)))
        client.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(response).decode()}</response>")
        success = yield client.next()
        self.assertEqual(success.name, "success", xml(success))
        client.restart()
        yield self.openStream(client)
        jid = yield self.bindResource(client, "proxied")
        return jid

    @defer.inlineCallbacks
    def test_starttlsWithChannelBinding(self):
        """STARTTLS after the header works, and SCRAM-SHA-256-PLUS binds to the client's own TLS channel."""
        client = yield self.viaProxy(v1("127.0.0.5"))
        yield self.openStream(client)
        yield self.starttls(client)
        jid = yield self.scramPlus(client)
        self.assertEqual(jid, "alice@localhost/proxied")
        self.assertEqual(self.addressOf(client), "127.0.0.5")

    @defer.inlineCallbacks
    def test_directTLS(self):
        """On a direct-TLS haproxy: listener the header comes in clear before the TLS handshake; the stream is counted under the claimed address."""
        client = yield self.viaProxy(v1("127.0.0.8"), "c2s_tls")
        client.startTLS(self.tlsOptions())
        yield self.openStream(client)
        jid = yield self.scramPlus(client)
        self.assertEqual(jid, "alice@localhost/proxied")
        self.assertEqual(self.addressOf(client), "127.0.0.8")
        self.assertEqual(self.factory.perAddress.counts, {"127.0.0.8": 1})

    @defer.inlineCallbacks
    def test_floodThroughProxyIsSlowedNotDropped(self):
        """The read rate limit pauses the socket under the PROXY wrapper too: a flood is slowed, every message delivered in order."""
        yield self.server.stopService()
        yield self.startServer(c2s={"listen": [PLAIN, PROXY], "max_bytes_per_second": 40000, "burst_bytes": 20000})
        yield self.addUser("alice@localhost")
        yield self.addUser("carol@localhost")
        carol, carolJID = yield self.login("carol@localhost")
        alice = yield self.viaProxy(v1("127.0.0.5"))
        yield self.openStream(alice)
        yield self.starttls(alice)
        yield self.authPlain(alice, "alice", "secret")
        yield self.bindResource(alice, "flood")
        count, body = 80, "f" * 900
        start = reactor.seconds()
        alice.send("".join(f"<message to='{carolJID}' id='m{i}' type='chat'><body>{body}</body></message>" for i in range(count)))
        yield carol.waitFor(lambda: len([e for e in carol.elements if e.name == "message"]) >= count, timeout=15)
        ids = [e["id"] for e in carol.elements if e.name == "message"]
        self.assertEqual(ids, [f"m{i}" for i in range(count)])
        # The burst is free, and the read that overdraws the bucket (one TLS
        # record at most) is handled before the pause it causes.
        self.assertGreater(reactor.seconds() - start, (count * 975 - 20000 - 16384) / 40000)

    # -- what is refused ----------------------------------------------------------------

    BAD_HEADERS = [
        STREAM_HEADER,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"PROXY TCP4 not-an-address 127.0.0.1 40000 5222\r\n",
        b"PROXY TCP4 127.0.0.5 127.0.0.1 port 5222\r\n",
        b"PROXY TCP4 127.0.0.5 127.0.0.1 70000 5222\r\n",
        b"PROXY TCP4 2001:db8::1 127.0.0.1 40000 5222\r\n",
        b"PROXY TCP9 127.0.0.5 127.0.0.1 40000 5222\r\n",
        b"PROXY TCP4 127.0.0.5\r\n",
        b"PROXY TCP4 " + b"1" * 200,
        b"PROXY TCP4 127.0.0.5 127.0.0.1 40000 5222" + b" " * 80 + b"\r\n",
        V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12),  # version 1 in a v2 signature
        V2_SIGNATURE + b"\x21\x31\x00\xd8" + bytes(216),  # AF_UNIX: not a client address
        V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4),  # IPv4 with too few address bytes
    ]

    @defer.inlineCallbacks
    def test_malformedHeaderRefused(self):
        """A malformed or absent header closes that connection unanswered and uncounted; a good header and other clients are still served."""
        for header in self.BAD_HEADERS:
            client = yield self.viaProxy(header)
            yield client.waitClosed()
            self.assertEqual(client.raw, b"", header)
        self.assertEqual(self.factory.perAddress.counts, {})
        self.assertEqual(self.factory.streams, set())
        good = yield self.viaProxy(v1("127.0.0.5"))
        yield self.openStream(good)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_silentConnectionTimesOut(self):
        """A connection that never sends its header is closed after the header timeout, unanswered."""
        self.server.ports["c2s"][1].factory.timeout = 0.3
        client = yield self.viaProxy(b"PROXY TCP4 ")
        silent = yield self.viaProxy(b"")
        start = reactor.seconds()
        yield client.waitClosed()
        yield silent.waitClosed()
        self.assertLess(reactor.seconds() - start, 2.0)
        self.assertEqual((client.raw, silent.raw), (b"", b""))
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_headerOnOrdinaryListenerNotTrusted(self):
        """An ordinary listener never reads a PROXY header: its bytes are a broken stream, counted under the real address."""
        client = yield self.connect()
        client.send(v1("127.0.0.5") + b"<?xml version='1.0'?>")
        yield client.waitClosed()
        self.assertNotIn(b"<stream:features", client.raw)
        self.assertNotIn("127.0.0.5", self.factory.perAddress.counts)
        yield self.assertServed()


class ConnectionManagerTests(TwistdMixin, WebMixin, unittest.TestCase):
    """`twistd -n jabberd-bosh` in front of a server: [core] proxy_protocol on and off."""

    timeout = 120

    def setUp(self) -> None:
        self.setUpFolder()

    @defer.inlineCallbacks
    def startManager(self, server, proxyProtocol: bool):
        """The real connection manager relaying to C{server}'s haproxy: listener (or its ordinary one); its BOSH URL."""
        port = server.ports["c2s"][1 if proxyProtocol else 0].getHost().port
        path = os.path.join(self.base, "bosh.toml")
        with open(path, "w") as f:
            f.write(
                f"data_dir = {tomlString(self.dataDir)}\n"
                "[core]\n"
                f'connect = "tcp:{LOOPBACK}:{port}"\n'
                f"ca_file = {tomlString(self.certificatePath())}\n"
                f"proxy_protocol = {'true' if proxyProtocol else 'false'}\n"
                "[http]\n"
                f'listen = ["{PLAIN}"]\n'
                "listen_tls = []\n"
                f'trusted_proxies = ["{LOOPBACK}"]\n'
            )
        process = self.spawnTwistd("jabberd-bosh", "--config", path)
        port = self.port((yield process.waitFor(listening("http"))))
        yield process.waitFor(r"jabberd-bosh ready")
        return f"http://{LOOPBACK}:{port}/http-bind"

    def create(self, url: str, client: str):
        """A BOSH session creation from web client C{client} (X-Forwarded-For through the trusted proxy at 127.0.0.1)."""
        data = f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='100' to='localhost' wait='5' hold='1' ver='1.11' xmpp:version='1.0'/>".encode()
        return self.http("POST", url, data, headers={"X-Forwarded-For": client})

    @defer.inlineCallbacks
    def test_eachWebClientCountedApart(self):
        """With proxy_protocol, 150 web clients relayed by one manager pass the server's limit of 100 per address: each is counted under its own address."""
        server = yield self.startServer(c2s={"listen": [PLAIN, PROXY], "max_connections_per_address": 100}, http={"listen": [], "listen_tls": []})
        url = yield self.startManager(server, proxyProtocol=True)
        clients = [f"10.1.{i // 100}.{i % 100 + 1}" for i in range(150)]
        for start in range(0, len(clients), 25):
            answers = yield defer.gatherResults([self.create(url, c) for c in clients[start : start + 25]])
            for client, answer in zip(clients[start : start + 25], answers):
                self.assertEqual((answer.attrs.get("type"), answer.children[0].name), (None, "features"), (client, answer.raw))
        factory = server._c2sFactories[0]
        self.assertEqual(factory.perAddress.counts, {c: 1 for c in clients})
        self.assertEqual({s.peerAddress for s in factory.streams}, set(clients))

    @defer.inlineCallbacks
    def test_withoutProxyProtocolAllLumped(self):
        """Without proxy_protocol (the old behaviour) the server counts every web client as the manager's address: past its limit, sessions end with the server's policy-violation."""
        server = yield self.startServer(c2s={"listen": [PLAIN, PROXY], "max_connections_per_address": 5}, http={"listen": [], "listen_tls": []})
        url = yield self.startManager(server, proxyProtocol=False)
        for i in range(5):
            answer = yield self.create(url, f"10.2.0.{i + 1}")
            self.assertEqual(answer.children[0].name, "features", answer.raw)
        answer = yield self.create(url, "10.2.0.6")
        self.assertEqual((answer.attrs.get("type"), answer.attrs.get("condition")), ("terminate", "remote-stream-error"), answer.raw)
        self.assertIn(b"policy-violation", answer.raw)
        self.assertEqual(server._c2sFactories[0].perAddress.counts, {LOOPBACK: 5})


class HeaderUnitTests(unittest.TestCase):
    def test_v1Header(self):
        """The manager's line: the client's address, port 0, the server's address when the families match."""
        from twisted.internet.address import IPv4Address

        core = IPv4Address("TCP", "127.0.0.1", 5224)
        self.assertEqual(v1Header("10.0.0.1", core), b"PROXY TCP4 10.0.0.1 127.0.0.1 0 5224\r\n")
        self.assertEqual(v1Header("2001:db8::1", core), b"PROXY TCP6 2001:db8::1 :: 0 0\r\n")
        self.assertEqual(v1Header("", core), b"PROXY UNKNOWN\r\n")


class MisconfiguredManagerTests(WebMixin, unittest.TestCase):
    """The manager's proxy_protocol and the server's listener disagree: web sessions fail clearly, the server is not fooled."""

    @defer.inlineCallbacks
    def relayTo(self, listener: int, proxyProtocol: bool):
        """A BOSH session creation through an in-process manager relaying to the server's c2s listener number C{listener}."""
        from components.bosh.config import BoshConfig
        from components.bosh.tap import ConnectionManager
        from jabberd.config import fromDict

        server = yield self.startServer(c2s={"listen": [PLAIN, PROXY]}, http={"listen": [], "listen_tls": []})
        core = {"connect": f"tcp:{LOOPBACK}:{server.ports['c2s'][listener].getHost().port}", "ca_file": self.certificatePath(), "proxy_protocol": proxyProtocol}
        config = fromDict({"data_dir": self.dataDir, "core": core, "http": {"listen": [PLAIN], "listen_tls": []}}, cls=BoshConfig)
        manager = ConnectionManager(config, reactor)
        manager.startService()
        self.addCleanup(manager.stopService)
        yield manager.ready
        self.web = manager
        answer = yield self.bosh(secure=False).create()
        return server, answer

    @defer.inlineCallbacks
    def test_headerToOrdinaryListener(self):
        """proxy_protocol on, towards an ordinary listener: the server reads the header as a broken stream, the session ends with remote-stream-error."""
        server, answer = yield self.relayTo(0, True)
        self.assertEqual((answer.attrs.get("type"), answer.attrs.get("condition")), ("terminate", "remote-stream-error"), answer.raw)
        self.assertEqual(server._c2sFactories[0].perAddress.counts, {})

    @defer.inlineCallbacks
    def test_noHeaderToProxyListener(self):
        """proxy_protocol off, towards a haproxy: listener: the server closes the connection unread, the session ends with remote-connection-failed."""
        server, answer = yield self.relayTo(1, False)
        self.assertEqual((answer.attrs.get("type"), answer.attrs.get("condition")), ("terminate", "remote-connection-failed"), answer.raw)
        self.assertEqual(server._c2sFactories[0].perAddress.counts, {})


class ProxiedWebTests(WebMixin, unittest.TestCase):
    """An [http] listener written haproxy:... (the web front behind HAProxy in TCP mode)."""

    @defer.inlineCallbacks
    def test_boshCountedUnderClaimedAddress(self):
        """A BOSH session created through a haproxy: HTTP listener is counted under the address the header names."""
        yield self.startWeb(http={"listen": [PROXY], "listen_tls": []})
        body = f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='100' to='localhost' wait='5' hold='1' ver='1.11' xmpp:version='1.0'/>".encode()
        request = (
            b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Type: text/xml\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.web.port("http"))
        client = yield endpoint.connect(protocol.Factory.forProtocol(ByteClient))
        client.send(v1("127.0.0.5") + request)
        yield client.waitClosed()
        answer = client.raw
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
        self.assertIn(b"<stream:features", answer)
        self.assertEqual(self.web.web.perAddress.counts, {"127.0.0.5": 1})
        self.web.web.bosh.stop()
