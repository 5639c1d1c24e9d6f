"""
The database goes away under a running server, and comes back (issue 11).

Each scenario runs on SQLite, made unusable by another process holding its
write lock, and on a PostgreSQL cluster of the test's own, stopped with
``pg_ctl stop -m immediate`` and started again (tests/hostile/dbfault.py
says why these faults).  The transcript every test follows::

    alice, bob:  log in while the database is up (rosters now in memory)
    operator:    the database goes away
    new client:  <auth mechanism='SCRAM-SHA-1' or 'PLAIN'>  ->  <failure>
                 <temporary-auth-failure/><text>the database is unavailable;
                 try again later</text></failure> (the stream stays open)
    alice:       message to carol (offline)  ->  message error, type 'wait',
                 internal-server-error: the message was not stored
    alice:       vCard / private / privacy / PEP / roster / disco / last /
                 ping / password request, or a subscription  ->  error,
                 type 'wait', internal-server-error, the same text
    alice <-> bob: chat goes on (the hot path does no database I/O)
    operator:    the database is back
    everyone:    logins, writes and offline storage work again, jabberd was
                 never restarted; offline messages stored before are there,
                 a delivery whose delete failed is delivered again, a roster
                 change and logouts that met the outage are written; the log
                 holds one line per kind of failure and one saying it is
                 over, no traceback
"""

from __future__ import annotations

import base64
import os

import sqlalchemy as sa
from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from jabberd.store import Store, sqliteURL
from jabberd.store.database import StoreUnavailable
from jabberd.store.offline import count_offline_messages_txn
from jabberd.store.roster import load_roster_txn
from jabberd.store.userdata import last_activity_for_txn
from tests.harness import NS_SASL, NS_STANZA_ERRORS, TranscriptMixin, xml
from tests.hostile.dbfault import SQLiteLock, ThrowawayPostgreSQL, postgresqlBinaries
from tests.test_ctl import writeConfig
from tests.test_twistd import START_TIMEOUT, TwistdMixin

UNAVAILABLE = StoreUnavailable.clientText
STORE_LOG = "jabberd.store.database.Store"


def waitError(condition: str = "internal-server-error", text: str = UNAVAILABLE) -> str:
    """The <error/> a request gets while the database is down."""
    return (
        f"<error type='wait'><{condition} xmlns='{NS_STANZA_ERRORS}'/>"
        f"<text xml:lang='en' xmlns='{NS_STANZA_ERRORS}'>{text}</text></error>"
    )


