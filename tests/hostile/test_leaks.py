"""
Clients that vanish without closing, and the leak checks every hostile
test module shares.

A client can disappear four ways: a TCP reset, a half-open connection
that simply goes silent (the idle timeout finds it), a BOSH session that
stops polling (the inactivity timeout), and a WebSocket that is dropped.
Each way, against a real server over loopback: the session is removed,
its contacts get unavailable presence, a message sent to it afterwards is
stored offline (and delivered at the next login), and after N such
clients nothing of them is left in memory: the count of live session
objects returns to where it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from components.bosh.bosh import BoshRequest, BoshSession
from components.bosh.inprocess import InProcessUpstream, WebLink
from components.bosh.websocket import XMPPWebSocketProtocol
from jabberd.c2s.session import ClientSession
from jabberd.c2s.tcp import ClientStream
from jabberd.components import ComponentStream
from jabberd.s2s.stream import InboundStream, OutboundStream
from jabberd.store.roster import RosterItem, set_item_txn
from jabberd.xmlstream import NS_CLIENT
from tests.components.bosh.support import WSMixin
from tests.harness import xml
from tests.hostile.base import HostileMixin
from tests.hostile.test_attacks import sleep

#: Server-side objects one connection or session owns: none may outlive it.
SERVER_OBJECTS: tuple[type, ...] = (
    ClientStream,
    ClientSession,
    BoshSession,
    BoshRequest,
    XMPPWebSocketProtocol,
    InProcessUpstream,
    WebLink,
    ComponentStream,
    InboundStream,
    OutboundStream,
)


def liveObjects(types: Iterable[type] = SERVER_OBJECTS) -> dict[str, int]:
    """How many instances of each of C{types} are alive, after a full collection."""
    types = tuple(types)
    gc.collect()
    counts = {t.__name__: 0 for t in types}
    for obj in gc.get_objects():
        kind = type(obj)
        if kind in types:
            counts[kind.__name__] += 1
    return counts


def registries(server: Any) -> dict[str, Any]:
    """Every registry a connection leaves a trace in, and per-address counters."""
    found: dict[str, Any] = {
        "clientStreams": len(server.clientStreams),
        "boundSessions": server.sessions.count(),
        "c2sPerAddress": [dict(f.perAddress.counts) for f in getattr(server, "_c2sFactories", [])],
    }
    web = getattr(server, "web", None)
    if web is not None:
        found["boshSessions"] = len(web.bosh.sessions)
        found["webSockets"] = len(web.websocket.connections)
        found["webPerAddress"] = dict(web.perAddress.counts)
    components = getattr(server, "components", None)
    if components is not None:
        found["componentStreams"] = len(components.streams)
    s2s = getattr(server, "s2s", None)
    if s2s is not None:
        found["s2sStreams"] = len(s2s.streams)
        found["s2sPerAddress"] = dict(s2s.perAddress.counts)
        found["s2sRoutes"] = sorted(s2s.routes)
        found["s2sOutgoing"] = sorted(s2s.outgoing)
    return found


class LeakMixin:
    """Baseline and bound: after a burst the server holds no more than before it."""

    #: extra live objects of one kind tolerated after a burst (none)
    LEAK_BOUND = 0

    def baseline(self) -> tuple[dict[str, int], dict[str, Any]]:
        """What the server holds now, to compare with after the burst."""
        return liveObjects(), registries(self.server)

    @defer.inlineCallbacks
    def assertBackToBaseline(self, base: tuple[dict[str, int], dict[str, Any]], timeout: float = 5.0):
        """
        Within C{timeout} seconds the registries are as they were and no kind
        of server object has more live instances than at the baseline (plus
        L{LEAK_BOUND}): memory returned to its level, not just the dicts.
        """
        objects, regs = base
        waited = 0.0
        while True:
            nowRegs = registries(self.server)
            nowObjects = liveObjects()
            grown = {k: (objects[k], v) for k, v in nowObjects.items() if v > objects[k] + self.LEAK_BOUND}
            if nowRegs == regs and not grown:
                return
            if waited >= timeout:
                break
            yield sleep(0.1)
            waited += 0.1
        self.assertEqual(nowRegs, regs, "registries did not return to their baseline")
        self.fail(f"live server objects above their baseline (before, after): {grown}")


def presenceOf(client: Any, jid: str) -> Any:
    """The last presence from C{jid} a RawClient has received, or None."""
    found = [e for e in client.elements if e.name == "presence" and e.getAttribute("from") == jid]
    return found[-1] if found else None


class VanishingClientTests(LeakMixin, WSMixin, HostileMixin, unittest.TestCase):
    """A client that vanishes without closing: removed, unavailable broadcast, messages offline, no leak."""

    timeout = 60
    ROUNDS = 3

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWeb(
            http={"listen": ["tcp:0:interface=127.0.0.1"], "listen_tls": ["tcp:0:interface=127.0.0.1"],
                  "bosh_inactivity": 1, "bosh_max_wait": 1, "websocket_ping_interval": 0},
            c2s={"idle_timeout": 1.0},
        )
        yield self.addUser("bob@localhost")
        for i in range(self.ROUNDS):
            # One account per round, so that one round's offline message is
            # not fetched by the next round's login.
            yield self.addUser(f"alice{i}@localhost")
            for owner, contact in ((f"alice{i}@localhost", "bob@localhost"), ("bob@localhost", f"alice{i}@localhost")):
                user, _, host = owner.partition("@")
                yield self.server.store.runInteraction("seed", set_item_txn, host, user, RosterItem(jid=contact, subscription="both"), 1)
        self.bob, self.bobJID = yield self.login("bob@localhost", resource="watch")
        self.bob.send("<presence/>")
        yield self.bob.waitFor(lambda: presenceOf(self.bob, self.bobJID))
        # Bob stays: a whitespace keepalive beats the 1 s idle timeout.
        keepalive = task.LoopingCall(lambda: self.bob.lost or self.bob.send(" "))
        keepalive.start(0.3)
        self.addCleanup(keepalive.stop)

    @defer.inlineCallbacks
    def vanishes(self, appear, vanish):
        """
        For each of L{ROUNDS} accounts: it appears (C{appear(address)}
        returns its full JID and a handle), sends presence, vanishes
        (C{vanish(handle)}); bob must see it unavailable and a message to it
        must go offline.  Then each account's next login gets its message,
        and live objects are back to the baseline.
        """
        base = self.baseline()
        for i in range(self.ROUNDS):
            jid, handle = yield appear(f"alice{i}@localhost")
            yield self.bob.waitFor(lambda: (p := presenceOf(self.bob, jid)) is not None and p.getAttribute("type") is None)
            yield vanish(handle)
            presence = yield self.bob.waitFor(
                lambda: (p := presenceOf(self.bob, jid)) is not None and p.getAttribute("type") == "unavailable" and p,
                timeout=10,
            )
            self.assertEqual(xml(presence), f"<presence from='{jid}' to='bob@localhost' type='unavailable'/>")
            self.assertIsNone(self.server.sessions.get(f"alice{i}@localhost", jid.partition("/")[2]))
            self.bob.send(f"<message to='alice{i}@localhost' type='chat' id='off{i}'><body>while away</body></message>")
        yield self.assertBackToBaseline(base)
        for i in range(self.ROUNDS):
            alice, _ = yield self.login(f"alice{i}@localhost", resource="back")
            alice.send("<presence/>")
            got = yield alice.waitElement("message")
            self.assertEqual((got["id"], got["from"], str(got.body)), (f"off{i}", self.bobJID, "while away"))
        self.assertFalse([e for e in self.bob.elements if e.getAttribute("type") == "error"])

    @defer.inlineCallbacks
    def tcpAppear(self, address: str):
        client, jid = yield self.login(address, resource="tcp")
        client.send("<presence/>")
        return jid, client

    @defer.inlineCallbacks
    def test_tcpReset(self):
        """A TCP client whose connection is reset: session removed, unavailable broadcast, messages offline, no leak."""

        def reset(client):
            client.transport.abortConnection()
            return client.waitClosed()

        yield self.vanishes(self.tcpAppear, reset)

    @defer.inlineCallbacks
    def test_silentHalfOpen(self):
        """A TCP client that goes silent without closing (a half-open link) is ended by the idle timeout: same outcome."""
        silent = []

        @defer.inlineCallbacks
        def goSilent(client):
            silent.append(client)
            # The client never writes again; the server's idle timeout (1 s) ends it.
            yield client.waitClosed(timeout=10)
            self.assertIn(b"connection-timeout", client.raw)

        yield self.vanishes(self.tcpAppear, goSilent)

    @defer.inlineCallbacks
    def test_boshStopsPolling(self):
        """A BOSH client that stops polling is ended by bosh_inactivity: same outcome."""

        @defer.inlineCallbacks
        def appear(address):
            client, jid = yield self.boshLogin(address, resource="bosh", wait="1")
            yield client.post(f"<presence xmlns='{NS_CLIENT}'/>")
            return jid, client

        def stopPolling(client):
            return defer.succeed(None)  # simply never sends another request

        yield self.vanishes(appear, stopPolling)

    @defer.inlineCallbacks
    def test_webSocketDropped(self):
        """A WebSocket whose TCP connection is dropped without a close frame: same outcome."""

        @defer.inlineCallbacks
        def appear(address):
            client, jid = yield self.wsLogin(address, resource="ws")
            client.sendText(f"<presence xmlns='{NS_CLIENT}'/>")
            return jid, client

        def drop(client):
            client.transport.abortConnection()
            return client.closed

        yield self.vanishes(appear, drop)
