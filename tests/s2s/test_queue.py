"""
The outgoing side over time: unreachable and silent peers, the queue's
bounds, idle links closing and coming back, several of our domains on one
connection, and the certificate-only policy.
"""

from __future__ import annotations

import tempfile

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.s2s.support import LOOPBACK, Node, TestCA, eventually, freePort, inboundMethods, nextMatching, startDNS, xml

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def bounced(id_, condition, type_, text, to="alice@a.example/r", sender="bob@b.example"):
    """The exact error a sender gets back for a chat message C{id_} that could not go out."""
    return (
        f"<message from='{sender}' id='{id_}' to='{to}' type='error'><body>hi</body>"
        f"<error type='{type_}'><{condition} xmlns='{STANZAS}'/>"
        f"<text xml:lang='en' xmlns='{STANZAS}'>{text}</text></error></message>"
    )


class Silent(protocol.Protocol):
    """A peer that accepts the connection and never says a word."""


class HangUp(protocol.Protocol):
    """A peer that accepts the connection and closes it at once; the factory counts them."""

    def connectionMade(self):
        self.factory.accepted += 1
        self.transport.loseConnection()


class UnreachableTests(unittest.TestCase):
    """Peers that cannot be used: every stanza comes back to its sender, in time."""

    @defer.inlineCallbacks
    def start(self, **s2s):
        self.a = Node(self, "a.example", **s2s)
        yield self.a.start(resolver=getattr(self, "resolver", None))
        self.alice = yield self.a.login("alice@a.example")

    def silentPeer(self):
        """A listening port that accepts and stays silent; returns its route."""
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Silent), interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return {"b.example": f"{LOOPBACK}:{port.getHost().port}"}

    @defer.inlineCallbacks
    def test_connectionRefused(self):
        """Nothing listens where the route points: remote-server-not-found at once."""
        yield self.start(routes={"b.example": f"{LOOPBACK}:{freePort()}"})
        self.alice.send("<message to='bob@b.example' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(xml(error), bounced("m1", "remote-server-not-found", "cancel", "b.example cannot be found or reached"))
        self.assertNotIn("b.example", self.a.fed.routes)

    @defer.inlineCallbacks
    def test_noSuchDomain(self):
        """DNS knows no b.example (no SRV, no A): remote-server-not-found."""
        self.resolver, _ = startDNS(self, "example", {})
        yield self.start()
        self.alice.send("<message to='bob@b.example' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=10)
        self.assertEqual(xml(error), bounced("m1", "remote-server-not-found", "cancel", "b.example cannot be found or reached"))

    @defer.inlineCallbacks
    def test_silentPeer(self):
        """A peer that never answers the stream header: remote-server-timeout after queue_max_age."""
        yield self.start(routes=self.silentPeer(), queue_max_age=1.0)
        sent = reactor.seconds()
        self.alice.send("<message to='bob@b.example' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(
            xml(error), bounced("m1", "remote-server-timeout", "wait", "no authenticated connection to b.example could be set up in time")
        )
        self.assertTrue(0.9 < reactor.seconds() - sent < 3, reactor.seconds() - sent)

    @defer.inlineCallbacks
    def test_queueBound(self):
        """With queue_max_stanzas = 2, a third waiting stanza is bounced at once (resource-constraint); the first two later time out."""
        yield self.start(routes=self.silentPeer(), queue_max_stanzas=2, queue_max_age=1.0)
        for n in (1, 2, 3):
            self.alice.send(f"<message to='bob@b.example' type='chat' id='m{n}'><body>hi</body></message>")
        errors = []
        for _ in range(3):
            errors.append((yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)))
        self.assertEqual(
            [(e["id"], e.error.firstChildElement().name) for e in errors],
            [("m3", "resource-constraint"), ("m1", "remote-server-timeout"), ("m2", "remote-server-timeout")],
        )

    @defer.inlineCallbacks
    def test_negativeCache(self):
        """
        After b.example could not be reached, stanzas for it within
        negative_cache_time bounce at once with the same error and no new
        connection; after it, the next stanza tries again.
        """
        factory = protocol.Factory.forProtocol(HangUp)
        factory.accepted = 0
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        yield self.start(routes={"b.example": f"{LOOPBACK}:{port.getHost().port}"}, negative_cache_time=1.0)
        timeout = ("remote-server-timeout", "wait", "no authenticated connection to b.example could be set up in time")
        self.alice.send("<message to='bob@b.example' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(xml(error), bounced("m1", *timeout))
        sent = reactor.seconds()
        for n in (2, 3):
            self.alice.send(f"<message to='bob@b.example' type='chat' id='m{n}'><body>hi</body></message>")
            error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
            self.assertEqual(xml(error), bounced(f"m{n}", *timeout))
        self.assertLess(reactor.seconds() - sent, 0.5)
        self.assertEqual(factory.accepted, 1)
        self.assertNotIn("b.example", self.a.fed.routes)
        yield eventually(lambda: reactor.seconds() - sent > 1.0)
        self.alice.send("<message to='bob@b.example' type='chat' id='m4'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(xml(error), bounced("m4", *timeout))
        self.assertEqual(factory.accepted, 2)

    @defer.inlineCallbacks
    def test_negativeCacheNotFound(self):
        """A refused connection is remembered too: the second stanza gets remote-server-not-found without a new attempt."""
        yield self.start(routes={"b.example": f"{LOOPBACK}:{freePort()}"})
        notFound = ("remote-server-not-found", "cancel", "b.example cannot be found or reached")
        self.alice.send("<message to='bob@b.example' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(xml(error), bounced("m1", *notFound))
        self.assertEqual(self.a.fed.unreachable.get("b.example"), "remote-server-not-found")
        self.alice.send("<message to='bob@b.example' type='chat' id='m2'><body>hi</body></message>")
        error = yield nextMatching(self.alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(xml(error), bounced("m2", *notFound))

    @defer.inlineCallbacks
    def test_iqBounced(self):
        """An iq to an unreachable server gets its error too (with the original payload left out, RFC 6120 §8.3.1)."""
        yield self.start(routes={"b.example": f"{LOOPBACK}:{freePort()}"})
        self.alice.send("<iq to='b.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        error = yield nextMatching(self.alice, lambda e: e.name == "iq", timeout=5)
        self.assertEqual(
            xml(error),
            "<iq from='b.example' id='p1' to='alice@a.example/r' type='error'><error type='cancel'>"
            f"<remote-server-not-found xmlns='{STANZAS}'/><text xml:lang='en' xmlns='{STANZAS}'>b.example cannot be found or reached</text>"
            "</error></iq>",
        )


class LinkTests(unittest.TestCase):
    """Two nodes: links go idle and come back, domains share a link, policies refuse."""

    @defer.inlineCallbacks
    def startNodes(self, aDomains=("a.example",), aCert=None, bCert=None, a=None, b=None):
        self.a = Node(self, *aDomains, certificate=aCert, **(a or {}))
        self.b = Node(self, "b.example", certificate=bCert, **(b or {}))
        self.a.configure(routes=self.b.route())
        self.b.configure(routes=self.a.route(*aDomains))
        yield self.a.start()
        yield self.b.start()
        self.bob = yield self.b.login("bob@b.example")

    @defer.inlineCallbacks
    def chat(self, sender, id_):
        sender.send(f"<message to='bob@b.example/r' type='chat' id='{id_}'><body>hi</body></message>")
        got = yield nextMatching(self.bob, lambda e: e.name == "message", timeout=10)
        self.assertEqual(xml(got), f"<message from='{sender.jid}' id='{id_}' to='bob@b.example/r' type='chat'><body>hi</body></message>")

    @defer.inlineCallbacks
    def test_idleAndReconnect(self):
        """An idle link closes after idle_timeout; the next stanza opens a new one and is delivered."""
        yield self.startNodes(a={"idle_timeout": 0.5})
        alice = yield self.a.login("alice@a.example")
        yield self.chat(alice, "m1")
        first = self.a.fed.routes["b.example"].stream
        yield eventually(lambda: "b.example" not in self.a.fed.routes and first.closing)
        yield self.chat(alice, "m2")
        self.assertIsNot(self.a.fed.routes["b.example"].stream, first)

    @defer.inlineCallbacks
    def test_peerRestarts(self):
        """When the peer goes away and comes back, the next stanza reconnects."""
        yield self.startNodes()
        alice = yield self.a.login("alice@a.example")
        yield self.chat(alice, "m1")
        yield self.b.stop()
        yield eventually(lambda: "b.example" not in self.a.fed.routes)
        yield self.b.start()
        self.bob = yield self.b.login("bob@b.example", create=False)
        yield self.chat(alice, "m2")

    @defer.inlineCallbacks
    def test_multiplexedDomains(self):
        """Two of our domains send to b.example over one connection, the second added by dialback (XEP-0220 §5)."""
        yield self.startNodes(aDomains=("a.example", "a2.example"))
        alice = yield self.a.login("alice@a.example")
        carol = yield self.a.login("carol@a2.example")
        yield self.chat(alice, "m1")
        yield self.chat(carol, "m2")
        outgoing = [s for s in self.a.fed.streams if type(s).__name__ == "OutboundStream"]
        self.assertEqual(len(outgoing), 1)
        self.assertEqual(outgoing[0].pairs, {("a.example", "b.example"): "dialback", ("a2.example", "b.example"): "dialback"})
        self.assertEqual(sorted(inboundMethods(self.b.fed, "a.example") + inboundMethods(self.b.fed, "a2.example")), ["dialback", "dialback"])

    @defer.inlineCallbacks
    def test_negativeCacheClearedByPeer(self):
        """b.example could not be reached, then its server authenticates a stream to us (SASL EXTERNAL): it is no longer remembered as unreachable."""
        ca = TestCA(tempfile.mkdtemp(prefix="jabberd-s2s-ca-"))
        self.a = Node(self, "a.example", certificate=ca.issue("a.example"), trust=ca.path, routes={"b.example": f"{LOOPBACK}:{freePort()}"})
        self.b = Node(self, "b.example", certificate=ca.issue("b.example"), trust=ca.path)
        self.b.configure(routes=self.a.route())
        yield self.a.start()
        yield self.b.start()
        alice = yield self.a.login("alice@a.example")
        bob = yield self.b.login("bob@b.example")
        alice.send("<message to='bob@b.example/r' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(alice, lambda e: e.name == "message", timeout=5)
        self.assertEqual(error.error.firstChildElement().name, "remote-server-not-found")
        self.assertEqual(self.a.fed.unreachable.get("b.example"), "remote-server-not-found")
        bob.send("<message to='alice@a.example/r' type='chat' id='m2'><body>I am here</body></message>")
        got = yield nextMatching(alice, lambda e: e.name == "message", timeout=10)
        self.assertEqual(xml(got), "<message from='bob@b.example/r' id='m2' to='alice@a.example/r' type='chat'><body>I am here</body></message>")
        self.assertEqual(inboundMethods(self.a.fed, "b.example"), ["sasl"])
        self.assertIsNone(self.a.fed.unreachable.get("b.example"))

    @defer.inlineCallbacks
    def test_requireCertificate(self):
        """b.example refuses dialback-only peers: a.example (self-signed) gets remote-server-timeout back."""
        yield self.startNodes(b={"require_certificate": True}, a={"queue_max_age": 5.0})
        alice = yield self.a.login("alice@a.example")
        alice.send("<message to='bob@b.example/r' type='chat' id='m1'><body>hi</body></message>")
        error = yield nextMatching(alice, lambda e: e.name == "message", timeout=10)
        self.assertEqual((error["type"], error.error.firstChildElement().name), ("error", "remote-server-timeout"))
        self.assertEqual(inboundMethods(self.b.fed, "a.example"), [])

    @defer.inlineCallbacks
    def test_serverOnlyCertificate(self):
        """A CA certificate without clientAuth: no SASL EXTERNAL; dialback, accepted on the certificate without a callback."""
        ca = TestCA(tempfile.mkdtemp(prefix="jabberd-s2s-ca-"))
        yield self.startNodes(
            aCert=ca.issue("a.example", clientAuth=False), bCert=ca.issue("b.example"), a={"trust": ca.path}, b={"trust": ca.path}
        )
        alice = yield self.a.login("alice@a.example")
        yield self.chat(alice, "m1")
        self.assertEqual(self.a.fed.routes["b.example"].stream.pairs, {("a.example", "b.example"): "dialback"})
        self.assertEqual(inboundMethods(self.b.fed, "a.example"), ["certificate"])
        # no verification request went back to a.example
        self.assertNotIn("a.example", self.b.fed.routes)
