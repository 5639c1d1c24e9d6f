"""
Finding the server (RFC 6120 §3.2, XEP-0368) through a real DNS server:
a twisted.names authority on 127.0.0.1 (ephemeral UDP port) and a
resolver that asks only it, injected into the client.
"""

from __future__ import annotations

import random

from twisted.internet import defer
from twisted.names import dns
from twisted.trial import unittest

from jabberd.client import Client, ClientOptions, ConnectionFailed
from jabberd.client.srv import resolve
from jabberd.srv import SRVRecord as _Record, Target, order
from tests.client.support import freePort, startDNS
from tests.harness import ServerMixin


def srv(priority: int, weight: int, port: int, target: str | bytes) -> dns.Record_SRV:
    return dns.Record_SRV(priority, weight, port, target, ttl=60)


def a(address: str) -> dns.Record_A:
    return dns.Record_A(address, ttl=60)


class OrderTests(unittest.TestCase):
    """RFC 2782 ordering of SRV records."""

    def test_priorityFirst(self):
        """Lower priority values are tried first whatever their weight."""
        records = [_Record(20, 100, Target("b", 1, False)), _Record(10, 0, Target("a", 1, False))]
        self.assertEqual([t.host for t in order(records, random.Random(1))], ["a", "b"])

    def test_weightIsAProbability(self):
        """Within a priority, weight 90 against 10 is drawn first about nine times in ten."""
        records = [_Record(0, 10, Target("light", 1, False)), _Record(0, 90, Target("heavy", 1, False))]
        rng = random.Random(42)
        firsts = [order(records, rng)[0].host for _ in range(1000)]
        self.assertTrue(850 < firsts.count("heavy") < 950, firsts.count("heavy"))


class ResolveTests(unittest.TestCase):
    """resolve() against a local authoritative DNS server."""

    def resolver(self, records):
        return startDNS(self, "example.test", records)

    @defer.inlineCallbacks
    def test_bothKindsMerged(self):
        """xmpps-client and xmpp-client records form one list ordered by priority (XEP-0368)."""
        r = self.resolver(
            {
                "_xmpps-client._tcp.example.test": [srv(5, 0, 5223, "tls.example.test")],
                "_xmpp-client._tcp.example.test": [srv(10, 0, 5222, "xmpp.example.test"), srv(0, 0, 15222, "first.example.test")],
            }
        )
        targets = yield defer.ensureDeferred(resolve("example.test", r))
        self.assertEqual(
            targets,
            [Target("first.example.test", 15222, False), Target("tls.example.test", 5223, True), Target("xmpp.example.test", 5222, False)],
        )

    @defer.inlineCallbacks
    def test_onlyDirectTLS(self):
        """directTLS=True asks only for _xmpps-client."""
        r = self.resolver(
            {
                "_xmpps-client._tcp.example.test": [srv(5, 0, 5223, "tls.example.test")],
                "_xmpp-client._tcp.example.test": [srv(0, 0, 5222, "xmpp.example.test")],
            }
        )
        targets = yield defer.ensureDeferred(resolve("example.test", r, directTLS=True))
        self.assertEqual(targets, [Target("tls.example.test", 5223, True)])

    @defer.inlineCallbacks
    def test_noRecordsFallsBackToDomain(self):
        """No SRV records (NXDOMAIN): the domain itself on 5222 (RFC 6120 §3.2.2)."""
        targets = yield defer.ensureDeferred(resolve("example.test", self.resolver({})))
        self.assertEqual(targets, [Target("example.test", 5222, False)])

    @defer.inlineCallbacks
    def test_noRecordsDirectTLSFallback(self):
        """With direct TLS and no records, the domain on 5223."""
        targets = yield defer.ensureDeferred(resolve("example.test", self.resolver({}), directTLS=True))
        self.assertEqual(targets, [Target("example.test", 5223, True)])

    @defer.inlineCallbacks
    def test_dotMeansNoService(self):
        """A lone "." target for xmpp-client means no service and forbids the fallback."""
        r = self.resolver({"_xmpp-client._tcp.example.test": [srv(0, 0, 0, b"")]})
        e = yield self.assertFailure(defer.ensureDeferred(resolve("example.test", r)), ConnectionFailed)
        self.assertEqual(str(e), "example.test publishes that it offers no XMPP client service")

    @defer.inlineCallbacks
    def test_dotForDirectTLSOnly(self):
        """"." for xmpps-client only rules out direct TLS; the xmpp-client records are used."""
        r = self.resolver(
            {
                "_xmpps-client._tcp.example.test": [srv(0, 0, 0, b"")],
                "_xmpp-client._tcp.example.test": [srv(0, 0, 5222, "xmpp.example.test")],
            }
        )
        targets = yield defer.ensureDeferred(resolve("example.test", r))
        self.assertEqual(targets, [Target("xmpp.example.test", 5222, False)])

    @defer.inlineCallbacks
    def test_localhostAndLiteralsNeedNoDNS(self):
        """localhost and IP literals are used as they are, without asking DNS."""

        class Refuse:
            def lookupService(self, *a, **kw):
                raise AssertionError("asked DNS")

        self.assertEqual((yield defer.ensureDeferred(resolve("localhost", Refuse()))), [Target("localhost", 5222, False)])
        self.assertEqual((yield defer.ensureDeferred(resolve("127.0.0.1", Refuse()))), [Target("127.0.0.1", 5222, False)])


