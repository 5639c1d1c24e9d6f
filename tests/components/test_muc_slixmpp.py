"""
Multi-user chat end to end with a real client (slixmpp's XEP-0045 plugin),
over real loopback sockets, against the MUC run both ways: inside the
server (the zero-configuration conference.localhost) and as an external
component over XEP-0114 (muc.localhost, the component service connecting
to the server's component port).

Transcript of the main scenario (L{MucScenario.test_createConfigureTalkModerate}):

    alice: joins room (created: 201), fetches the configuration form, names the room
    bob, carol: join; alice says "hello"; bob and carol get it from room/Alice
    bob:   becomes Robert (303); alice sees Robert
    alice: kicks Carol (307); bans carol@localhost; carol cannot come back (forbidden)
    alice: makes bob a member, the room members-only; dave is refused (registration-required)

and of the persistence scenario: a persistent room, its name and member
list survive a restart of the component and of the core.
"""

from __future__ import annotations

import asyncio
import socket

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from components.config import fromMucDict
from components.muc.tap import MucComponentService
from jabberd.service import XMPPServer
from tests.harness import ServerMixin, connectSlixmpp, deferred, slixmppClient

SECRET = "component secret"
PLUGINS = ("xep_0030", "xep_0004", "xep_0045")


def freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def waitFor(client, event: str, predicate=lambda stanza: True, timeout: float = 10.0) -> defer.Deferred:
    """The next C{event} of C{client} whose stanza matches C{predicate}."""
    future = asyncio.get_event_loop().create_future()

    def handler(stanza):
        if not future.done() and predicate(stanza):
            future.set_result(stanza)
            client.del_event_handler(event, handler)

    client.add_event_handler(event, handler)
    return defer.Deferred.fromFuture(future).addTimeout(timeout, reactor)


def codes(presence) -> set[int]:
    return set(presence["muc"]["status_codes"])


