"""
The web entry points under attack, against the in-process BOSH and
WebSocket transports of a real server over loopback.

Fuzzing (a short CI pass; bench/fuzz_streams.py is the long one for c2s):
generated and mutated BOSH bodies, payloads of an authenticated BOSH
session, malformed HTTP, RFC 7395 messages before and after
authentication, and raw RFC 6455 frames.  What must hold: no error is
logged (trial fails a test on one), every web session ends (inactivity,
close or error), the registries and the count of live server objects
return to their baseline, and another user is served.

Limits: sessions per client address (with X-Forwarded-For only from a
trusted proxy), the SASL throttle keyed on the web client's address, and
the byte rate of one web session (slowed, never dropped).
"""

from __future__ import annotations

import io

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from components.bosh.framing import NS_FRAMING
from jabberd.xmlstream import NS_CLIENT
from tests.components.bosh.support import WSMixin, parseXML, plainToken
from tests.harness import LOOPBACK, NS_SASL, RawClient, xml
from tests.hostile import fuzzing
from tests.hostile.base import OTHER_ADDRESS, HostileMixin
from tests.hostile.test_attacks import sleep
from tests.hostile.test_fuzz import collect
from tests.hostile.test_leaks import LeakMixin

PLAIN_HTTP = ["tcp:0:interface=127.0.0.1"]

#: Short timers, so that sessions a fuzzed request opened end within the test.
FAST = {"listen": PLAIN_HTTP, "listen_tls": PLAIN_HTTP, "bosh_inactivity": 1, "bosh_max_wait": 1, "websocket_ping_interval": 0}


class ByteClient(RawClient):
    """A raw TCP client that only collects bytes (HTTP is not XML)."""

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self._check()


@defer.inlineCallbacks
def rawHTTP(port: int, data: bytes, handshake: bytes = b"", expect: bytes = b"HTTP/1.1 101"):
    """
    Send C{data} on a fresh TCP connection to C{port} (after C{handshake}
    and its answer's headers, which must start with C{expect}); wait until
    it is closed or 0.3 s passed; drop it.  Returns the L{ByteClient}.
    """
    endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port)
    client = yield endpoint.connect(protocol.Factory.forProtocol(ByteClient))
    if handshake:
        client.send(handshake)
        yield client.waitFor(lambda: b"\r\n\r\n" in client.raw)
        assert client.raw.startswith(expect), client.raw[:80]
    client.send(data)
    yield client.waitFor(lambda: client.lost, 0.3).addErrback(lambda f: None)
    yield client.disconnect()
    return client


