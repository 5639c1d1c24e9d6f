"""
The new defences of jabberd.limits, attacked over loopback: too many
connections from one address, SASL guessing, a stanza flood.  Each test
checks that another user is still served, and the flood test that not one
accepted stanza is lost.
"""

from __future__ import annotations

import base64

from twisted.internet import defer, reactor
from twisted.trial import unittest

from jabberd.limits import AddressLimit, AuthThrottle, TokenBucket
from tests.harness import NS_SASL, xml
from tests.hostile.base import HostileMixin
from tests.hostile.test_attacks import sleep


class AddressLimitUnitTests(unittest.TestCase):
    def test_limit(self):
        limit = AddressLimit(2)
        self.assertTrue(limit.acquire("a"))
        self.assertTrue(limit.acquire("a"))
        self.assertFalse(limit.acquire("a"))
        self.assertTrue(limit.acquire("b"))
        limit.release("a")
        self.assertTrue(limit.acquire("a"))
        for _ in range(3):
            limit.release("a")
        limit.release("b")
        self.assertEqual(limit.counts, {})

    def test_unlimited(self):
        limit = AddressLimit(0)
        self.assertTrue(all(limit.acquire("a") for _ in range(1000)))


class TokenBucketUnitTests(unittest.TestCase):
    def test_burstThenRate(self):
        bucket = TokenBucket(1000, 500, now=0.0)
        self.assertEqual(bucket.consume(500, 0.0), 0.0)
        self.assertAlmostEqual(bucket.consume(1000, 0.0), 1.0)
        # After the wait the debt is paid; half a second more gives 500.
        self.assertEqual(bucket.consume(0, 1.0), 0.0)
        self.assertEqual(bucket.consume(500, 1.5), 0.0)

    def test_refillCappedAtBurst(self):
        bucket = TokenBucket(1000, 500, now=0.0)
        self.assertAlmostEqual(bucket.consume(1500, 100.0), 1.0)


class AuthThrottleUnitTests(unittest.TestCase):
    def test_growingDelay(self):
        t = AuthThrottle(0.5, 4.0)
        delays = [t.failed("1.2.3.4", None, 0.0) for _ in range(6)]
        self.assertEqual(delays, [0.0, 0.5, 1.0, 2.0, 4.0, 4.0])

    def test_perAccountAcrossAddresses(self):
        """Guessing one account from many addresses is slowed down too."""
        t = AuthThrottle(1.0, 60.0)
        delays = [t.failed(f"10.0.0.{i}", ("localhost", "alice"), 0.0) for i in range(4)]
        self.assertEqual(delays, [0.0, 1.0, 2.0, 4.0])

    def test_successForgetsAccountNotAddress(self):
        t = AuthThrottle(1.0, 60.0)
        t.failed("a", ("h", "u"), 0.0)
        t.failed("a", ("h", "u"), 0.0)
        t.succeeded(("h", "u"))
        self.assertEqual(t.failed("b", ("h", "u"), 0.0), 0.0)
        # "a" has failed twice before: its third failure waits 2 s.
        self.assertEqual(t.failed("a", ("h", "v"), 0.0), 2.0)

    def test_forgottenAfterMemory(self):
        t = AuthThrottle(1.0, 60.0, memory=10.0)
        t.failed("a", None, 0.0)
        t.failed("a", None, 0.0)
        self.assertEqual(t.failed("a", None, 100.0), 0.0)

    def test_boundedMemory(self):
        """A botnet of distinct addresses cannot grow the table without limit."""
        t = AuthThrottle(1.0, 60.0, entries=100)
        for i in range(10000):
            t.failed(f"addr{i}", ("h", f"user{i}"), 0.0)
        self.assertEqual(len(t), 100)

    def test_off(self):
        t = AuthThrottle(0.0, 60.0)
        self.assertEqual([t.failed("a", None, 0.0) for _ in range(5)], [0.0] * 5)
        self.assertEqual(len(t), 0)


class ConnectionLimitTests(HostileMixin, unittest.TestCase):
    """c2s.max_connections_per_address."""

    def setUp(self):
        return self.startServer(c2s={"max_connections_per_address": 5})

    @defer.inlineCallbacks
    def test_excessConnectionRefused(self):
        """The sixth connection from one address gets our header and policy-violation, unread."""
        clients = []
        for _ in range(5):
            client = yield self.connect()
            yield self.openStream(client)
            clients.append(client)
        extra = yield self.connect()
        yield self.assertStreamError(extra, "policy-violation")
        self.assertNotIn("from", extra.headers[0])  # refused before any byte was read
        # The five are untouched; another address is served meanwhile.
        self.assertFalse(any(c.lost for c in clients))
        yield self.assertServed()
        # Closing one frees a slot.
        yield clients.pop().disconnect()
        yield sleep(0.05)
        again = yield self.connect()
        yield self.openStream(again)
        self.assertFalse(again.lost)

    @defer.inlineCallbacks
    def test_thousandConnections(self):
        """
        1,000 connections from one address (in waves of 40, within the listen
        backlog): 5 stay open, every other one is refused, others are served.
        """
        clients = []
        for _ in range(25):
            wave = yield defer.gatherResults([self.connect() for _ in range(40)])
            clients.extend(wave)
            for _ in range(200):
                if sum(1 for c in clients if not c.lost) <= 5:
                    break
                yield sleep(0.02)
        self.assertEqual(sum(1 for c in clients if not c.lost), 5)
        factory = self.server._c2sFactories[0]
        self.assertEqual(factory.perAddress.counts, {"127.0.0.1": 5})
        yield self.assertServed()

    @defer.inlineCallbacks
    def test_directTLSCounted(self):
        """Direct TLS connections count towards the same limit."""
        for _ in range(5):
            client = yield self.connect("c2s_tls")
            client.open()
            yield client.nextHeader()
        extra = yield self.connect("c2s_tls")
        yield self.assertStreamError(extra, "policy-violation")