class MucScenario(ServerMixin):
    """The scenarios; subclasses say how the MUC runs."""

    domain: str
    timeout = 90

    @property
    def room(self) -> str:
        return f"room@{self.domain}"

    # -- how the MUC runs (subclasses) ------------------------------------------

    def startAll(self) -> defer.Deferred:
        raise NotImplementedError

    def restartComponent(self) -> defer.Deferred:
        raise NotImplementedError

    @defer.inlineCallbacks
    def restartCore(self):
        """Stop the server and start it again on the same configuration and database."""
        config = self.server.config
        yield self.server.stopService()
        self.server = XMPPServer(config, reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready

    # -- clients -------------------------------------------------------------------

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startAll()
        for user in ("alice", "bob", "carol", "dave"):
            yield self.addUser(f"{user}@localhost")

    @defer.inlineCallbacks
    def login(self, user: str):
        client = slixmppClient(f"{user}@localhost/{user}", "secret", sslContext=self.clientSSLContext(), plugins=PLUGINS)
        self.addCleanup(client.disconnect)
        yield connectSlixmpp(client, self.server.port("c2s"))
        client.send_presence()
        return client

    def join(self, client, nick: str, room: str | None = None, **kw) -> defer.Deferred:
        return deferred(client.plugin["xep_0045"].join_muc_wait(room or self.room, nick, timeout=10, **kw))

    @defer.inlineCallbacks
    def configure(self, client, room: str | None = None, **values):
        muc = client.plugin["xep_0045"]
        form = yield deferred(muc.get_room_config(room or self.room))
        for var, value in values.items():
            form.field[var]["value"] = value
        yield deferred(muc.set_room_config(room or self.room, form))

    @defer.inlineCallbacks
    def refusal(self, client, nick: str) -> defer.Deferred:
        """Join, expecting an error presence; its condition."""
        from slixmpp.exceptions import PresenceError

        try:
            yield self.join(client, nick)
        except PresenceError as e:
            return e.condition
        self.fail(f"{nick} could join")

    # -- scenarios ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_createConfigureTalkModerate(self):
        """Create and configure a room, three users join and talk, a nick change, a kick, a ban, members-only."""
        alice = yield self.login("alice")
        bob = yield self.login("bob")
        carol = yield self.login("carol")
        dave = yield self.login("dave")
        presence, subject, occupants, history = yield self.join(alice, "Alice")
        self.assertEqual(codes(presence), {110, 201})
        self.assertEqual(presence["muc"]["affiliation"], "owner")
        yield self.configure(alice, **{"muc#roomconfig_roomname": "Witches"})

        yield self.join(bob, "Bob")
        presence, subject, occupants, history = yield self.join(carol, "Carol")
        self.assertEqual(sorted(p["from"].resource for p in occupants), ["Alice", "Bob", "Carol"])

        toBob = waitFor(bob, "groupchat_message")
        toCarol = waitFor(carol, "groupchat_message")
        alice.send_message(mto=self.room, mbody="hello", mtype="groupchat")
        for got in ((yield toBob), (yield toCarol)):
            self.assertEqual((str(got["from"]), got["body"]), (f"{self.room}/Alice", "hello"))

        robert = waitFor(alice, "groupchat_presence", lambda p: p["from"].resource == "Robert")
        newNick = yield deferred(bob.plugin["xep_0045"].set_self_nick(self.room, "Robert", timeout=10))
        self.assertEqual(newNick, "Robert")
        yield robert

        kicked = waitFor(carol, "groupchat_presence", lambda p: p["type"] == "unavailable")
        yield deferred(alice.plugin["xep_0045"].set_role(self.room, "Carol", "none", reason="enough"))
        gone = yield kicked
        self.assertEqual(codes(gone), {110, 307})
        self.assertEqual(gone["muc"]["item"]["reason"], "enough")

        yield deferred(alice.plugin["xep_0045"].set_affiliation(self.room, "outcast", jid="carol@localhost"))
        self.assertEqual((yield self.refusal(carol, "Carol")), "forbidden")

        yield deferred(alice.plugin["xep_0045"].set_affiliation(self.room, "member", jid="bob@localhost"))
        yield self.configure(alice, **{"muc#roomconfig_membersonly": True})
        self.assertEqual((yield self.refusal(dave, "Dave")), "registration-required")
        members = yield deferred(alice.plugin["xep_0045"].get_affiliation_list(self.room, "member"))
        self.assertEqual([str(j) for j in members], ["bob@localhost"])

    @defer.inlineCallbacks
    def test_persistentRoomSurvivesRestarts(self):
        """A persistent room keeps its name and members across a restart of the component and of the core."""
        alice = yield self.login("alice")
        room = f"keep@{self.domain}"
        yield self.join(alice, "Alice", room=room)
        yield self.configure(alice, room, **{"muc#roomconfig_persistentroom": True, "muc#roomconfig_roomname": "Kept"})
        yield deferred(alice.plugin["xep_0045"].set_affiliation(room, "member", jid="bob@localhost"))

        yield self.restartComponent()
        yield self.checkKept(room)
        yield self.restartCore()
        yield self.checkKept(room)

    @defer.inlineCallbacks
    def test_droppedConnectionLeavesEveryRoom(self):
        """When a user's connection drops, the server's directed unavailable presence takes it out of every room."""
        alice = yield self.login("alice")
        bob = yield self.login("bob")
        rooms = [f"one@{self.domain}", f"two@{self.domain}"]
        for room in rooms:
            yield self.join(alice, "Alice", room=room)
            yield self.configure(alice, room)
            yield self.join(bob, "Bob", room=room)
        left = [waitFor(alice, f"muc::{room}::got_offline", lambda p: p["from"].resource == "Bob") for room in rooms]
        bob.abort()
        for d in left:
            presence = yield d
            self.assertEqual((presence["type"], presence["muc"]["role"]), ("unavailable", "none"))

    @defer.inlineCallbacks
    def checkKept(self, room: str):
        alice = yield self.login("alice")
        info = yield deferred(alice.plugin["xep_0030"].get_info(jid=room))
        names = [identity[3] for identity in info["disco_info"]["identities"]]
        self.assertEqual(names, ["Kept"])
        self.assertIn("muc_persistent", info["disco_info"]["features"])
        members = yield deferred(alice.plugin["xep_0045"].get_affiliation_list(room, "member"))
        self.assertEqual([str(j) for j in members], ["bob@localhost"])
        presence, subject, occupants, history = yield self.join(alice, "Alice", room=room)
        self.assertEqual((presence["muc"]["affiliation"], codes(presence)), ("owner", {110}))
        alice.disconnect()


class InProcessMucTests(MucScenario, unittest.TestCase):
    """The MUC inside the server: the zero-configuration conference.localhost."""

    domain = "conference.localhost"

    def startAll(self):
        return self.startServer()

    def restartComponent(self):
        # In-process, the component lives and restarts with the server.
        return self.restartCore()

    @defer.inlineCallbacks
    def test_serverShutdownTellsOccupants(self):
        """A stopping server first tells occupants the service is going away (332), then ends their streams."""
        alice = yield self.login("alice")
        yield self.join(alice, "Alice")
        yield self.configure(alice)
        events: list[str] = []
        done = asyncio.get_event_loop().create_future()
        alice.add_event_handler("groupchat_presence", lambda p: p["type"] == "unavailable" and events.append(
            f"presence {sorted(codes(p))}"))
        alice.add_event_handler("stream_error", lambda e: (events.append(f"stream error {e['condition']}"),
                                                            done.done() or done.set_result(None)))
        yield self.server.stopService()
        yield defer.Deferred.fromFuture(done).addTimeout(10, reactor)
        self.assertEqual(events, ["presence [110, 332]", "stream error system-shutdown"])


class ExternalMucTests(MucScenario, unittest.TestCase):
    """The MUC as an external component over XEP-0114 (muc.localhost)."""

    domain = "muc.localhost"

    @defer.inlineCallbacks
    def startAll(self):
        self.componentPort = freePort()
        yield self.startServer(
            components={"listen": [f"tcp:{self.componentPort}:interface=127.0.0.1"], "secrets": {self.domain: SECRET}},
            muc={"enabled": False},
        )
        yield self.startComponent()

    @defer.inlineCallbacks
    def startComponent(self):
        config = fromMucDict({
            "data_dir": self.dataDir,
            "component": {"domain": self.domain, "secret": SECRET, "port": self.componentPort, "reconnect_max_delay": 1.0},
        })
        self.muc = MucComponentService(config, reactor)
        self.muc.component.factory.initialDelay = self.muc.component.factory.delay = 0.1
        self.muc.startService()
        self.addCleanup(self.muc.stopService)
        yield self.muc.ready
        yield self.connected()

    @defer.inlineCallbacks
    def connected(self):
        for _ in range(500):
            if self.domain in self.server.components.connected:
                return
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.fail("the component did not connect")

    @defer.inlineCallbacks
    def restartComponent(self):
        yield self.muc.stopService()
        yield self.startComponent()

    @defer.inlineCallbacks
    def restartCore(self):
        yield MucScenario.restartCore(self)
        yield self.connected()  # the component reconnects by itself