class WebFuzzTests(LeakMixin, WSMixin, HostileMixin, unittest.TestCase):
    """Generated input into BOSH, HTTP and WebSocket: nothing escapes, nothing leaks, others are served."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWeb(http=FAST)
        yield self.addUser("alice@localhost")
        self.base = self.baseline()

    @defer.inlineCallbacks
    def burst(self, examples: list, one, width: int = 10):
        """Run C{one} on every example, C{width} at a time; then nothing may be left behind, and everyone is served."""
        for i in range(0, len(examples), width):
            yield defer.gatherResults([one(e) for e in examples[i : i + width]], consumeErrors=True)
        yield self.assertBackToBaseline(self.base, timeout=8)
        yield self.assertWebServed()
        yield self.assertBackToBaseline(self.base, timeout=8)

    @defer.inlineCallbacks
    def sendAll(self, client, messages: list[bytes]):
        """Send WebSocket messages until the server closes; then drop the connection."""
        for message in messages:
            if client.closed.called:
                break
            client.sendMessage(message)
        yield sleep(0.2)
        if not client.closed.called:
            client.dropConnection(abort=True)
        yield client.closed

    @defer.inlineCallbacks
    def assertWebServed(self):
        """Bob logs in over BOSH and over WebSocket and gets his pings answered; then a TCP login."""
        if not getattr(self, "_bobCreated", False):
            yield self.addUser("bob@localhost")
            self._bobCreated = True
        client, jid = yield self.boshLogin("bob@localhost", resource="served")
        answer = yield client.post(f"<iq xmlns='{NS_CLIENT}' type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual([(c.name, c.getAttribute("type"), c.getAttribute("id")) for c in answer.children], [("iq", "result", "alive")])
        yield client.post("", {"type": "terminate"})
        ws, jid = yield self.wsLogin("bob@localhost", resource="served-ws")
        ws.sendText(f"<iq xmlns='{NS_CLIENT}' type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield ws.next()
        self.assertEqual(xml(reply), f"<iq from='localhost' id='alive' to='{jid}' type='result'/>")
        ws.sendText(f"<close xmlns='{NS_FRAMING}'/>")
        yield ws.closed
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_boshBodies(self):
        """60 generated BOSH bodies POSTed without a session: answered or refused, no error logged, no leak."""
        examples = collect(fuzzing.boshBodies(), 60)

        @defer.inlineCallbacks
        def one(data):
            answer = yield self.http("POST", self.url(secure=False), data, {"Content-Type": "text/xml; charset=utf-8"})
            self.assertIn(answer.code, (200, 400, 403, 404))
            if answer.raw:
                attrs, _ = parseXML(answer.raw)
                self.assertEqual(attrs["__qname__"], ("http://jabber.org/protocol/httpbind", "body"))

        yield self.burst(examples, one)

    @defer.inlineCallbacks
    def test_boshPayloadsAfterAuthentication(self):
        """20 generated payloads from authenticated, bound BOSH sessions: no error logged, no leak."""
        examples = collect(fuzzing.boshPayloads(), 20)

        @defer.inlineCallbacks
        def one(numbered):
            i, payload = numbered
            client, _ = yield self.boshLogin("alice@localhost", resource=f"f{i}", wait="1")
            answer = yield client.post(payload)
            self.assertEqual(answer.code, 200)

        yield self.burst(list(enumerate(examples)), one)

    @defer.inlineCallbacks
    def test_malformedHTTP(self):
        """60 malformed HTTP requests on raw connections: answered, refused or closed; no error logged, no leak."""
        examples = collect(fuzzing.httpRequests(), 60)
        clients = []

        yield self.burst(examples, lambda data: rawHTTP(self.web.port("http"), data).addCallback(clients.append))
        for client in clients:
            if client.raw:
                self.assertTrue(client.raw.startswith(b"HTTP/1."), client.raw[:80])

    @defer.inlineCallbacks
    def test_webSocketBeforeAuthentication(self):
        """40 generated RFC 7395 message sequences on fresh WebSockets: no error logged, no leak."""
        examples = collect(fuzzing.wsMessages(), 40)

        @defer.inlineCallbacks
        def one(messages):
            client = yield self.wsConnect(secure=False)
            yield self.sendAll(client, messages)

        yield self.burst(examples, one)

    @defer.inlineCallbacks
    def test_webSocketAfterAuthentication(self):
        """20 generated message sequences from authenticated, bound WebSockets: no error logged, no leak."""
        examples = collect(fuzzing.wsMessages(), 20)

        @defer.inlineCallbacks
        def one(numbered):
            i, messages = numbered
            client, _ = yield self.wsLogin("alice@localhost", resource=f"w{i}")
            yield self.sendAll(client, messages)

        yield self.burst(list(enumerate(examples)), one)

    @defer.inlineCallbacks
    def test_rawWebSocketFrames(self):
        """40 sequences of forged RFC 6455 frames after a real handshake and <open/>: no error logged, no leak."""
        examples = collect(fuzzing.wsFrames(), 40)
        opening = fuzzing.wsFrame(1, f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>".encode())

        yield self.burst(examples, lambda frames: rawHTTP(self.web.port("http"), opening + frames, fuzzing.WS_HANDSHAKE))


class WebLimitTests(LeakMixin, WSMixin, HostileMixin, unittest.TestCase):
    """http.max_sessions_per_address, trusted proxies' X-Forwarded-For, and the SASL throttle on web sessions."""

    timeout = 60

    @defer.inlineCallbacks
    def request(self, body: bytes, source: str = LOOPBACK, headers: dict[str, str] | None = None):
        """A POST to /http-bind over plain HTTP from loopback address C{source}; (code, body attributes)."""
        agent = Agent(reactor, bindAddress=(source, 0), pool=HTTPConnectionPool(reactor, persistent=False))
        raw = Headers({"Content-Type": ["text/xml; charset=utf-8"], **{k: [v] for k, v in (headers or {}).items()}})
        response = yield agent.request(b"POST", self.url(secure=False).encode(), raw, FileBodyProducer(io.BytesIO(body)))
        data = yield readBody(response)
        return response.code, parseXML(data)[0]

    def creation(self) -> bytes:
        return self.bosh(secure=False).body("", {"to": "localhost", "wait": "1", "hold": "1", "ver": "1.11", "xmpp:version": "1.0"})

    @defer.inlineCallbacks
    def test_sessionsPerAddress(self):
        """Past max_sessions_per_address, a new BOSH session gets policy-violation and a WebSocket HTTP 429; another address is unaffected."""
        yield self.startWeb(http={**FAST, "max_sessions_per_address": 3, "bosh_inactivity": 60})
        base = self.baseline()
        for _ in range(2):
            code, attrs = yield self.request(self.creation())
            self.assertEqual((code, attrs.get("type")), (200, None), attrs)
        ws = yield self.wsConnect(secure=False)
        self.assertEqual(self.web.web.perAddress.counts, {LOOPBACK: 3})
        code, attrs = yield self.request(self.creation())
        self.assertEqual((code, attrs.get("type"), attrs.get("condition")), (200, "terminate", "policy-violation"))
        yield self.assertFailure(self.wsConnect(secure=False), ConnectionError)
        refused = yield rawHTTP(self.web.port("http"), b"", fuzzing.WS_HANDSHAKE, expect=b"HTTP/1.1 429")
        self.assertIn(b"too many connections from your address", refused.raw)
        # Another address still gets its sessions.
        code, attrs = yield self.request(self.creation(), source=OTHER_ADDRESS)
        self.assertEqual((code, attrs.get("type")), (200, None))
        # One closes: its slot is free again.
        ws.dropConnection(abort=True)
        yield ws.closed
        yield sleep(0.1)
        code, attrs = yield self.request(self.creation())
        self.assertEqual((code, attrs.get("type")), (200, None))
        self.assertEqual(self.web.web.perAddress.counts, {LOOPBACK: 3, OTHER_ADDRESS: 1})
        self.web.web.bosh.stop()
        yield self.assertBackToBaseline(base)

    @defer.inlineCallbacks
    def test_forwardedForFromTrustedProxy(self):
        """Behind a trusted proxy each X-Forwarded-For client has its own count (the rightmost untrusted address); from anyone else the header is ignored."""
        yield self.startWeb(http={**FAST, "max_sessions_per_address": 1, "trusted_proxies": [LOOPBACK], "bosh_inactivity": 60})
        for forwarded in ("10.0.0.1", "10.0.0.2", "6.6.6.6, 10.0.0.3, 127.0.0.1"):
            code, attrs = yield self.request(self.creation(), headers={"X-Forwarded-For": forwarded})
            self.assertEqual((code, attrs.get("type")), (200, None), forwarded)
        code, attrs = yield self.request(self.creation(), headers={"X-Forwarded-For": "7.7.7.7, 10.0.0.1"})
        self.assertEqual(attrs.get("condition"), "policy-violation")
        # 127.0.0.2 is no trusted proxy: its header names nobody, it counts as itself.
        code, attrs = yield self.request(self.creation(), source=OTHER_ADDRESS, headers={"X-Forwarded-For": "10.0.0.9"})
        self.assertEqual((code, attrs.get("type")), (200, None))
        code, attrs = yield self.request(self.creation(), source=OTHER_ADDRESS, headers={"X-Forwarded-For": "10.0.0.10"})
        self.assertEqual(attrs.get("condition"), "policy-violation")
        self.assertEqual(self.web.web.perAddress.counts, {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1, OTHER_ADDRESS: 1})
        self.web.web.bosh.stop()

    @defer.inlineCallbacks
    def test_saslThrottleKeyedOnWebAddress(self):
        """Failed SASL over BOSH and WebSocket counts against the client's address: a guess on another account, over another transport, still waits."""
        yield self.startWeb(http=FAST, auth={"throttle_delay": 0.3, "throttle_max_delay": 5.0})
        yield self.addUser("alice@localhost")
        client = self.bosh()
        yield client.create()
        self.assertEqual(self.web.web.bosh.sessions[client.sid].upstream.session.link.peerAddress, LOOPBACK)
        start = reactor.seconds()
        answer = yield client.post(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plainToken('alice', 'wrong')}</auth>")
        self.assertEqual(answer.children[0].name, "failure")
        self.assertLess(reactor.seconds() - start, 0.25)
        # Another account, another transport, same address: throttled.
        ws = yield self.wsConnect()
        yield self.wsOpen(ws)
        start = reactor.seconds()
        ws.sendText(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plainToken('mallory', 'wrong')}</auth>")
        failure = yield ws.next()
        self.assertEqual(failure.name, "failure")
        self.assertGreaterEqual(reactor.seconds() - start, 0.28)
        # The same over TCP from that address: the throttle is one for all transports.
        tcp = yield self.connect()
        yield self.openStream(tcp)
        yield self.starttls(tcp)
        start = reactor.seconds()
        tcp.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plainToken('eve', 'wrong')}</auth>")
        answer = yield tcp.next(timeout=10)
        self.assertEqual(answer.name, "failure")
        self.assertGreaterEqual(reactor.seconds() - start, 0.58)
        yield self.assertServed()