class OutageMixin(TranscriptMixin):
    """
    The scenarios, whatever the backend.  A backend class provides
    C{prepareDatabase()} (the URL of a fresh, migrated database),
    C{breakDatabase()} and C{repairDatabase()}.
    """

    timeout = 90

    @defer.inlineCallbacks
    def setUp(self):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        url = yield self.prepareDatabase()
        yield self.startServer(database=url)
        self.server.store.probeInterval = 0.2
        for name in ("alice", "bob", "carol", "dave"):
            yield self.addUser(f"{name}@localhost")

    # -- helpers ---------------------------------------------------------------

    @defer.inlineCallbacks
    def online(self, address: str, resource: str = "res"):
        """
        Log in, send initial presence, read what presence brings, and wait
        until the store is idle (what login starts, such as looking for
        offline messages, must not be what notices the outage); return the
        client.
        """
        client, jid = yield self.login(address, resource=resource)
        client.send("<presence/>")
        yield client.waitFor(lambda: any(e.name == "presence" for e in client.elements))
        client.cursor = len(client.elements)
        yield self.until(lambda: self.server.store.pending == 0)
        return client

    @staticmethod
    def withId(client, id: str, timeout: float = 30) -> defer.Deferred:
        """The first stanza C{client} received with this id (now or later)."""
        return client.waitFor(lambda: next((e for e in client.elements if e.getAttribute("id") == id), None), timeout)

    def ask(self, client, stanza: str, id: str) -> defer.Deferred:
        """Send an iq and return its answer (matched by id)."""
        client.send(stanza)
        return self.withId(client, id)

    def waitPing(self, client, after: str | None = None):
        """The server's confirmation iq (a ping) after offline messages; another than C{after}."""

        def find():
            for e in client.elements:
                if e.name == "iq" and e.getAttribute("type") == "get" and e.getAttribute("id") != after:
                    return e
            return None

        return client.waitFor(find, 30)

    def offlineCount(self, user: str) -> defer.Deferred:
        return self.server.store.runInteraction("count", count_offline_messages_txn, "localhost", user)

    @defer.inlineCallbacks
    def untilStored(self, user: str, count: int):
        """Wait until C{user} holds exactly C{count} offline messages."""
        for _ in range(200):
            held = yield self.offlineCount(user)
            if held == count:
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"{user} holds {held} offline messages, not {count}")

    @defer.inlineCallbacks
    def until(self, predicate, timeout: float = 30):
        """Poll C{predicate} (reactor-friendly) until true."""
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail("condition never became true")

    def storeLines(self) -> tuple[list[str], list[str]]:
        """The store's error lines (outages) and info lines (recoveries) so far."""
        errors = [formatEvent(e) for e in self.events if e.get("log_namespace") == STORE_LOG and e["log_level"].name == "error"]
        infos = [formatEvent(e) for e in self.events if e.get("log_namespace") == STORE_LOG and "available again" in e.get("log_format", "")]
        return errors, infos

    def assertCleanLog(self, outages: int = 1) -> None:
        """No traceback was logged; each outage was reported once per reason and its end once."""
        tracebacks = [e for e in self.events if "log_failure" in e]
        self.assertEqual(tracebacks, [], [str(e["log_failure"]) for e in tracebacks])
        errors, infos = self.storeLines()
        self.assertTrue(errors)
        self.assertEqual(len(errors), len(set(errors)), errors)
        for line in errors:
            self.assertRegex(line, r"^database \S+ unavailable: .+; requests that need the database fail until it is back$")
            self.assertNotIn("\n", line)
        self.assertEqual(len(infos), outages, infos)

    # -- the scenarios ---------------------------------------------------------

    @defer.inlineCallbacks
    def test_loginWhileDown(self):
        """SASL (SCRAM and PLAIN) answers temporary-auth-failure while the database is down, and the same stream logs in once it is back."""
        client = yield self.connect()
        yield self.openStream(client)
        yield self.starttls(client)
        yield self.breakDatabase()
        scram = base64.b64encode(b"n,,n=dave,r=fyko+d2lbbFgONRv9qkxdawL").decode()
        token = base64.b64encode(b"\0dave\0secret").decode()
        for mechanism, data in (("SCRAM-SHA-1", scram), ("PLAIN", token)):
            client.send(f"<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{data}</auth>")
            answer = yield client.next(30)
            self.assertEqual(
                xml(answer),
                f"<failure xmlns='{NS_SASL}'><temporary-auth-failure/><text>{UNAVAILABLE}</text></failure>",
                mechanism,
            )
        yield self.repairDatabase()
        client.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        answer = yield client.next(30)
        self.assertEqual(xml(answer), f"<success xmlns='{NS_SASL}'/>")
        client.restart()
        yield self.openStream(client)
        jid = yield self.bindResource(client, "back")
        self.assertEqual(jid, "dave@localhost/back")
        self.assertCleanLog()

    @defer.inlineCallbacks
    def test_onlineSessionsKeepChatting(self):
        """Sessions that were online keep exchanging messages and presence while the database is down."""
        alice = yield self.online("alice@localhost")
        bob = yield self.online("bob@localhost")
        yield self.breakDatabase()
        alice.send("<message to='bob@localhost' id='c1' type='chat'><body>still there?</body></message>")
        got = yield bob.next(10)
        self.assertEqual(
            xml(got),
            "<message from='alice@localhost/res' id='c1' to='bob@localhost' type='chat'><body>still there?</body></message>",
        )
        bob.send("<message to='alice@localhost/res' id='c2' type='chat'><body>yes</body></message>")
        got = yield alice.next(10)
        self.assertEqual(
            xml(got), "<message from='bob@localhost/res' id='c2' to='alice@localhost/res' type='chat'><body>yes</body></message>"
        )
        yield self.repairDatabase()

    @defer.inlineCallbacks
    def test_offlineMessageBounced(self):
        """A message to an offline account that cannot be stored is bounced to its sender, never acknowledged, and not stored."""
        alice = yield self.online("alice@localhost")
        yield self.breakDatabase()
        alice.send("<message to='carol@localhost' id='lost' type='chat'><body>for later</body></message>")
        bounce = yield alice.next(30)
        self.assertEqual(
            xml(bounce),
            "<message from='carol@localhost' id='lost' to='alice@localhost/res' type='error'><body>for later</body>"
            + waitError(text="offline storage is unavailable: the message was not stored")
            + "</message>",
        )
        yield self.repairDatabase()
        count = yield self.offlineCount("carol")
        self.assertEqual(count, 0)
        # Once it is back, offline storage works again without a restart.
        alice.send("<message to='carol@localhost' id='kept' type='chat'><body>second try</body></message>")
        yield self.untilStored("carol", 1)
        carol = yield self.login("carol@localhost")
        client = carol[0]
        client.send("<presence/>")
        message = yield client.waitElement("message")
        self.assertEqual(message.getAttribute("id"), "kept")
        self.assertCleanLog()

    @defer.inlineCallbacks
    def test_requestsAnswerWait(self):
        """vCard, private, privacy, PEP and roster reads and writes answer internal-server-error of type wait while down, and work again after."""
        alice = yield self.online("alice@localhost")
        yield self.breakDatabase()
        requests = [
            ("v1", "<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>"),
            ("v2", "<iq type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>"),
            ("p1", "<iq type='set' id='p1'><query xmlns='jabber:iq:private'><n xmlns='x:notes'>hi</n></query></iq>"),
            ("p2", "<iq type='get' id='p2'><query xmlns='jabber:iq:private'><n xmlns='x:notes'/></query></iq>"),
            (
                "pr",
                "<iq type='set' id='pr'><query xmlns='jabber:iq:privacy'><list name='l'>"
                "<item type='jid' value='eve@localhost' action='deny' order='1'/></list></query></iq>",
            ),
            (
                "pep",
                "<iq type='set' id='pep'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                "<publish node='urn:xmpp:tune'><item id='current'><tune xmlns='http://jabber.org/protocol/tune'/></item>"
                "</publish></pubsub></iq>",
            ),
            ("r1", "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>"),
            ("d1", "<iq type='get' id='d1' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
            ("l1", "<iq type='get' id='l1' to='bob@localhost'><query xmlns='jabber:iq:last'/></iq>"),
            ("pi", "<iq type='get' id='pi' to='bob@localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
            (
                "pw",
                "<iq type='set' id='pw'><query xmlns='jabber:iq:register'>"
                "<username>alice</username><password>new</password></query></iq>",
            ),
        ]
        for id, stanza in requests:
            reply = yield self.ask(alice, stanza, id)
            self.assertEqual(reply.getAttribute("type"), "error", (id, xml(reply)))
            error = [e for e in reply.elements() if e.name == "error"][0]
            self.assertEqual(xml(error), waitError(), id)
        yield self.repairDatabase()
        reply = yield self.ask(alice, "<iq type='set' id='v3'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>", "v3")
        self.assertEqual(reply.getAttribute("type"), "result", xml(reply))
        reply = yield self.ask(alice, "<iq type='get' id='v4'><vCard xmlns='vcard-temp'/></iq>", "v4")
        self.assertEqual(xml(next(reply.elements())), "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        reply = yield self.ask(alice, dict(requests)["r1"].replace("'r1'", "'r2'"), "r2")
        self.assertEqual(reply.getAttribute("type"), "result", xml(reply))
        self.assertCleanLog()

    @defer.inlineCallbacks
    def test_subscriptionWhileDown(self):
        """A subscription request while the database is down is bounced with a wait error (the roster would not be stored), and works once it is back."""
        alice = yield self.online("alice@localhost")
        bob = yield self.online("bob@localhost")
        yield self.breakDatabase()
        # The outage is noticed by the first request that needs the database.
        yield self.ask(alice, "<iq type='get' id='v' ><vCard xmlns='vcard-temp'/></iq>", "v")
        alice.send("<presence to='bob@localhost' type='subscribe' id='s1'/>")
        bounce = yield self.withId(alice, "s1")
        self.assertEqual(
            xml(bounce), "<presence from='bob@localhost' id='s1' to='alice@localhost/res' type='error'>" + waitError() + "</presence>"
        )
        yield self.repairDatabase()
        yield self.until(lambda: self.server.store.available)
        alice.send("<presence to='bob@localhost' type='subscribe' id='s2'/>")
        request = yield self.withId(bob, "s2")
        self.assertEqual(xml(request), "<presence from='alice@localhost' id='s2' to='bob@localhost' type='subscribe'/>")
        self.assertEqual([e for e in bob.elements if e.getAttribute("id") == "s1"], [])
        self.assertCleanLog()

    @defer.inlineCallbacks
    def test_rosterChangeRacingTheOutage(self):
        """A roster change acknowledged just as the database went away (not yet noticed) is written once it is back."""
        alice = yield self.online("alice@localhost")
        yield self.breakDatabase()
        reply = yield self.ask(alice, "<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='D'/></query></iq>", "r")
        self.assertEqual(reply.getAttribute("type"), "result")  # written behind (jabberd/modules/roster.py)
        yield self.until(lambda: not self.server.store.available)
        yield self.repairDatabase()
        yield self.until(lambda: self.server.store.available)
        yield self.server.modules.modules["roster"].whenIdle()
        state = yield self.server.store.runInteraction("load", load_roster_txn, "localhost", "alice")
        self.assertEqual(state.items["dave@localhost"].name, "D")
        self.assertCleanLog()

    @defer.inlineCallbacks
    def test_logoutRecordedAfterOutage(self):
        """A logout during the outage is recorded for last activity (XEP-0012) once the database is back."""
        bob = yield self.online("bob@localhost")
        yield self.breakDatabase()
        yield bob.disconnect()
        yield self.until(lambda: not self.server.store.available)
        yield self.repairDatabase()
        yield self.until(lambda: self.server.store.available)
        for _ in range(100):
            _, logout = yield self.server.store.runInteraction("last", last_activity_for_txn, "localhost", "bob", None)
            if logout is not None:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertIsNotNone(logout)
        self.assertCleanLog()

    @defer.inlineCallbacks
    def test_acceptedBeforeOutageKept(self):
        """A message stored offline before the outage is delivered exactly once after it."""
        alice = yield self.online("alice@localhost")
        alice.send("<message to='carol@localhost' id='early' type='chat'><body>before</body></message>")
        yield self.untilStored("carol", 1)
        yield self.breakDatabase()
        yield self.repairDatabase()
        client, _ = yield self.login("carol@localhost")
        client.send("<presence/>")
        message = yield client.waitElement("message")
        self.assertEqual((message.getAttribute("id"), str(message.body)), ("early", "before"))
        ping = yield self.waitPing(client)
        client.send(f"<iq type='result' id='{ping.getAttribute('id')}' to='localhost'/>")
        yield self.untilStored("carol", 0)
        self.assertEqual([e.getAttribute("id") for e in client.elements if e.name == "message"], ["early"])

    @defer.inlineCallbacks
    def test_flushFailureKeepsMessage(self):
        """An offline message whose delete fails (database down after delivery) stays stored and is delivered again once it is back."""
        alice = yield self.online("alice@localhost")
        alice.send("<message to='carol@localhost' id='m' type='chat'><body>keep me</body></message>")
        yield self.untilStored("carol", 1)
        client, _ = yield self.login("carol@localhost")
        client.send("<presence/>")
        yield client.waitElement("message")
        ping = yield self.waitPing(client)
        yield self.breakDatabase()
        client.send(f"<iq type='result' id='{ping.getAttribute('id')}' to='localhost'/>")
        yield self.until(lambda: not self.server.store.available)
        yield self.repairDatabase()
        # Delivered again to the same session (at least once, never lost)...
        yield client.waitFor(lambda: len([e for e in client.elements if e.name == "message"]) == 2, 30)
        again = yield self.waitPing(client, after=ping.getAttribute("id"))
        client.send(f"<iq type='result' id='{again.getAttribute('id')}' to='localhost'/>")
        yield self.until(lambda: self.server.modules.modules["offline"].idle().called)
        # ... and deleted only once confirmed.
        count = yield self.offlineCount("carol")
        self.assertEqual(count, 0)
        self.assertCleanLog()


class SQLiteOutageTests(OutageMixin, unittest.TestCase):
    """SQLite, its write lock held by another process."""

    @defer.inlineCallbacks
    def prepareDatabase(self):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.path = os.path.join(folder, "jabberd.sqlite")
        self.lock = SQLiteLock(self.path)
        self.addCleanup(self.lock.release)
        # A short busy timeout (the URL's ?timeout=) keeps the test quick.
        yield None
        return sqliteURL(self.path) + "?timeout=0.5"

    def breakDatabase(self):
        return self.lock.hold()

    def repairDatabase(self):
        return self.lock.release()


class PostgreSQLOutageTests(OutageMixin, unittest.TestCase):
    """A throwaway PostgreSQL cluster, stopped immediately and started again."""

    @defer.inlineCallbacks
    def prepareDatabase(self):
        bindir = postgresqlBinaries()
        if bindir is None:
            raise unittest.SkipTest("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
        self.cluster = ThrowawayPostgreSQL(bindir)
        self.addCleanup(self.cluster.destroy)
        self.cluster.create()
        store = Store(self.cluster.url(), reactor=reactor)
        yield defer.maybeDeferred(store.upgrade)
        store.engine.dispose()
        return self.cluster.url()

    def breakDatabase(self):
        return self.cluster.stop()

    def repairDatabase(self):
        return self.cluster.start()


class StoreOutageTests(unittest.TestCase):
    """The store's own handling of an outage, on a real SQLite file locked by another process."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        path = os.path.join(os.path.abspath(self.mktemp()), "store.sqlite")
        self.store = Store(sqliteURL(path) + "?timeout=0.3", reactor=reactor)
        self.addCleanup(self.store.close)
        yield defer.maybeDeferred(self.store.upgrade)
        self.store.start()
        self.store.probeInterval = 0.1
        self.lock = SQLiteLock(path)
        self.addCleanup(self.lock.release)

    def storeEvents(self) -> list[dict]:
        return [e for e in self.events if e.get("log_namespace") == STORE_LOG]

    def test_busyTimeoutFromURL(self):
        """The URL's ?timeout= sets SQLite's busy timeout (in seconds)."""
        d = self.store.runInteraction("pragma", lambda conn: conn.exec_driver_sql("PRAGMA busy_timeout").scalar())
        return d.addCallback(self.assertEqual, 300)

    @defer.inlineCallbacks
    def test_queuedInteractionsFailFast(self):
        """Interactions queued behind one that found the database locked fail at once with the same one-line error, instead of each waiting the busy timeout."""
        yield self.lock.hold()
        started = reactor.seconds()
        results = yield defer.DeferredList(
            [self.store.runInteraction(f"q{i}", lambda conn: conn.exec_driver_sql("SELECT 1").scalar()) for i in range(10)],
            consumeErrors=True,
        )
        elapsed = reactor.seconds() - started
        errors = {str(f.value) for ok, f in results if not ok and f.check(StoreUnavailable)}
        self.assertEqual(len([ok for ok, _ in results if not ok]), 10)
        self.assertEqual(len(errors), 1, errors)
        self.assertRegex(errors.pop(), r"^database sqlite:///\S+ unavailable: database is locked$")
        # One busy timeout (0.3 s), not ten (3 s).
        self.assertLess(elapsed, 2.0)
        self.assertFalse(self.store.available)

    @defer.inlineCallbacks
    def test_probeNoticesRecovery(self):
        """While down the store probes the database; once it answers, whenAvailable fires and one line says so, with no request from anyone."""
        yield self.lock.hold()
        yield self.assertFailure(self.store.runInteraction("w", lambda conn: conn.exec_driver_sql("SELECT 1")), StoreUnavailable)
        back = self.store.whenAvailable()
        self.assertFalse(back.called)
        yield task.deferLater(reactor, 0.5, lambda: None)  # several failed probes
        self.assertFalse(back.called)
        yield self.lock.release()
        yield back.addTimeout(10, reactor)
        self.assertTrue(self.store.available)
        lines = [e["log_level"].name + " " + formatEvent(e) for e in self.storeEvents()]
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"^error database \S+ unavailable: database is locked; requests that need the database fail until it is back$")
        self.assertRegex(lines[1], r"^info database \S+ is available again \(failed requests while it was down: \d+\)$")

    @defer.inlineCallbacks
    def test_queryErrorsAreNotOutages(self):
        """An error in the query itself (a constraint) is passed on as it is and does not mark the database down."""
        error = yield self.assertFailure(
            self.store.runInteraction("bad", lambda conn: conn.exec_driver_sql("INSERT INTO accounts (id) VALUES (NULL)")),
            sa.exc.IntegrityError,
        )
        self.assertIsNotNone(error)
        self.assertTrue(self.store.available)
        self.assertEqual(self.storeEvents(), [])


class StartWithDatabaseDownTests(TwistdMixin, unittest.TestCase):
    """twistd jabberd with a database it cannot reach exits 1 with a one-line reason."""

    @defer.inlineCallbacks
    def test_postgresqlRefused(self):
        """A PostgreSQL server that refuses connections: the last line names the database and the driver's reason."""
        self.setUpFolder()
        url = "postgresql://postgres@127.0.0.1:1/jabberd"
        config = writeConfig(os.path.join(self.base, "down.toml"), self.dataDir, database=url)
        server = self.spawnTwistd("jabberd", "--config", config)
        status = yield server.ended.addTimeout(START_TIMEOUT, reactor)
        self.assertEqual(status, 1, server.output)
        self.assertRegex(
            server.output,
            r"jabberd could not start: database postgresql\+psycopg://postgres@127\.0\.0\.1:1/jabberd unavailable: "
            r"connection failed: connection to server at \"127\.0\.0\.1\", port 1 failed: Connection refused\n",
        )
        self.assertNotIn("Traceback", server.output)

    @defer.inlineCallbacks
    def test_sqliteLocked(self):
        """An SQLite file another process keeps locked: the last line says the database is locked."""
        self.setUpFolder()
        path = os.path.join(self.base, "held.sqlite")
        sa.create_engine(sqliteURL(path)).dispose()
        lock = SQLiteLock(path)
        yield lock.hold()
        self.addCleanup(lock.release)
        config = writeConfig(os.path.join(self.base, "locked.toml"), self.dataDir, database=sqliteURL(path) + "?timeout=0.5")
        server = self.spawnTwistd("jabberd", "--config", config)
        status = yield server.ended.addTimeout(START_TIMEOUT, reactor)
        self.assertEqual(status, 1, server.output)
        self.assertRegex(server.output, r"jabberd could not start: database sqlite:///\S+held\.sqlite\S* unavailable: database is locked\n")
        self.assertNotIn("Traceback", server.output)
