"""Tests for jabberd.store.database: Store, migrations, threads, failures."""

from __future__ import annotations

import os
import threading
import time

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from twisted.internet import reactor
from twisted.internet.base import _ThreePhaseEvent
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.python.threadable import isInIOThread
from twisted.trial.unittest import TestCase

from jabberd.store import Store, StoreUnavailable, metadata, sqliteURL
from jabberd.store.accounts import account_exists_txn, create_account_txn
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

#: Nothing listens on port 1 of the loopback interface: connections are refused.
DOWN_URL = "postgresql://postgres@127.0.0.1:1/test"


class ShutdownReactor:
    """The real reactor, but with a shutdown event the test fires itself."""

    def __init__(self) -> None:
        self.shutdown = _ThreePhaseEvent()

    def addSystemEventTrigger(self, phase, eventType, f, *args, **kw):
        assert eventType == "shutdown"
        return self.shutdown.addTrigger(phase, f, *args, **kw)

    def removeSystemEventTrigger(self, handle):
        self.shutdown.removeTrigger(handle)

    def __getattr__(self, name):
        return getattr(reactor, name)


class Boom(Exception):
    """Raised inside an interaction to make it roll back."""


class StoreTestsMixin:
    """What every backend's Store must do."""

    def test_upgradeFromEmpty(self):
        """upgrade() takes an empty database to head and needsUpgrade() flips to False."""
        store = self.makeStore(upgrade=False)
        self.assertIsNone(store.currentRevision())
        self.assertTrue(store.needsUpgrade())
        store.upgrade()
        self.assertEqual(store.currentRevision(), store.headRevision())
        self.assertFalse(store.needsUpgrade())
        tables = set(sa.inspect(store.engine).get_table_names())
        self.assertTrue({"accounts", "account_credentials", "alembic_version"} <= tables)

    def test_upgradeTwice(self):
        """Upgrading a database that is already at head changes nothing."""
        store = self.makeStore()
        store.upgrade()
        self.assertFalse(store.needsUpgrade())

    def test_schemaMatchesMigrations(self):
        """The tables in schema.py are exactly what the migrations create."""
        store = self.makeStore()
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            self.assertEqual(compare_metadata(context, metadata), [])

    def test_runInteractionResult(self):
        """runInteraction passes arguments to fn and fires with what it returns."""
        store = self.makeStore()
        d = store.runInteraction("add", lambda conn, a, b=0: a + b, 2, b=3)
        return d.addCallback(self.assertEqual, 5)

    def test_runInteractionOffReactorThread(self):
        """fn runs on a pool thread, never the reactor's (main) thread."""
        store = self.makeStore()

        def where(conn: sa.Connection) -> tuple[threading.Thread, bool]:
            return threading.current_thread(), isInIOThread()

        def check(result: tuple[threading.Thread, bool]) -> None:
            thread, inIOThread = result
            self.assertIsNot(thread, threading.main_thread())
            self.assertFalse(inIOThread)

        return store.runInteraction("where", where).addCallback(check)

    @inlineCallbacks
    def test_runInteractionRollsBack(self):
        """An exception in fn rolls back its writes and fails the Deferred with it."""
        store = self.makeStore()

        def createThenFail(conn: sa.Connection) -> None:
            create_account_txn(conn, "example.org", "alice", [])
            raise Boom("no")

        yield self.assertFailure(store.runInteraction("fail", createThenFail), Boom)
        exists = yield store.runInteraction(
            "exists", account_exists_txn, "example.org", "alice"
        )
        self.assertFalse(exists)

    @inlineCallbacks
    def test_closeWaitsForInteractions(self):
        """close() lets a running interaction finish, then refuses new ones."""
        store = self.makeStore()

        def slow(conn: sa.Connection) -> str:
            time.sleep(0.2)
            return "done"

        running = store.runInteraction("slow", slow)
        yield store.close()
        self.assertEqual((yield running), "done")
        yield self.assertFailure(store.runInteraction("late", slow), RuntimeError)

    def test_closedAtReactorShutdown(self):
        """A started store that nobody closes is closed when the reactor shuts down."""
        fake = ShutdownReactor()
        store = Store(self.newDatabaseURL(), reactor=fake)
        self.addCleanup(store.close)
        store.start()
        fake.shutdown.fireEvent()
        self.assertTrue(store._threadpool.joined)
        return self.assertFailure(store.runInteraction("late", lambda conn: 1), RuntimeError)

    def test_notStarted(self):
        """runInteraction before start() fails at once instead of queueing forever."""
        store = Store(self.newDatabaseURL(), reactor=reactor)
        self.addCleanup(store.close)
        return self.assertFailure(store.runInteraction("early", lambda conn: 1), RuntimeError)


