"""
Target multiplexing (XEP-0220 §2.4.3): one outgoing stream carries
stanzas to several domains of the same peer server, each domain pair
added with its own dialback request, and the receiving side takes such
piggybacked requests for any domain it serves, answering the dialback
error when it does not serve the one asked for.

The peer's s2s port sits behind a counting TCP relay on loopback, so a
test knows how many connections were really made.
"""

from __future__ import annotations

import tempfile

from twisted.internet import defer, protocol, reactor
from twisted.logger import globalLogPublisher
from twisted.protocols import portforward
from twisted.trial import unittest

from jabberd.s2s import stream as s2sstream
from jabberd.s2s.stream import InboundStream, OutboundStream
from tests.s2s.interop import fresh, startJabberd, strip
from tests.s2s.peers import Ejabberd, Prosody, shared
from tests.s2s.support import LOOPBACK, Node, TestCA, eventually, loginRaw, nextMatching, xml
from tests.s2s.test_queue import bounced
from tests.s2s.test_stream import DB, STANZAS, StreamTestMixin, header, streamError


class CountingRelay(portforward.ProxyFactory):
    """A TCP relay on loopback in front of a node's s2s port that counts the connections through it."""

    def __init__(self, port: int) -> None:
        super().__init__(LOOPBACK, port)
        self.connections = 0

    def buildProtocol(self, addr):
        self.connections += 1
        return super().buildProtocol(addr)


class Silent(protocol.Protocol):
    """A peer that accepts the connection and never says a word."""


def outgoing(node: Node) -> list[OutboundStream]:
    return [s for s in node.fed.streams if isinstance(s, OutboundStream) and not s.closing]


def outgoingPairs(node: Node) -> list[dict]:
    """The authenticated pairs of each open outgoing stream, in a stable order."""
    return sorted((s.pairs for s in outgoing(node)), key=sorted)


def inboundPairs(node: Node, remote: str) -> list[dict]:
    """The authenticated pairs of each open incoming stream on which C{remote} authenticated."""
    return [
        s.pairs for s in node.fed.streams if isinstance(s, InboundStream) and not s.closing and any(r == remote for r, _ in s.pairs)
    ]


