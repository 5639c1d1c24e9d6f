"""
Hostile peers on the federation port and behind it (issue 11, s2s): a peer
that stops reading what we send, many connections from one address, and
generated streams into the s2s listener before and after authentication.
After each attack, other federation and local users are still served.
"""

from __future__ import annotations

import re
import socket
import tempfile

from hypothesis import strategies as st
from twisted.internet import defer, protocol, reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest

from tests.harness import ClientTLSOptions, RawClient, rawConnect
from tests.hostile import fuzzing, test_fuzz
from tests.hostile.base import OTHER_ADDRESS
from tests.hostile.test_attacks import sleep
from tests.hostile.test_leaks import LeakMixin
from tests.s2s.support import LOOPBACK, Node, TestCA, combined, eventually, nextMatching, selfSigned, xml

STREAMS = "http://etherx.jabber.org/streams"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
DB = "jabber:server:dialback"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"


def s2sHeader(sender: str = "a.example", to: str = "b.example", id_: str = "") -> str:
    ident = f" id='{id_}'" if id_ else ""
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='{DB}' "
        f"xmlns:stream='{STREAMS}' from='{sender}' to='{to}'{ident} version='1.0'>"
    )


def c2sOverrides() -> dict:
    """A c2s listener on loopback without the byte-rate limit (the test user sends a burst)."""
    return {"listen": [f"tcp:0:interface={LOOPBACK}"], "listen_tls": [], "max_bytes_per_second": 0}


@defer.inlineCallbacks
def connectFrom(port: int, source: str):
    """A L{RawClient} connected to C{port} from loopback address C{source}."""
    endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port, bindAddress=(source, 0))
    client = yield endpoint.connect(protocol.Factory.forProtocol(RawClient))
    return client


# -- a peer that stops reading ----------------------------------------------------------


