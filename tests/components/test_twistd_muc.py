"""
`twistd -n jabberd-muc --config muc.toml` as an operator runs it: a real
jabberd (under twistd) with a component secret, a real jabberd-muc process
connecting to it over XEP-0114, real clients (slixmpp) chatting in a room,
and SIGTERM.

    operator:  twistd -n jabberd --config jabberd.toml     (muc.enabled = false, a secret for muc.localhost)
    operator:  twistd -n jabberd-muc --config muc.toml
    server:    component muc.localhost connected
    alice:     creates room@muc.localhost; bob joins; alice says "hello"; bob gets it
    operator:  kill -TERM <jabberd-muc>
    alice,bob: unavailable from the room with 332; jabberd-muc exits 0
"""

from __future__ import annotations

import asyncio
import os
import re
import socket

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.harness import connectSlixmpp, deferred, slixmppClient
from tests.test_ctl import tomlString, writeConfig
from tests.test_twistd import TwistdMixin, listening

SECRET = "component secret"
DOMAIN = "muc.localhost"
ROOM = f"room@{DOMAIN}"


def freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TwistdMucTests(TwistdMixin, unittest.TestCase):
    """The standalone MUC component under twistd."""

    timeout = 120

    def setUp(self) -> None:
        self.setUpFolder()
        self.componentPort = freePort()
        self.config = writeConfig(
            os.path.join(self.base, "jabberd.toml"), self.dataDir,
            top=f'components.secrets = {{ "{DOMAIN}" = {tomlString(SECRET)} }}\nmuc.enabled = false',
            listeners={"components_listen": [f"tcp:{self.componentPort}:interface=127.0.0.1"]},
        )
        self.mucConfig = os.path.join(self.base, "muc.toml")
        with open(self.mucConfig, "w") as f:
            f.write(f"data_dir = {tomlString(self.dataDir)}\n[component]\ndomain = \"{DOMAIN}\"\n"
                    f"secret = {tomlString(SECRET)}\nport = {self.componentPort}\nreconnect_max_delay = 2.0\n")

    def client(self, jid: str) -> object:
        c = slixmppClient(jid, "secret", sslContext=self.clientContext(), plugins=("xep_0030", "xep_0004", "xep_0045"))
        self.addCleanup(c.disconnect)
        return c

    @defer.inlineCallbacks
    def test_chatThroughTheComponentAndShutdown(self):
        """Clients chat in a room of twistd jabberd-muc; SIGTERM tells them 332 and the process exits 0."""
        self.ctl(self.config, "adduser", "alice@localhost", "--password", "secret")
        self.ctl(self.config, "adduser", "bob@localhost", "--password", "secret")
        server = self.spawnTwistd("jabberd", "--config", self.config)
        port = self.port((yield server.waitFor(listening("c2s"))))
        yield server.waitFor(r"jabberd ready")
        muc = self.spawnTwistd("jabberd-muc", "--config", self.mucConfig)
        yield muc.waitFor(r"jabberd-muc serving muc\.localhost")
        yield server.waitFor(r"component muc\.localhost connected")

        alice, bob = self.client("alice@localhost/a"), self.client("bob@localhost/b")
        yield connectSlixmpp(alice, port)
        yield connectSlixmpp(bob, port)
        presence, *_ = yield deferred(alice.plugin["xep_0045"].join_muc_wait(ROOM, "Alice", timeout=10))
        self.assertEqual(set(presence["muc"]["status_codes"]), {110, 201})
        yield deferred(alice.plugin["xep_0045"].set_room_config(ROOM, (yield deferred(alice.plugin["xep_0045"].get_room_config(ROOM)))))
        yield deferred(bob.plugin["xep_0045"].join_muc_wait(ROOM, "Bob", timeout=10))
        loop = asyncio.get_event_loop()
        got = loop.create_future()
        bob.add_event_handler("groupchat_message", lambda m: got.done() or got.set_result(m))
        alice.send_message(mto=ROOM, mbody="hello", mtype="groupchat")
        message = yield defer.Deferred.fromFuture(got).addTimeout(10, reactor)
        self.assertEqual((str(message["from"]), message["body"]), (f"{ROOM}/Alice", "hello"))

        shutdown = {name: loop.create_future() for name in ("alice", "bob")}
        for name, c in (("alice", alice), ("bob", bob)):
            c.add_event_handler("groupchat_presence", lambda p, f=shutdown[name]: (
                p["type"] == "unavailable" and not f.done() and f.set_result(sorted(p["muc"]["status_codes"]))))
        status = yield self.stop(muc)
        self.assertEqual((status, muc.signal), (0, None), muc.output)
        for name, future in shutdown.items():
            codes = yield defer.Deferred.fromFuture(future).addTimeout(10, reactor)
            self.assertEqual(codes, [110, 332], name)
        yield server.waitFor(r"component muc\.localhost disconnected")
        self.assertNotIn("Traceback", muc.output)
        yield self.stop(server)

    @defer.inlineCallbacks
    def test_configurationProblems(self):
        """A bad muc.toml is reported one problem per line with its key path, and the process exits 3."""
        with open(self.mucConfig, "w") as f:
            f.write("[component]\nport = 0\n[muc]\nmax_rooms = -1\n")
        muc = self.spawnTwistd("jabberd-muc", "--config", self.mucConfig)
        status = yield muc.ended
        self.assertEqual(status, 3, muc.output)
        self.assertIn("jabberd-muc: 3 problems in", muc.output)
        for line in ("component.port: must be at least 1", "muc.max_rooms: must be at least 1",
                     "component.secret: required"):
            self.assertTrue(re.search(re.escape(line), muc.output), muc.output)
