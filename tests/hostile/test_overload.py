"""
Overload (issue 11): the server sheds load by refusing new connections or
by reading more slowly, never by dropping a stanza it accepted.

Transcripts, each against a real server over loopback:

- The server is full (c2s.max_connections = 4, two sessions bound and two
  connections negotiating, from two addresses).  A fifth connection, from
  either address, gets our header, <resource-constraint/> and the closing
  tag, and none of its bytes is read.  Meanwhile the bound sessions chat
  and ping as before; once one of them leaves, a new client logs in.
- 120 connections arrive in waves at a server limited to 20: 20 stay
  open, every other one is refused, the bound sessions are still served.
- Four sessions flood at once, each far past c2s.max_bytes_per_second:
  three to an online user, one to an offline user.  Reading is delayed
  (the floods take as long as the rate says), a new user is served during
  the flood, and every message arrives exactly once, in order per sender,
  with no error; the offline user's messages are stored and delivered at
  the next login.
"""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.harness import NS_STREAM_ERRORS, RawClient, xml
from tests.hostile.base import OTHER_ADDRESS, HostileMixin
from tests.hostile.test_attacks import sleep


def messagesOf(client: RawClient) -> list:
    """The <message/> stanzas C{client} received on its current stream."""
    return [e for e in client.elements if e.name == "message"]