def unsent(transport) -> int:
    """Bytes a TCP transport holds that the kernel has not taken yet."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen



class StalledPeer(protocol.Protocol):
    """
    Plays b.example over a real socket: STARTTLS, accepts our dialback
    request at once, then never reads again (with a small receive buffer,
    so the kernel takes little of what we send).
    """

    def __init__(self, tlsOptions: ssl.CertificateOptions) -> None:
        self.tlsOptions = tlsOptions
        self.buffer = ""
        self.stage = "header"
        self.stalled = False
        self.lost: defer.Deferred = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data.decode("utf-8", "replace")
        if self.stage in ("header", "secured") and re.search(r"<stream:stream[^>]*>", self.buffer):
            self.buffer = ""
            if self.stage == "header":
                features = f"<starttls xmlns='{TLS}'><required/></starttls>"
                self.stage = "starttls"
            else:
                features = "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
                self.stage = "dialback"
            self.transport.write(f"{s2sHeader('b.example', 'a.example', 'stall')}<stream:features>{features}</stream:features>".encode())
        elif self.stage == "starttls" and "<starttls" in self.buffer:
            self.buffer = ""
            self.stage = "secured"
            self.transport.write(f"<proceed xmlns='{TLS}'/>".encode())
            self.transport.startTLS(self.tlsOptions)
        elif self.stage == "dialback" and "</db:result>" in self.buffer:
            self.stage = "stalled"
            self.transport.write(b"<db:result from='b.example' to='a.example' type='valid'/>")
            self.transport.pauseProducing()  # and never read again
            self.stalled = True

    def connectionLost(self, reason=None) -> None:
        self.lost.callback(None)


class StalledPeerTests(unittest.TestCase):
    """s2s.send_timeout and the bounded output of a stream."""

    @defer.inlineCallbacks
    def test_peerStopsReading(self):
        """
        A peer that stops reading mid-stream: at most one buffer's worth
        waits in the transport, then the route's bounded queue (the excess
        bounces with resource-constraint); after send_timeout the link is cut
        and what still waits bounces with remote-server-timeout.  Every
        stanza is written or bounced, and meanwhile another peer and local
        users are served.
        """
        certPath, keyPath = selfSigned(tempfile.mkdtemp(prefix="jabberd-stall-"), "b.example")
        with open(certPath) as c, open(keyPath) as k:
            options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
        peers: list[StalledPeer] = []

        def buildPeer(addr):
            peers.append(StalledPeer(options))
            return peers[-1]

        factory = protocol.Factory()
        factory.buildProtocol = buildPeer
        listening = reactor.listenTCP(0, factory, interface=LOOPBACK)
        # Small before the handshake, so the window offered stays small too.
        listening.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.addCleanup(listening.stopListening)
        # The peer reads nothing, so it does not see us go: cut it at the end.
        self.addCleanup(lambda: [p.transport.abortConnection() for p in peers if not p.lost.called])
        c = Node(self, "c.example")
        a = Node(
            self, "a.example", routes={"b.example": f"{LOOPBACK}:{listening.getHost().port}", **c.route()},
            send_timeout=4.0, queue_max_stanzas=50, queue_max_age=60.0,
        )
        c.configure(routes=a.route())
        yield a.start(c2s=c2sOverrides())
        yield c.start()
        carol = yield c.login("carol@c.example")
        alice = yield a.login("alice@a.example")

        # Bursts of 200 messages of 4 KB, each followed by a ping (when its
        # answer comes, every message before it has been routed), until the
        # kernel's buffers are full (about 2 MB here), the transport's
        # too, and the queue: the link is stalled.
        body = "x" * 4000
        count = 0
        route = None
        while route is None or route.stream is None or route.stream.writable or len(route.queue) < 50:
            self.assertLess(count, 20000, "the peer's buffers never filled")
            alice.send("".join(f"<message to='bob@b.example' type='chat' id='m{n}'><body>{body}</body></message>" for n in range(count, count + 200)))
            count += 200
            ping = f"after{count}"
            alice.send(f"<iq type='get' id='{ping}' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>")
            yield nextMatching(alice, lambda e: e.name == "iq" and e.getAttribute("id") == ping, timeout=30)
            route = a.fed.routes.get("b.example")
        stalledAt = reactor.seconds()
        stream = route.stream
        self.assertTrue(peers[-1].stalled)
        self.assertFalse(stream.writable)
        transport = stream.transport
        waiting = unsent(transport)
        self.assertLessEqual(waiting, transport.bufferSize + 8192)  # one buffer, one stanza over at most
        self.assertEqual(len(route.queue), 50)
        queued = [item[2]["id"] for item in route.queue]

        # Others are served meanwhile: another peer, and a local user.
        alice.send("<message to='carol@c.example/r' type='chat' id='c1'><body>still here</body></message>")
        got = yield nextMatching(carol, lambda e: e.name == "message", timeout=10)
        self.assertEqual(xml(got), "<message from='alice@a.example/r' id='c1' to='carol@c.example/r' type='chat'><body>still here</body></message>")
        dave = yield a.login("dave@a.example")
        dave.send("<iq type='get' id='p' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>")
        pong = yield nextMatching(dave, lambda e: e.name == "iq")
        self.assertEqual((pong["type"], pong["id"]), ("result", "p"))

        # After send_timeout the link is cut; what is still queued comes
        # back (before the answer to a ping sent after the cut).
        yield eventually(lambda: "b.example" not in a.fed.routes and stream not in a.fed.streams)
        self.assertLess(reactor.seconds() - stalledAt, 4.0 + 1.0)
        alice.send("<iq type='get' id='final' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>")
        yield nextMatching(alice, lambda e: e.name == "iq" and e.getAttribute("id") == "final")
        errors = {}
        for error in alice.elements:
            if error.name == "message" and error.getAttribute("type") == "error":
                self.assertNotIn(error["id"], errors)
                errors[error["id"]] = error.error.firstChildElement().name
        # Each message was written (while the peer's kernel took some) or
        # bounced once: resource-constraint when the queue was full, and
        # remote-server-timeout for those still queued at the cut (the
        # queue's tail: the kernel may have taken a few more since).
        ids = [f"m{n}" for n in range(count)]
        written = count - len(errors)
        self.assertGreater(written, 0)
        timedOut = [i for i in ids if errors.get(i) == "remote-server-timeout"]
        self.assertTrue(timedOut)
        self.assertEqual(timedOut, queued[len(queued) - len(timedOut):])
        self.assertEqual(set(errors.values()), {"resource-constraint", "remote-server-timeout"})
        last = [e for e in alice.elements if e.name == "message" and e.getAttribute("id") == queued[-1]][0]
        self.assertEqual(
            xml(last),
            f"<message from='bob@b.example' id='{queued[-1]}' to='alice@a.example/r' type='error'><body>{body}</body>"
            f"<error type='wait'><remote-server-timeout xmlns='{STANZAS}'/><text xml:lang='en' xmlns='{STANZAS}'>"
            "no authenticated connection to b.example could be set up in time</text></error></message>",
        )
        # A lost link is not an unreachable domain: the next stanza tries again.
        self.assertIsNone(a.fed.unreachable.get("b.example"))

    @defer.inlineCallbacks
    def test_incomingPeerStopsReading(self):
        """
        A peer that floods requests on its incoming stream without reading
        the answers: while a buffer's worth of answers waits, jabberd reads
        no more from it (the answers waiting stay bounded), and once nothing
        drains for send_timeout the stream is cut; others are served.
        """
        b = Node(self, "b.example", send_timeout=1.0)
        yield b.start()
        flooder = yield rawConnect(b.s2sPort)
        self.addCleanup(flooder.disconnect)
        flooder.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flooder.send(s2sHeader())
        yield flooder.next()
        flooder.transport.pauseProducing()  # reads nothing more
        # Each request gets a dialback error (no TLS yet); more requests
        # whenever jabberd can write, until the kernel's buffers are full.
        request = "".join(f"<db:verify from='a.example' to='b.example' id='s{n}'>{'0' * 64}</db:verify>" for n in range(100))
        [stream] = [s for s in b.fed.streams if s.address == LOOPBACK]
        transport = stream.transport
        peak = 0
        served = False
        deadline = reactor.seconds() + 20
        while stream in b.fed.streams and reactor.seconds() < deadline:
            if stream.writable:
                for _ in range(20):
                    flooder.send(request)
            elif not served:
                # Others are served while the flooder is held.
                bob = yield b.login("bob@b.example")
                bob.send("<iq type='get' id='p' to='b.example'><ping xmlns='urn:xmpp:ping'/></iq>")
                pong = yield nextMatching(bob, lambda e: e.name == "iq")
                self.assertEqual((pong["type"], pong["id"]), ("result", "p"))
                served = True
            # One buffer plus the answers to the rest of one read at most.
            peak = max(peak, unsent(transport) if transport.connected else 0)
            yield sleep(0.01)
        self.assertNotIn(stream, b.fed.streams)
        self.assertTrue(served)
        self.assertLessEqual(peak, transport.bufferSize + 256 * 1024)
        self.assertFalse(stream.writable)  # cut while stalled, not closed for another reason
        self.assertEqual(b.fed.perAddress.counts, {})


# -- connections per address ------------------------------------------------------------


class S2SConnectionLimitTests(unittest.TestCase):
    """s2s.max_connections_per_address."""

    @defer.inlineCallbacks
    def setUp(self):
        self.b = Node(self, "b.example", max_connections_per_address=3, listen_tls=[f"tcp:0:interface={LOOPBACK}"])
        yield self.b.start()

    @defer.inlineCallbacks
    def opened(self, source: str = LOOPBACK, directTLS: bool = False):
        """A connection that sent its header and got ours and the features."""
        if directTLS:
            client = yield rawConnect(self.b.server.port("s2s_tls"), ClientTLSOptions(sni="b.example"))
        else:
            client = yield connectFrom(self.b.s2sPort, source)
        self.addCleanup(client.disconnect)
        client.send(s2sHeader())
        features = yield client.next()
        self.assertEqual(features.name, "features")
        return client

    @defer.inlineCallbacks
    def test_excessConnectionRefused(self):
        """
        With a limit of 3 (two STARTTLS, one direct TLS), the fourth server
        connection from one address gets our header and policy-violation,
        unread; another address is served, and closing one frees a slot.
        """
        clients = [(yield self.opened()), (yield self.opened()), (yield self.opened(directTLS=True))]
        extra = yield connectFrom(self.b.s2sPort, LOOPBACK)
        self.addCleanup(extra.disconnect)
        yield extra.waitClosed()
        self.assertNotIn("from", extra.headers[0])  # refused before any byte was read
        self.assertEqual(
            xml(extra.elements[-1]),
            f"<error xmlns='{STREAMS}'><policy-violation xmlns='{STREAM_ERRORS}'/>"
            f"<text xml:lang='en' xmlns='{STREAM_ERRORS}'>too many connections from your address</text></error>",
        )
        self.assertEqual(self.b.fed.perAddress.counts, {LOOPBACK: 3})
        self.assertFalse(any(c.lost for c in clients))
        yield self.opened(OTHER_ADDRESS)
        yield clients.pop(0).disconnect()
        yield eventually(lambda: self.b.fed.perAddress.counts.get(LOOPBACK) == 2)
        yield self.opened()


# -- fuzzing the s2s listener -----------------------------------------------------------

S2S_OPEN = s2sHeader()

#: What a peer server sends after its header (and after authentication).
S2S_STANZAS = [
    f"<starttls xmlns='{TLS}'/>",
    "<db:result from='a.example' to='b.example'>f3a1b2c4d5e6</db:result>",
    "<db:result from='a.example' to='nowhere.example'>f3a1b2c4d5e6</db:result>",
    "<db:verify from='a.example' to='b.example' id='s1'>f3a1b2c4d5e6</db:verify>",
    "<db:result from='a.example' to='b.example' type='valid'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS5leGFtcGxl</auth>",
    "<message from='alice@a.example/r' to='bob@b.example' type='chat' id='m1'><body>hi &amp; &lt;3</body></message>",
    "<message from='alice@a.example/r' to='room@conference.b.example' type='groupchat' id='g'><body>x</body></message>",
    "<presence from='alice@a.example/r' to='bob@b.example' type='subscribe'/>",
    "<presence from='alice@a.example/r' to='bob@b.example'><show>away</show></presence>",
    "<presence from='alice@a.example/r' to='room@conference.b.example/nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
    "<iq from='alice@a.example/r' to='b.example' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq from='alice@a.example/r' to='b.example' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    "<iq from='alice@a.example/r' to='bob@b.example' type='get' id='v'><vCard xmlns='vcard-temp'/></iq>",
    "<iq from='alice@a.example/r' to='bob@b.example/r' type='result' id='x'/>",
    "<message from='alice@a.example' to='bob@b.example' type='error' id='e'><error type='cancel'>"
    f"<item-not-found xmlns='{STANZAS}'/></error></message>",
    " ",
    "</stream:stream>",
]


class S2SFuzzTests(LeakMixin, unittest.TestCase):
    """
    Generated and mutated streams into a running server's s2s listener
    (CI pass: 60 before authentication, 20 after): no unexpected error is
    logged (trial fails the test on one), no hang, no stream or address
    count left behind, the live server objects (L{LeakMixin}) back to
    their baseline, and federation and local users are still served.
    """

    @defer.inlineCallbacks
    def setUp(self):
        ca = TestCA(tempfile.mkdtemp(prefix="jabberd-fuzz-ca-"))
        self.aCert = ca.issue("a.example")
        self.a = Node(self, "a.example", certificate=self.aCert, trust=ca.path)
        self.b = Node(self, "b.example", certificate=ca.issue("b.example"), trust=ca.path)
        # A short idle timeout closes the real links the fuzzed stanzas open
        # (b.example bouncing to a.example), so that everything must go.
        self.a.configure(routes=self.b.route(), idle_timeout=1.0)
        self.b.configure(routes=self.a.route(), idle_timeout=1.0)
        yield self.a.start()
        yield self.b.start()
        yield self.b.addUser("bob@b.example")
        self.server = self.b.server  # the node under attack, for LeakMixin's registries
        self.base = self.baseline()

    @defer.inlineCallbacks
    def authenticated(self):
        """A stream from a.example, TLS with its certificate, then dialback (valid on the certificate)."""
        client = yield rawConnect(self.b.s2sPort)
        client.send(S2S_OPEN)
        yield client.next()
        client.send(f"<starttls xmlns='{TLS}'/>")
        yield client.next()
        client.startTLS(ClientTLSOptions(sni="b.example", certFile=combined(self.aCert)))
        client.send(S2S_OPEN)
        yield client.next()
        client.send(f"<db:result from='a.example' to='b.example'>{'0' * 64}</db:result>")
        answer = yield client.next()
        self.assertEqual(xml(answer), f"<result from='b.example' to='a.example' type='valid' xmlns='{DB}'/>")
        return client

    replay = staticmethod(test_fuzz.ServerFuzzTests.replay)

    def leftovers(self) -> int:
        """b.example's incoming streams and address counts that are not the real a.example node's links."""
        from jabberd.s2s.stream import InboundStream, OutboundStream

        real = sum(1 for s in self.a.fed.streams if isinstance(s, OutboundStream) and s.remote == "b.example")
        inbound = sum(1 for s in self.b.fed.streams if isinstance(s, InboundStream))
        return inbound - real + sum(self.b.fed.perAddress.counts.values()) - real

    @defer.inlineCallbacks
    def assertServed(self):
        """No stream or address count left behind; a chat from a.example still reaches bob, logged in now."""
        yield eventually(lambda: self.leftovers() == 0)
        bob = yield self.b.login("bob@b.example", create=False)
        alice = yield self.a.login("alice@a.example")
        alice.send("<message to='bob@b.example/r' type='chat' id='after'><body>still federating</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message" and e.getAttribute("id") == "after", timeout=10)
        self.assertEqual(
            xml(got), "<message from='alice@a.example/r' id='after' to='bob@b.example/r' type='chat'><body>still federating</body></message>"
        )

    @defer.inlineCallbacks
    def test_beforeAuthentication(self):
        """60 generated s2s streams on fresh connections: no error logged, no leak, federation still served."""
        examples = test_fuzz.collect(st.tuples(fuzzing.streams(opening=S2S_OPEN, stanzas=S2S_STANZAS), fuzzing.chunkSizes), 60)

        @defer.inlineCallbacks
        def connect():
            client = yield rawConnect(self.b.s2sPort)
            return client

        yield self.replay(examples, connect)
        yield self.assertBackToBaseline(self.base, timeout=8.0)
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_afterAuthentication(self):
        """20 mutated stanza sequences on streams a.example authenticated: no error logged, no leak, federation still served."""
        examples = test_fuzz.collect(st.tuples(fuzzing.mutated(header=False, opening=S2S_OPEN, stanzas=S2S_STANZAS), fuzzing.chunkSizes), 20)
        yield self.replay(examples, self.authenticated)
        yield self.assertBackToBaseline(self.base, timeout=8.0)
        yield self.assertServed()