class SQLiteStoreTests(SQLiteStoreMixin, StoreTestsMixin, TestCase):
    """Store on a real SQLite file."""

    def test_pragmas(self):
        """Connections use WAL, enforce foreign keys and wait when the file is busy."""
        store = self.makeStore()

        def pragmas(conn: sa.Connection) -> tuple[str, int, int]:
            return (
                conn.exec_driver_sql("PRAGMA journal_mode").scalar_one(),
                conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one(),
                conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one(),
            )

        def check(result: tuple[str, int, int]) -> None:
            journal, foreignKeys, busyTimeout = result
            self.assertEqual(journal, "wal")
            self.assertEqual(foreignKeys, 1)
            self.assertGreater(busyTimeout, 0)

        return store.runInteraction("pragmas", pragmas).addCallback(check)

    def test_oneThread(self):
        """SQLite gets one worker thread, whatever pool size is asked for: one writer."""
        store = Store(self.newDatabaseURL(), reactor=reactor, poolSize=8)
        self.addCleanup(store.close)
        self.assertEqual(store._threadpool.max, 1)

    def test_createsParentDirectory(self):
        """The SQLite file's missing parent directories are created."""
        directory = os.path.join(self.mktemp(), "a", "b")
        store = Store(sqliteURL(os.path.join(directory, "db.sqlite")), reactor=reactor)
        self.addCleanup(store.close)
        self.assertTrue(os.path.isdir(directory))

    def test_sqliteURL(self):
        """sqliteURL makes a relative path absolute."""
        self.assertEqual(sqliteURL("x.sqlite"), "sqlite:///" + os.path.abspath("x.sqlite"))

    def test_dialectName(self):
        """dialect_name is "sqlite" for an SQLite store."""
        self.assertEqual(self.makeStore().dialect_name, "sqlite")


class PostgreSQLStoreTests(PostgreSQLStoreMixin, StoreTestsMixin, TestCase):
    """Store on the loopback PostgreSQL server."""

    def test_dialectName(self):
        """dialect_name is "postgresql" for a PostgreSQL store."""
        self.assertEqual(self.makeStore().dialect_name, "postgresql")

    def test_connectionLostMidTransaction(self):
        """A server that drops the connection mid-transaction gives StoreUnavailable."""
        store = self.makeStore()

        def killMe(conn: sa.Connection) -> None:
            conn.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

        return self.assertFailure(store.runInteraction("kill", killMe), StoreUnavailable)

    @inlineCallbacks
    def test_parallel(self):
        """PostgreSQL interactions run on several threads at once."""
        store = self.makeStore()
        barrier = threading.Barrier(2, timeout=10)

        def meet(conn: sa.Connection) -> bool:
            barrier.wait()
            return True

        results = yield gatherResults(
            [store.runInteraction("a", meet), store.runInteraction("b", meet)]
        )
        self.assertEqual(results, [True, True])


class UnavailableTests(TestCase):
    """A database that cannot be reached fails fast with StoreUnavailable."""

    timeout = 30

    def makeDownStore(self) -> Store:
        store = Store(DOWN_URL, reactor=reactor)
        self.addCleanup(store.close)
        return store

    @inlineCallbacks
    def test_runInteraction(self):
        """runInteraction on a down database fails quickly with a one-line StoreUnavailable."""
        store = self.makeDownStore()
        store.start()
        started = time.monotonic()
        error = yield self.assertFailure(store.runInteraction("x", lambda conn: 1), StoreUnavailable)
        self.assertLess(time.monotonic() - started, 5)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertIn("127.0.0.1:1", message)
        self.assertIsInstance(error.orig, sa.exc.OperationalError)

    def test_upgrade(self):
        """upgrade() on a down database raises StoreUnavailable instead of a driver traceback."""
        store = self.makeDownStore()
        error = self.assertRaises(StoreUnavailable, store.upgrade)
        self.assertNotIn("\n", str(error))

    def test_passwordHidden(self):
        """The error message never shows the database password."""
        store = Store("postgresql://postgres:sekrit@127.0.0.1:1/test", reactor=reactor)
        self.addCleanup(store.close)
        error = self.assertRaises(StoreUnavailable, store.needsUpgrade)
        self.assertNotIn("sekrit", str(error))


class URLTests(TestCase):
    """How URLs are read."""

    def test_postgresqlUsesPsycopg(self):
        """A plain postgresql:// URL is given the psycopg 3 driver."""
        store = Store("postgresql://u@127.0.0.1/db", reactor=reactor)
        self.addCleanup(store.close)
        self.assertEqual(store.engine.url.drivername, "postgresql+psycopg")
        self.assertEqual(store.dialect_name, "postgresql")
        self.assertTrue(store.url.startswith("postgresql+psycopg://"))
