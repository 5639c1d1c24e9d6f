"""
Offline messages end to end: slixmpp clients over loopback, server
restarts, and a server process killed with SIGKILL.

Transcripts:

- Alice logs in; Bob is offline.  Alice sends Bob a chat message; the
  server stores it.  The server is stopped and a new one started on the
  same data folder.  Bob logs in and sends initial presence: the message
  arrives, from Alice, with a XEP-0203 delay from 'localhost' stamped when
  the first server accepted it.  Nothing is left stored.
- Alice sends a burst of messages to offline Bob; the server process
  (`twistd -n jabberd`) is killed with SIGKILL halfway.  What the file
  holds is a prefix of the burst; a new server delivers exactly that, in
  order.
- Bob logs in to a server holding many stored messages; the process is
  killed halfway through the delivery.  The next server delivers the rest:
  nothing is lost and at most one unconfirmed batch comes twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from datetime import datetime, timezone

import sqlalchemy as sa
from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from jabberd import bus as B
from jabberd.modules.offline import BATCH, parseStored
from jabberd.passwords import credentialsFor
from jabberd.service import XMPPServer
from jabberd.store import Store, sqliteURL
from jabberd.store.accounts import create_account_txn
from jabberd.store.offline import OfflineMessages, offline_messages, store_offline_message_txn
from tests.fakes import ModuleTestMixin
from tests.harness import LOOPBACK, ServerMixin, connectSlixmpp, deferred, makeConfig, slixmppClient
from tests.modules.test_offline import AnsweringLink


@defer.inlineCallbacks
def waitUntil(check, timeout: float = 5.0, interval: float = 0.02):
    """Poll C{check()} (a Deferred of a bool) until it is true, or fail after C{timeout} seconds."""
    waited = 0.0
    while not (yield check()):
        if waited >= timeout:
            raise AssertionError("condition not reached in time")
        yield task.deferLater(reactor, interval, lambda: None)
        waited += interval


class OfflineSlixmppTests(ServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        yield self.addUser("alice@localhost", "wonderland")
        yield self.addUser("bob@localhost", "builder")

    @defer.inlineCallbacks
    def login(self, jid: str, password: str, plugins: tuple[str, ...] = ()):
        client = slixmppClient(jid, password, sslContext=self.clientSSLContext(), plugins=plugins)
        self.addCleanup(client.disconnect)
        yield connectSlixmpp(client, self.server.port("c2s"))
        return client

    def stored(self):
        return OfflineMessages(self.server.store).get("localhost", "bob")

    @defer.inlineCallbacks
    def restartServer(self):
        """Stop the server and start a new one on the same data folder and listeners' kind."""
        yield self.server.stopService()
        self.server = XMPPServer(makeConfig(self.dataDir), reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready

    @defer.inlineCallbacks
    def test_offlineMessageSurvivesRestart(self):
        """Alice's message to offline Bob is stored, survives a restart, and reaches Bob at login with its delay."""
        alice = yield self.login("alice@localhost/phone", "wonderland")
        alice.send_presence()
        message = alice.make_message(mto="bob@localhost", mbody="see you after the restart", mtype="chat")
        message["id"] = "offline-1"
        message.send()
        yield waitUntil(lambda: self.stored().addCallback(lambda rows: len(rows) == 1))
        stamp = (yield self.stored())[0].stamp.replace(microsecond=0)
        yield deferred(alice.disconnect())

        yield self.restartServer()

        bob = yield self.login("bob@localhost/laptop", "builder", plugins=("xep_0203",))
        got = asyncio.get_event_loop().create_future()
        bob.add_event_handler("message", lambda m: got.done() or got.set_result(m))
        bob.send_presence(ppriority=1)
        m = yield defer.Deferred.fromFuture(got).addTimeout(5, reactor)
        self.assertEqual(
            (str(m["from"]), str(m["to"]), m["type"], m["id"], m["body"]),
            ("alice@localhost/phone", "bob@localhost", "chat", "offline-1", "see you after the restart"),
        )
        self.assertEqual((str(m["delay"]["from"]), m["delay"]["stamp"], m["delay"]["text"]), ("localhost", stamp, "Offline Storage"))
        yield self.server.modules.modules["offline"].idle()
        self.assertEqual((yield self.stored()), [])

    @defer.inlineCallbacks
    def test_onlineRecipientGetsNoDelay(self):
        """With Bob online, Alice's message to his bare JID arrives at once, without a delay."""
        alice = yield self.login("alice@localhost/phone", "wonderland")
        bob = yield self.login("bob@localhost/laptop", "builder", plugins=("xep_0203",))
        got = asyncio.get_event_loop().create_future()
        bob.add_event_handler("message", lambda m: got.done() or got.set_result(m))
        bob.send_presence()
        yield waitUntil(lambda: defer.succeed(bool(self.server.sessions.available("bob@localhost"))))
        alice.send_message(mto="bob@localhost", mbody="live", mtype="chat")
        m = yield defer.Deferred.fromFuture(got).addTimeout(5, reactor)
        self.assertEqual((str(m["from"]), m["body"]), ("alice@localhost/phone", "live"))
        self.assertIsNone(m.xml.find("{urn:xmpp:delay}delay"))
        self.assertEqual((yield self.stored()), [])


# -- kill -9 ------------------------------------------------------------------------


class ServerProcess(protocol.ProcessProtocol):
    """`twistd -n jabberd` in a child process, to be killed with SIGKILL."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.ended.callback(None)

    def kill(self) -> defer.Deferred:
        """SIGKILL: no shutdown, no flush, nothing runs after this."""
        os.kill(self.transport.pid, signal.SIGKILL)
        return self.ended


def freePort() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class KillTests(ModuleTestMixin, unittest.TestCase):
    """
    A real server process is killed with SIGKILL during a burst of stores and
    during a delivery; a new server on the same data folder then delivers
    what was committed: nothing lost, nothing out of order, repeats bounded
    by one unconfirmed batch.
    """

    N = 600
    timeout = 120

    def setUp(self):
        self.dataDir = os.path.abspath(self.mktemp())
        os.makedirs(self.dataDir)
        self.port = freePort()
        self.config = os.path.join(self.dataDir, "jabberd.toml")
        with open(self.config, "w") as f:
            f.write(
                f'data_dir = "{self.dataDir}"\n'
                f'[c2s]\nlisten = ["tcp:{self.port}:interface={LOOPBACK}"]\nlisten_tls = []\n'
                f"[limits]\nmax_offline_messages = {self.N}\n"
            )
        self.dbURL = sqliteURL(os.path.join(self.dataDir, "jabberd.sqlite"))
        store = Store(self.dbURL)
        store.upgrade()
        with store.engine.begin() as conn:
            create_account_txn(conn, "localhost", "alice", credentialsFor("wonderland"))
            create_account_txn(conn, "localhost", "bob", credentialsFor("builder"))
        store.engine.dispose()
        self.reader = sa.create_engine(self.dbURL)
        self.addCleanup(self.reader.dispose)

    def storedIds(self) -> list[str]:
        """The ids of Bob's stored messages, read straight from the file (WAL lets us read beside the server)."""
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(offline_messages.c.stanza).order_by(offline_messages.c.id)).scalars().all()
        return [parseStored(xml)["id"] for xml in rows]

    @defer.inlineCallbacks
    def startProcess(self):
        process = ServerProcess()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        reactor.spawnProcess(process, twistd, [twistd, "-n", "--pidfile=", "jabberd", "--config", self.config], env=env, path=root)
        self.addCleanup(lambda: process.ended if process.ended.called else process.kill())
        waited = 0.0
        while True:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1):
                    break
            except OSError:
                if waited > 30 or process.ended.called:
                    self.fail("the server process did not start:\n" + process.output.decode(errors="replace"))
                yield task.deferLater(reactor, 0.1, lambda: None)
                waited += 0.1
        return process

    @defer.inlineCallbacks
    def client(self, jid: str, password: str):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dataDir, "certs", "localhost.pem"))
        client = slixmppClient(jid, password, sslContext=ctx)
        self.addCleanup(client.disconnect)
        yield connectSlixmpp(client, self.port)
        return client

    @defer.inlineCallbacks
    def loginAfterRestart(self):
        """A new server (this process) on the same data folder; Bob logs in and reads everything."""
        self.server = XMPPServer(
            makeConfig(self.dataDir, c2s={"listen": [], "listen_tls": []}, limits={"max_offline_messages": self.N}), reactor=reactor
        )
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready
        bob = self.bind("bob@localhost/after")
        bob.link = AnsweringLink(bob)
        bob.priority, bob.available = 0, True
        self.server.bus.notify(B.PRESENCE_AVAILABLE, bob)
        yield self.server.modules.modules["offline"].idle()
        got = bob.link.pop()
        for stanza in got:
            self.assertEqual(stanza.delay.getAttribute("from"), "localhost")
        self.assertEqual(self.storedIds(), [])
        return [e["id"] for e in got]

    @defer.inlineCallbacks
    def test_killDuringBurstOfStores(self):
        """After a SIGKILL during a burst, exactly the committed messages are delivered: a prefix of the burst, in order, once."""
        process = yield self.startProcess()
        alice = yield self.client("alice@localhost/burst", "wonderland")
        sent = [f"b{i:04d}" for i in range(self.N)]
        for id_ in sent:
            message = alice.make_message(mto="bob@localhost", mbody=id_, mtype="chat")
            message["id"] = id_
            message.send()
        while len(self.storedIds()) < 10:
            yield task.deferLater(reactor, 0.005, lambda: None)
        yield process.kill()
        committed = self.storedIds()
        self.assertEqual(committed, sent[: len(committed)])
        self.assertLess(len(committed), self.N, "the burst was over before the kill: nothing was tested")
        delivered = yield self.loginAfterRestart()
        self.assertEqual(delivered, committed)

    @defer.inlineCallbacks
    def test_killDuringDelivery(self):
        """After a SIGKILL halfway through a delivery, the next login gets the rest: nothing lost, repeats only of one unconfirmed batch."""
        stamp = datetime.now(timezone.utc)
        stored = [f"d{i:04d}" for i in range(self.N)]
        with self.reader.begin() as conn:
            for id_ in stored:
                xml = f"<message to='bob@localhost' from='alice@localhost/a' type='chat' id='{id_}'><body>{id_}</body></message>"
                store_offline_message_txn(conn, "localhost", "bob", stamp, xml, self.N)
        process = yield self.startProcess()
        bob = yield self.client("bob@localhost/before", "builder")
        first: list[str] = []

        def received(m):
            first.append(m["id"])
            if len(first) == 150:
                process.kill()

        bob.add_event_handler("message", received)
        bob.send_presence()
        yield process.ended
        self.assertEqual(first, stored[: len(first)])
        second = yield self.loginAfterRestart()
        resumeAt = self.N - len(second)
        self.assertEqual(second, stored[resumeAt:])
        self.assertLessEqual(resumeAt, len(first), "a message was lost")
        self.assertLessEqual(len(first) - resumeAt, BATCH, "more than one batch was repeated")