class MultiplexTests(unittest.TestCase):
    """jabberd a.example sends to b.example and c.example, both served by one jabberd behind one port."""

    @defer.inlineCallbacks
    def startNodes(self, bDomains=("b.example", "c.example"), aCert=None, bCert=None, bHosts=None, a=None, b=None):
        self.b = Node(self, *bDomains, certificate=bCert, **(b or {}))
        self.relay = CountingRelay(self.b.s2sPort)
        port = reactor.listenTCP(0, self.relay, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        via = f"{LOOPBACK}:{port.getHost().port}"
        self.a = Node(self, "a.example", certificate=aCert, routes={"b.example": via, "c.example": via}, **(a or {}))
        self.b.configure(routes=self.a.route())
        yield self.a.start()
        yield self.b.start(**({"host": bHosts} if bHosts else {}))
        self.alice = yield self.a.login("alice@a.example")

    @defer.inlineCallbacks
    def chat(self, recipient, id_):
        """alice writes to C{recipient}, who gets exactly that message."""
        self.alice.send(f"<message to='{recipient.jid}' type='chat' id='{id_}'><body>hi</body></message>")
        got = yield nextMatching(recipient, lambda e: e.name == "message", timeout=10)
        self.assertEqual(xml(got), f"<message from='alice@a.example/r' id='{id_}' to='{recipient.jid}' type='chat'><body>hi</body></message>")

    @defer.inlineCallbacks
    def chatWithBoth(self):
        """alice writes to bob@b.example, then to carol@c.example; each gets the message."""
        bob = yield self.b.login("bob@b.example")
        carol = yield self.b.login("carol@c.example")
        yield self.chat(bob, "m1")
        yield self.chat(carol, "m2")

    @defer.inlineCallbacks
    def test_dialbackSharesTheStream(self):
        """
        Self-signed certificates: c.example is added to the stream already
        open to b.example by a dialback request of its own (the peer calls
        back to check it); one connection carries both.
        """
        yield self.startNodes()
        yield self.chatWithBoth()
        [out] = outgoing(self.a)
        self.assertEqual(out.pairs, {("a.example", "b.example"): "dialback", ("a.example", "c.example"): "dialback"})
        self.assertIs(self.a.fed.routes["c.example"].stream, out)
        self.assertEqual(self.relay.connections, 1)
        self.assertEqual(
            inboundPairs(self.b, "a.example"), [{("a.example", "b.example"): "dialback", ("a.example", "c.example"): "dialback"}]
        )

    @defer.inlineCallbacks
    def test_burstSharesTheStream(self):
        """
        Messages to b.example and c.example written at once, before any
        stream is up: c.example waits for the stream being set up to the
        same address, then joins it; one connection carries both.
        """
        yield self.startNodes()
        bob = yield self.b.login("bob@b.example")
        carol = yield self.b.login("carol@c.example")
        self.alice.send(
            "<message to='bob@b.example/r' type='chat' id='m1'><body>hi</body></message>"
            "<message to='carol@c.example/r' type='chat' id='m2'><body>hi</body></message>"
        )
        for recipient, id_ in ((bob, "m1"), (carol, "m2")):
            got = yield nextMatching(recipient, lambda e: e.name == "message", timeout=10)
            self.assertEqual(xml(got), f"<message from='alice@a.example/r' id='{id_}' to='{recipient.jid}' type='chat'><body>hi</body></message>")
        self.assertEqual(outgoingPairs(self.a), [{("a.example", "b.example"): "dialback", ("a.example", "c.example"): "dialback"}])
        self.assertEqual(self.relay.connections, 1)
        self.assertEqual(self.a.fed.connectingAt, {})

    @defer.inlineCallbacks
    def test_certificateSharesTheStream(self):
        """
        The peer's certificate names both domains and a.example insists on
        certificates: b.example by SASL EXTERNAL, then c.example on the same
        stream, which the peer accepts on a.example's certificate without a
        callback.
        """
        ca = TestCA(tempfile.mkdtemp(prefix="jabberd-s2s-ca-"))
        yield self.startNodes(
            aCert=ca.issue("a.example"),
            bCert=ca.issue("b.example", names=["b.example", "c.example"]),
            a={"trust": ca.path, "require_certificate": True},
            b={"trust": ca.path},
        )
        yield self.chatWithBoth()
        [out] = outgoing(self.a)
        self.assertEqual(out.pairs, {("a.example", "b.example"): "sasl", ("a.example", "c.example"): "dialback"})
        self.assertEqual(self.relay.connections, 1)
        self.assertEqual(inboundPairs(self.b, "a.example"), [{("a.example", "b.example"): "sasl", ("a.example", "c.example"): "certificate"}])
        self.assertNotIn("a.example", self.b.fed.routes)  # no verification request went back

    @defer.inlineCallbacks
    def test_certificateNotCoveringTarget(self):
        """
        a.example insists on certificates and the stream to b.example shows
        a certificate for b.example only: c.example gets a connection of its
        own (where the peer shows c.example's certificate).
        """
        ca = TestCA(tempfile.mkdtemp(prefix="jabberd-s2s-ca-"))
        c = ca.issue("c.example")
        yield self.startNodes(
            aCert=ca.issue("a.example"),
            bCert=ca.issue("b.example"),
            bHosts={"c.example": {"certificate": c[0], "key": c[1]}},
            a={"trust": ca.path, "require_certificate": True},
            b={"trust": ca.path},
        )
        yield self.chatWithBoth()
        self.assertEqual(outgoingPairs(self.a), [{("a.example", "b.example"): "sasl"}, {("a.example", "c.example"): "sasl"}])
        self.assertEqual(self.relay.connections, 2)

    @defer.inlineCallbacks
    def test_notServedGetsItsOwnConnection(self):
        """
        The peer behind b.example's address does not serve c.example: it
        answers the piggybacked request with <item-not-found/> and keeps
        the stream; jabberd then tries c.example on a connection of its
        own, which the peer refuses (host-unknown), and the message comes
        back with remote-server-timeout.  b.example is still served.
        """
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.startNodes(bDomains=("b.example",))
        bob = yield self.b.login("bob@b.example")
        yield self.chat(bob, "m1")
        [first] = outgoing(self.a)
        self.alice.send("<message to='carol@c.example' type='chat' id='m2'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=10)
        self.assertEqual(
            xml(error),
            bounced(
                "m2", "remote-server-timeout", "wait", "no authenticated connection to c.example could be set up in time", sender="carol@c.example"
            ),
        )
        refusals = [(e["condition"], e["remote"]) for e in events if e.get("log_format", "").startswith("{stream}: dialback error")]
        self.assertEqual(refusals, [("item-not-found", "c.example")])
        self.assertEqual(self.relay.connections, 2)
        yield self.chat(bob, "m3")
        self.assertEqual(outgoing(self.a), [first])
        self.assertEqual(first.pairs, {("a.example", "b.example"): "dialback"})
        self.assertEqual(inboundPairs(self.b, "a.example"), [{("a.example", "b.example"): "dialback"}])

    @defer.inlineCallbacks
    def test_sharedStreamLost(self):
        """The peer restarts under a stream carrying both domains: both routes are dropped, and the next messages share one new connection again."""
        yield self.startNodes()
        yield self.chatWithBoth()
        yield self.b.stop()
        yield eventually(lambda: not self.a.fed.routes and not outgoing(self.a))
        yield self.b.start()
        bob = yield self.b.login("bob@b.example", create=False)
        carol = yield self.b.login("carol@c.example", create=False)
        yield self.chat(bob, "m3")
        yield self.chat(carol, "m4")
        self.assertEqual(outgoingPairs(self.a), [{("a.example", "b.example"): "dialback", ("a.example", "c.example"): "dialback"}])
        self.assertEqual(self.relay.connections, 2)

    @defer.inlineCallbacks
    def test_multiplexTargetsOff(self):
        """s2s.multiplex_targets = false: one connection per remote domain."""
        yield self.startNodes(a={"multiplex_targets": False})
        yield self.chatWithBoth()
        self.assertEqual(
            outgoingPairs(self.a), [{("a.example", "b.example"): "dialback"}, {("a.example", "c.example"): "dialback"}]
        )
        self.assertEqual(self.relay.connections, 2)


class PiggybackTests(StreamTestMixin, unittest.TestCase):
    """
    The receiving side, as raw transcripts: a peer authenticated as
    a.example for b.example asks for more pairs on the same stream.
    """

    @defer.inlineCallbacks
    def start(self, routes=None, **s2s):
        self.a = Node(self, "a.example")
        self.b = Node(self, "b.example", "c.example", routes={**self.a.route(), **(routes or {})}, **s2s)
        self.a.configure(routes=self.b.route())
        yield self.a.start()
        yield self.b.start()

    @defer.inlineCallbacks
    def ask(self, client, target, sender="a.example", key=None):
        """Send a dialback request for C{sender} to C{target} (with the real key); the answer."""
        key = key or self.a.fed.keys.make(target, sender, client.header["id"])
        client.send(f"<db:result xmlns:db='{DB}' from='{sender}' to='{target}'>{key}</db:result>")
        answer = yield nextMatching(client, lambda e: e.name == "result", timeout=10)
        return xml(answer)

    @defer.inlineCallbacks
    def test_piggybackedTarget(self):
        """A request for c.example on the stream opened to b.example is checked like the first and answered from c.example; then stanzas to c.example are routed."""
        yield self.start()
        carol = yield self.b.login("carol@c.example")
        client, _ = yield self.secured()
        self.assertEqual((yield self.ask(client, "b.example")), f"<result from='b.example' to='a.example' type='valid' xmlns='{DB}'/>")
        self.assertEqual((yield self.ask(client, "c.example")), f"<result from='c.example' to='a.example' type='valid' xmlns='{DB}'/>")
        client.send("<message from='alice@a.example/x' to='carol@c.example/r' id='m1'><body>hi</body></message>")
        got = yield nextMatching(carol, lambda e: e.name == "message")
        self.assertEqual(xml(got), "<message from='alice@a.example/x' id='m1' to='carol@c.example/r'><body>hi</body></message>")
        self.assertEqual(inboundPairs(self.b, "a.example"), [{("a.example", "b.example"): "dialback", ("a.example", "c.example"): "dialback"}])

    @defer.inlineCallbacks
    def test_unknownTargetKeepsTheStream(self):
        """A piggybacked request for a domain not served here gets the item-not-found dialback error; the pair already authenticated goes on working."""
        yield self.start()
        bob = yield self.b.login("bob@b.example")
        client, _ = yield self.secured()
        yield self.ask(client, "b.example")
        self.assertEqual(
            (yield self.ask(client, "x.example", key="abc")),
            f"<result from='x.example' to='a.example' type='error' xmlns='{DB}'><error type='cancel' xmlns='jabber:server'>"
            f"<item-not-found xmlns='{STANZAS}'/></error></result>",
        )
        client.send("<message from='alice@a.example/x' to='bob@b.example/r' id='m1'><body>still here</body></message>")
        got = yield nextMatching(bob, lambda e: e.name == "message")
        self.assertEqual(xml(got), "<message from='alice@a.example/x' id='m1' to='bob@b.example/r'><body>still here</body></message>")
        self.assertFalse(client.lost)

    @defer.inlineCallbacks
    def test_pairNotAuthenticated(self):
        """Authenticated for b.example only, a stanza from a.example to c.example (served here too): invalid-from."""
        yield self.start()
        client, _ = yield self.secured()
        yield self.ask(client, "b.example")
        client.send("<message from='alice@a.example/x' to='carol@c.example/r' id='m1'><body>hi</body></message>")
        yield client.waitClosed()
        self.assertEqual(streamError(client), "invalid-from")

    @defer.inlineCallbacks
    def test_legacyUnknownTarget(self):
        """A pre-1.0 peer (no stream features, so no <errors/> announced) asking for a domain not served here gets RFC 3920's host-unknown stream error."""
        yield self.start(require_tls=False)
        client = yield self.connect()
        client.send(header(version=""))
        yield client.nextHeader()
        client.send(f"<db:result xmlns:db='{DB}' from='a.example' to='x.example'>abc</db:result>")
        yield client.waitClosed()
        self.assertEqual(streamError(client), "host-unknown")

    @defer.inlineCallbacks
    def test_pendingRequestsBounded(self):
        """
        More dialback requests waiting for their authoritative servers than
        MAX_PENDING_DIALBACK on one stream: the next gets the
        resource-constraint dialback error at once.
        """
        silent = reactor.listenTCP(0, protocol.Factory.forProtocol(Silent), interface=LOOPBACK)
        self.addCleanup(silent.stopListening)
        limit = s2sstream.MAX_PENDING_DIALBACK
        yield self.start(routes={f"r{n}.example": f"{LOOPBACK}:{silent.getHost().port}" for n in range(limit + 1)})
        client, _ = yield self.secured()
        client.send("".join(f"<db:result xmlns:db='{DB}' from='r{n}.example' to='b.example'>abc</db:result>" for n in range(limit + 1)))
        answer = yield nextMatching(client, lambda e: e.name == "result", timeout=10)
        self.assertEqual(
            xml(answer),
            f"<result from='b.example' to='r{limit}.example' type='error' xmlns='{DB}'><error type='wait' xmlns='jabber:server'>"
            f"<resource-constraint xmlns='{STANZAS}'/></error></result>",
        )
        [stream] = [s for s in self.b.fed.streams if isinstance(s, InboundStream)]
        self.assertEqual(len(stream.pending), limit)


class InteropMixin:
    """jabberd's a.example writes to users on both domains of one real peer (b.example by CA certificate, c.example self-signed)."""

    peerClass: type

    @defer.inlineCallbacks
    def setUp(self):
        self.peer = shared(self.peerClass)
        self.node = yield startJabberd(self, self.peer)

    @defer.inlineCallbacks
    def test_bothDomains(self):
        """Messages to a user of each of the peer's domains, written at once, arrive; whether one connection carries both is the peer's choice (see the subclass)."""
        alice = yield self.node.login(f"{fresh('alice')}@a.example")
        users = []
        for domain in ("b.example", "c.example"):
            address = self.peer.register(f"{fresh('bob')}@{domain}")
            users.append((yield loginRaw(self, LOOPBACK, self.peer.c2s, address, "secret", "r")))
        alice.send("".join(f"<message to='{user.jid}' type='chat' id='m{n}'><body>to {user.jid}</body></message>" for n, user in enumerate(users)))
        for n, user in enumerate(users):
            got = yield nextMatching(user, lambda e: e.name == "message", timeout=20)
            self.assertEqual(strip(got), f"<message from='{alice.jid}' id='m{n}' to='{user.jid}' type='chat'><body>to {user.jid}</body></message>")
        self.assertEqual(outgoingPairs(self.node), self.expectedPairs)


    @defer.inlineCallbacks
    def test_theirDomainsToOurs(self):
        """
        The peer's users on b.example and c.example each write to our users
        on a.example and d.example: all four messages arrive, and every
        (their domain, our domain) pair is authenticated on our side,
        however the peer spreads them over connections.
        """
        ours, theirs = [], []
        for domain in ("a.example", "d.example"):
            ours.append((yield self.node.login(f"{fresh('alice')}@{domain}")))
        for domain in ("b.example", "c.example"):
            address = self.peer.register(f"{fresh('bob')}@{domain}")
            theirs.append((yield loginRaw(self, LOOPBACK, self.peer.c2s, address, "secret", "r")))
        for sender in theirs:
            for recipient in ours:
                sender.send(f"<message to='{recipient.jid}' type='chat' id='t1'><body>from {sender.jid}</body></message>")
                got = yield nextMatching(recipient, lambda e: e.name == "message", timeout=20)
                self.assertEqual(strip(got), f"<message from='{sender.jid}' id='t1' to='{recipient.jid}' type='chat'><body>from {sender.jid}</body></message>")
        inbound = [s for s in self.node.fed.streams if isinstance(s, InboundStream) and s.pairs]
        pairs = sorted(pair for s in inbound for pair in s.pairs)
        self.assertEqual(pairs, [(r, l) for r in ("b.example", "c.example") for l in ("a.example", "d.example")])
        self.assertEqual(len(inbound), self.inboundStreams)


class ProsodyMultiplexTests(InteropMixin, unittest.TestCase):
    """
    Prosody 0.12 announces dialback without <errors/>, so jabberd does not
    multiplex targets to it (XEP-0220 §2.4.3 SHOULD NOT): one stream per
    domain, as before.  Towards us it opens one stream per domain pair.
    """

    peerClass = Prosody
    expectedPairs = [{("a.example", "b.example"): "sasl"}, {("a.example", "c.example"): "dialback"}]
    inboundStreams = 4


class EjabberdMultiplexTests(InteropMixin, unittest.TestCase):
    """
    ejabberd 23.01 announces dialback errors and takes a piggybacked request
    for c.example on the stream jabberd opened to b.example: one stream
    carries both domains (b.example by SASL EXTERNAL, c.example by its own
    dialback request).  Towards us it opens one stream per domain pair.
    """

    peerClass = Ejabberd
    expectedPairs = [{("a.example", "b.example"): "sasl", ("a.example", "c.example"): "dialback"}]
    inboundStreams = 4