class ConnectViaSRVTests(ServerMixin, unittest.TestCase):
    """A client with no host configured finds jabberd through SRV and A records in the local DNS."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer(hosts=["example.test"])
        yield self.addUser("alice@example.test", "secret")

    def options(self, records, **kw):
        resolver = startDNS(self, "example.test", records)
        return ClientOptions(resolver=resolver, trust=self.certificatePath("example.test"), timeout=10, **kw)

    @defer.inlineCallbacks
    def test_startTLSTarget(self):
        """_xmpp-client points at xmpp.example.test (A 127.0.0.1) on jabberd's port: STARTTLS login as alice."""
        options = self.options(
            {
                "_xmpp-client._tcp.example.test": [srv(0, 0, self.server.port("c2s"), "xmpp.example.test")],
                "xmpp.example.test": [a("127.0.0.1")],
            }
        )
        client = Client("alice@example.test/srv", "secret", options)
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        self.assertEqual((client.jid.full(), client.authenticator.directTLS), ("alice@example.test/srv", False))

    @defer.inlineCallbacks
    def test_directTLSTarget(self):
        """_xmpps-client is preferred by priority and reached with direct TLS."""
        options = self.options(
            {
                "_xmpps-client._tcp.example.test": [srv(0, 0, self.server.port("c2s_tls"), "tls.example.test")],
                "_xmpp-client._tcp.example.test": [srv(10, 0, self.server.port("c2s"), "xmpp.example.test")],
                "tls.example.test": [a("127.0.0.1")],
                "xmpp.example.test": [a("127.0.0.1")],
            }
        )
        client = Client("alice@example.test/srv", "secret", options)
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        self.assertEqual((client.jid.full(), client.authenticator.directTLS), ("alice@example.test/srv", True))

    @defer.inlineCallbacks
    def test_deadTargetSkipped(self):
        """The first target refuses connections; the client goes on to the next (RFC 6120 §3.2.1)."""
        dead = freePort()
        options = self.options(
            {
                "_xmpp-client._tcp.example.test": [
                    srv(0, 0, dead, "xmpp.example.test"),
                    srv(10, 0, self.server.port("c2s"), "xmpp.example.test"),
                ],
                "xmpp.example.test": [a("127.0.0.1")],
            }
        )
        client = Client("alice@example.test/srv", "secret", options)
        yield defer.ensureDeferred(client.connect())
        self.addCleanup(client.close)
        self.assertEqual(client.jid.full(), "alice@example.test/srv")

    @defer.inlineCallbacks
    def test_allTargetsDead(self):
        """Every target dead: one ConnectionFailed listing what was tried."""
        dead1, dead2 = freePort(), freePort()
        options = self.options(
            {
                "_xmpp-client._tcp.example.test": [srv(0, 0, dead1, "xmpp.example.test"), srv(10, 0, dead2, "xmpp.example.test")],
                "xmpp.example.test": [a("127.0.0.1")],
            }
        )
        client = Client("alice@example.test/srv", "secret", options)
        e = yield self.assertFailure(defer.ensureDeferred(client.connect()), ConnectionFailed)
        self.assertEqual(
            str(e),
            f"cannot connect to xmpp.example.test:{dead1}: connection refused; xmpp.example.test:{dead2}: connection refused",
        )