class WebFloodTests(WSMixin, HostileMixin, unittest.TestCase):
    """http.max_bytes_per_second / http.burst_bytes: a web flood is slowed, never dropped."""

    timeout = 60
    RATE = 20000
    BURST = 10000

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWeb(http={**FAST, "max_bytes_per_second": self.RATE, "burst_bytes": self.BURST, "bosh_requests": 3})
        yield self.addUser("alice@localhost")
        yield self.addUser("carol@localhost")
        self.carol, self.carolJID = yield self.login("carol@localhost")

    @defer.inlineCallbacks
    def received(self, count: int):
        messages = yield self.carol.waitFor(lambda: len(m := [e for e in self.carol.elements if e.name == "message"]) >= count and m, timeout=20)
        return [m["id"] for m in messages]

    @defer.inlineCallbacks
    def test_webSocketFlood(self):
        """40 kB of WebSocket messages at once: processed at about 20 kB/s, every one delivered in order, others served meanwhile."""
        ws, _ = yield self.wsLogin("alice@localhost")
        body = "f" * 900
        count = 40
        start = reactor.seconds()
        for i in range(count):
            ws.sendText(f"<message xmlns='{NS_CLIENT}' to='{self.carolJID}' id='m{i}' type='chat'><body>{body}</body></message>")
        yield sleep(0.3)
        servedStart = reactor.seconds()
        yield self.assertServed()
        self.assertLess(reactor.seconds() - servedStart, 2.0)
        ids = yield self.received(count)
        took = reactor.seconds() - start
        self.assertEqual(ids, [f"m{i}" for i in range(count)])
        total = count * (len(body) + 100)
        self.assertGreater(took, (total - self.BURST) / self.RATE * 0.8)
        self.assertFalse(ws.closed.called)

    @defer.inlineCallbacks
    def test_boshFlood(self):
        """BOSH requests over the byte rate wait their turn: every message delivered in order, taking at least the time the rate allows."""
        client, _ = yield self.boshLogin("alice@localhost")
        body = "f" * 4000
        count = 8
        start = reactor.seconds()
        previous = None
        for i in range(count):
            # Two requests in flight at a time (the next one frees the held one).
            current = client.post(f"<message xmlns='{NS_CLIENT}' to='{self.carolJID}' id='m{i}' type='chat'><body>{body}</body></message>")
            if previous is not None:
                answer = yield previous
                self.assertEqual((answer.code, answer.attrs.get("type")), (200, None), answer.raw)
            previous = current
        ids = yield self.received(count)
        took = reactor.seconds() - start
        yield previous  # the last request is held until wait; not part of the timing
        self.assertEqual(ids, [f"m{i}" for i in range(count)])
        total = count * (len(body) + 300)
        self.assertGreater(took, (total - self.BURST) / self.RATE * 0.8)
        yield self.assertServed()