class ServedMixin(HostileMixin):
    """Check that bound sessions keep working, without opening a new connection."""

    @defer.inlineCallbacks
    def assertChatting(self, sender: RawClient, receiver: RawClient, receiverJID: str, tag: str):
        """C{sender} pings the server and sends C{receiver} a message; both arrive as sent."""
        sender.send(f"<iq type='get' id='ping-{tag}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield sender.waitFor(lambda: next((e for e in sender.elements if e.getAttribute("id") == f"ping-{tag}"), None))
        self.assertEqual(reply["type"], "result", xml(reply))
        sender.send(f"<message to='{receiverJID}' id='{tag}' type='chat'><body>{tag}</body></message>")
        got = yield receiver.waitFor(lambda: next((e for e in messagesOf(receiver) if e.getAttribute("id") == tag), None))
        self.assertEqual(str(got.body), tag)


class ServerFullTests(ServedMixin, unittest.TestCase):
    """c2s.max_connections: the whole server's limit, across addresses and listeners."""

    @defer.inlineCallbacks
    def startFull(self, limit: int):
        yield self.startServer(c2s={"max_connections": limit})
        yield self.addUser("alice@localhost")
        yield self.addUser("carol@localhost")

    @defer.inlineCallbacks
    def test_fullServerRefusesWithResourceConstraint(self):
        """At the limit a new connection from any address gets resource-constraint, unread, while bound sessions are still served."""
        yield self.startFull(4)
        alice, _ = yield self.login("alice@localhost")
        carol, carolJID = yield self.login("carol@localhost")
        negotiating = yield self.connect()
        yield self.openStream(negotiating)
        other = yield self.connectFrom(OTHER_ADDRESS)
        yield self.openStream(other)
        self.assertEqual(self.server._c2sFactories[0].total.counts, {"": 4})

        for source in ("127.0.0.1", OTHER_ADDRESS):
            extra = yield self.connectFrom(source)
            error = yield self.assertStreamError(extra, "resource-constraint")
            self.assertEqual(str(next(error.elements(NS_STREAM_ERRORS, "text"))), "the server has too many connections")
            self.assertNotIn("from", extra.headers[0])  # refused before any byte was read
        tls = yield self.connect("c2s_tls")
        yield self.assertStreamError(tls, "resource-constraint")

        self.assertFalse(any(c.lost for c in (alice, carol, negotiating, other)))
        yield self.assertChatting(alice, carol, carolJID, "while-full")
        self.assertEqual(self.server._c2sFactories[0].total.counts, {"": 4})

        # One leaves: the next client gets in and logs in.
        yield other.disconnect()
        yield sleep(0.05)
        again, _ = yield self.login("carol@localhost", resource="second")
        self.assertFalse(again.lost)

    @defer.inlineCallbacks
    def test_wavesOfConnections(self):
        """120 connections in waves against a limit of 20: 20 stay open, the rest are refused, bound sessions chat on."""
        yield self.startFull(20)
        alice, _ = yield self.login("alice@localhost")
        carol, carolJID = yield self.login("carol@localhost")
        clients = []
        for wave in range(4):
            got = yield defer.gatherResults([self.connectFrom(OTHER_ADDRESS if k % 2 else "127.0.0.1") for k in range(30)])
            clients.extend(got)
            for _ in range(200):
                if sum(1 for c in clients if not c.lost) <= 18:
                    break
                yield sleep(0.02)
            yield self.assertChatting(alice, carol, carolJID, f"wave{wave}")
        self.assertEqual(sum(1 for c in clients if not c.lost), 18)
        self.assertEqual(self.server._c2sFactories[0].total.counts, {"": 20})
        refused = [c for c in clients if c.lost]
        self.assertEqual(len(refused), 102)
        for client in refused:
            self.assertIn(b"<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", client.raw)


class ConcurrentFloodTests(ServedMixin, unittest.TestCase):
    """c2s.max_bytes_per_second under several floods at once: slower reads, nothing dropped."""

    RATE = 40000
    BURST = 20000
    COUNT = 120
    #: The most one read can hand over (Twisted's TLS layer: 32 KiB of
    #: plaintext); it is processed before the pause it causes.
    READ = 32768
    BODY = "f" * 900

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(c2s={"max_bytes_per_second": self.RATE, "burst_bytes": self.BURST})
        for name in ("f0", "f1", "f2", "f3", "carol", "dave"):
            yield self.addUser(f"{name}@localhost")

    def flood(self, client: RawClient, sender: str, to: str) -> tuple[list[str], int]:
        """Send COUNT messages (about 120 kB, six times the burst) in one write; return their ids and size."""
        ids = [f"{sender}-{i}" for i in range(self.COUNT)]
        data = "".join(f"<message to='{to}' id='{i}' type='chat'><body>{self.BODY}</body></message>" for i in ids)
        client.send(data)
        return ids, len(data)

    @defer.inlineCallbacks
    def test_concurrentFloodsDelayedNotDropped(self):
        """
        Four sessions flood at once (three to an online user, one to an
        offline one): reads are delayed to the rate, another user is served
        meanwhile, and every message arrives once, in order, without error.
        """
        flooders = []
        for n in range(4):
            client, _ = yield self.login(f"f{n}@localhost")
            flooders.append(client)
        carol, carolJID = yield self.login("carol@localhost")
        start = reactor.seconds()
        sent: dict[str, list[str]] = {}
        for n in range(3):
            sent[f"f{n}"], size = self.flood(flooders[n], f"f{n}", carolJID)
        toDave, _ = self.flood(flooders[3], "f3", "dave@localhost")
        yield sleep(0.3)
        servedStart = reactor.seconds()
        yield self.assertServed()
        self.assertLess(reactor.seconds() - servedStart, 2.0)

        total = 3 * self.COUNT
        yield carol.waitFor(lambda: len(messagesOf(carol)) >= total, timeout=20)
        took = reactor.seconds() - start
        # Each stream was read at its own rate: the floods overlapped, and
        # none of them was read faster than the limit allows.
        self.assertGreater(took, (size - self.BURST - self.READ) / self.RATE)
        yield sleep(0.3)  # a duplicate would arrive now
        got = messagesOf(carol)
        self.assertEqual(len(got), total)
        for sender, ids in sent.items():
            self.assertEqual([m["id"] for m in got if m["from"].startswith(f"{sender}@")], ids, sender)
        self.assertFalse([m for m in got if m.getAttribute("type") == "error"])
        for client in flooders:
            self.assertFalse(client.lost)
            self.assertFalse([e for e in client.elements if e.getAttribute("type") == "error"], [xml(e) for e in client.elements])

        # Dave was offline: his messages were stored, and arrive in order at
        # login.  A ping after the flood is answered once all of it was routed.
        f3 = flooders[3]
        f3.send("<iq type='get' id='routed' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        yield f3.waitFor(lambda: any(e.getAttribute("id") == "routed" for e in f3.elements), timeout=10)
        yield self.server.modules.modules["offline"].idle()
        dave, _ = yield self.login("dave@localhost")
        dave.send("<presence/>")
        answered: set[str] = set()
        while len(messagesOf(dave)) < self.COUNT:
            # The offline module confirms each batch of 100 with a ping.
            ping = yield dave.waitFor(
                lambda: next((e for e in dave.elements if e.name == "iq" and e["type"] == "get" and e["id"] not in answered), None),
                timeout=10,
            )
            answered.add(ping["id"])
            dave.send(f"<iq type='result' id='{ping['id']}' to='{ping.getAttribute('from', 'localhost')}'/>")
        self.assertEqual([m["id"] for m in messagesOf(dave)], toDave)
        for m in messagesOf(dave):
            self.assertEqual(m.delay["from"], "localhost")