class SASLThrottleTests(HostileMixin, unittest.TestCase):
    """auth.throttle_delay / auth.throttle_max_delay."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(auth={"throttle_delay": 0.3, "throttle_max_delay": 5.0, "max_attempts": 10})
        yield self.addUser("alice@localhost")

    @defer.inlineCallbacks
    def guess(self, client, password: str, user: str = "alice"):
        """One PLAIN attempt; return (answer, seconds it took)."""
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        start = reactor.seconds()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        answer = yield client.next(timeout=10)
        return answer, reactor.seconds() - start

    @defer.inlineCallbacks
    def negotiated(self):
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        return client

    @defer.inlineCallbacks
    def test_growingDelayAcrossConnections(self):
        """Each guess waits longer than the one before, even on a new connection."""
        times = []
        for i in range(4):
            client = yield self.negotiated()
            answer, took = yield self.guess(client, f"wrong{i}")
            self.assertEqual(answer.name, "failure", xml(answer))
            self.assertIsNotNone(answer.elements(NS_SASL, "not-authorized").__next__())
            times.append(took)
            yield client.disconnect()
        self.assertLess(times[0], 0.25)
        self.assertGreaterEqual(times[1], 0.28)
        self.assertGreaterEqual(times[2], 0.58)
        self.assertGreaterEqual(times[3], 1.18)

    @defer.inlineCallbacks
    def test_reactorNotBlocked(self):
        """While a failure waits out its delay, another user is served at once."""
        client = yield self.negotiated()
        yield self.guess(client, "wrong")
        token = base64.b64encode(b"\0alice\0wrong2").decode()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        # Throttle at 0.3 s from 127.0.0.1; bob logs in from 127.0.0.2, his
        # account and address clean.
        start = reactor.seconds()
        yield self.assertServed()
        self.assertFalse(client.elements[client.cursor:], "the throttled answer came early")
        answer = yield client.next(timeout=10)
        self.assertEqual(answer.name, "failure")
        self.assertGreater(reactor.seconds() - start, 0.0)

    @defer.inlineCallbacks
    def test_rightPasswordStillWorks(self):
        """After guesses, the real password still authenticates (after its wait) and clears the account."""
        client = yield self.negotiated()
        yield self.guess(client, "wrong")
        answer, took = yield self.guess(client, "secret")
        self.assertEqual(answer.name, "success", xml(answer))

    @defer.inlineCallbacks
    def test_pipelinedGuessRefused(self):
        """A new attempt sent before the delayed failure arrived ends the stream (policy-violation)."""
        client = yield self.negotiated()
        yield self.guess(client, "wrong")
        token = base64.b64encode(b"\0alice\0wrong2").decode()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        yield sleep(0.1)  # its failure is now waiting out the 0.3 s delay
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        yield self.assertStreamError(client, "policy-violation")
        yield self.assertServed()


class FloodTests(HostileMixin, unittest.TestCase):
    """c2s.max_bytes_per_second / c2s.burst_bytes: reading slows down, nothing is dropped."""

    RATE = 40000
    BURST = 20000

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(c2s={"max_bytes_per_second": self.RATE, "burst_bytes": self.BURST})
        yield self.addUser("alice@localhost")
        yield self.addUser("carol@localhost")

    @defer.inlineCallbacks
    def test_floodIsSlowedNotDropped(self):
        """
        120 kB of messages at once: read at about 40 kB/s (so over 2 s), every
        one delivered in order, and a third user is served during the flood.
        """
        alice, _ = yield self.login("alice@localhost")
        carol, carolJID = yield self.login("carol@localhost")
        body = "f" * 900
        count = 120
        start = reactor.seconds()
        alice.send("".join(f"<message to='{carolJID}' id='m{i}' type='chat'><body>{body}</body></message>" for i in range(count)))
        yield sleep(0.3)
        # Mid-flood: someone else logs in and is answered.
        servedStart = reactor.seconds()
        yield self.assertServed()
        self.assertLess(reactor.seconds() - servedStart, 2.0)
        yield carol.waitFor(lambda: len([e for e in carol.elements if e.name == "message"]) >= count, timeout=15)
        took = reactor.seconds() - start
        ids = [e["id"] for e in carol.elements if e.name == "message"]
        self.assertEqual(ids, [f"m{i}" for i in range(count)])
        total = count * (len(body) + 80)
        self.assertGreater(took, (total - self.BURST) / self.RATE * 0.8)
        self.assertFalse(alice.lost)
        # The flooder's own stream still works once the flood is read.
        alice.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield alice.waitFor(lambda: next((e for e in alice.elements if e.getAttribute("id") == "after"), None))
        self.assertEqual(reply["type"], "result")
