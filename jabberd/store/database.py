"""
The store: one SQLAlchemy engine, one thread pool, and runInteraction.

Why a thread pool: database drivers block, and nothing may block the reactor.
Every database access is a plain synchronous function ``fn(conn, *args,
**kw)`` (by convention named ``*_txn``) that L{Store.runInteraction} runs in
one transaction on a thread of the store's own pool, returning a Deferred
(Synapse's DatabasePool is the model).  Handlers never touch the engine.

Why one thread for SQLite: SQLite allows one writer at a time; a single
thread serialises all work in this process so it never fights itself for the
write lock, and WAL mode lets other processes (a MUC component sharing the
file) read while we write.  PostgreSQL gets a small pool (default 4).

A database that cannot be reached fails fast with L{StoreUnavailable}: a
one-line message naming the database (password hidden) and the driver's
reason, with the original error kept as C{__cause__} and C{orig}.

When the database goes away while the server runs (docs/operations.md, "When
the database is down"):

- every interaction that cannot reach it fails with L{StoreUnavailable}: a
  lost connection, a refused connect, and every DB-API C{OperationalError}
  (PEP 249: "errors related to the database's operation", such as SQLite's
  "database is locked", a read-only or full disk, PostgreSQL shutting
  down).  Callers answer their clients with a temporary error and log
  nothing more: the store logs the outage itself, one line per distinct
  reason, and one line when it is over;
- interactions queued behind one that found the database down fail at once
  with the same error instead of each waiting its own timeout, so a locked
  SQLite file (one thread, a 10-second busy timeout) cannot build a queue
  of minutes;
- while it is down, a probe (C{SELECT 1}) runs every L{PROBE_INTERVAL}
  seconds, so the recovery is noticed and logged even when no client asks,
  and L{Store.whenAvailable} fires for work that waits to be retried;
- connections recover by themselves: PostgreSQL's pool tests each
  connection before use (C{pool_pre_ping}) and SQLAlchemy invalidates the
  pool on a disconnect error, so no restart of jabberd is needed.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

__all__ = ["Store", "StoreUnavailable", "logFailure", "sqliteURL"]

T = TypeVar("T")

#: Seconds SQLite waits for another process's lock, and PostgreSQL for a
#: connection, before giving up: long enough for a busy moment, short enough
#: that a dead database is reported instead of hanging.  Both can be set in
#: the database URL: C{?timeout=} (SQLite), C{?connect_timeout=} (PostgreSQL).
SQLITE_BUSY_TIMEOUT = 10
PG_CONNECT_TIMEOUT = 10
PG_DEFAULT_POOL_SIZE = 4

#: Seconds between two probes of a database that is down.
PROBE_INTERVAL = 5.0

#: Distinct reasons logged per outage; more are counted, not logged.
MAX_REASONS_LOGGED = 10


class StoreUnavailable(Exception):
    """
    The database cannot be reached (down, refused, unopenable file).

    C{str()} is one line fit for a log or for C{jabberdctl}; C{orig} is the
    SQLAlchemy error it wraps (None when the interaction failed fast, see
    the module docstring).
    """

    #: What a client is told (in an error's C{<text/>}) when its request
    #: needed the database.
    clientText = "the database is unavailable; try again later"

    def __init__(self, message: str, orig: BaseException | None = None):
        super().__init__(message)
        self.orig = orig


def logFailure(log: Logger, failure: Failure, message: str, **kw: Any) -> bool:
    """
    Log a failed store interaction with its traceback (a bug), unless the
    database was unavailable: the store logs that itself, once per outage
    and reason, so callers do not flood the log.  True when it was.
    """
    if failure.check(defer.FirstError):  # from gatherResults
        failure = failure.value.subFailure
    if failure.check(StoreUnavailable):
        return True
    log.failure(message, failure, **kw)
    return False


def sqliteURL(path: str) -> str:
    """The SQLAlchemy URL of the SQLite database file at C{path} (made absolute)."""
    return "sqlite:///" + os.path.abspath(path)


def _normaliseURL(url: str) -> sa.URL:
    """
    Parse C{url}, choosing psycopg 3 for plain PostgreSQL URLs.

    Why: SQLAlchemy's default PostgreSQL driver is psycopg2, which we do not
    ship; operators should be able to write C{postgresql://...}.
    """
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _firstLine(error: BaseException) -> str:
    """The first non-empty line of C{error}'s message (drivers write paragraphs)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


class Store:
    """
    The database: an engine plus the thread pool that runs every query.

    Lifecycle: construct, L{upgrade} (synchronous, at startup or from
    C{jabberdctl}), L{start}, then L{runInteraction} as often as needed, and
    finally L{close}.
    """

    log = Logger()

    def __init__(self, url: str, reactor: Any = None, poolSize: int | None = None):
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self._reactor = reactor
        parsed = _normaliseURL(url)
        if parsed.get_backend_name() == "sqlite":
            poolSize = 1
        elif poolSize is None:
            poolSize = PG_DEFAULT_POOL_SIZE
        self.url: str = parsed.render_as_string(hide_password=False)
        self.engine: sa.Engine = self._createEngine(parsed, poolSize)
        self._threadpool = ThreadPool(minthreads=0, maxthreads=poolSize, name="jabberd-store")
        self._started = False
        self._closed = False
        self._running = 0
        self._whenIdle: list[defer.Deferred[None]] = []
        self._shutdownTrigger: Any = None
        # Outage bookkeeping.  _failSeq/_failMessage are written by worker
        # threads (under _failLock) the moment an interaction finds the
        # database down; the rest lives in the reactor thread.
        self._failLock = threading.Lock()
        self._failSeq = 0
        self._failMessage = ""
        self._outage: set[str] | None = None  # reasons logged, while down
        self._outageFailures = 0
        self._outageSeq = 0
        self._probe: Any = None
        #: Seconds between probes while down (see L{PROBE_INTERVAL}); tests shorten it.
        self.probeInterval = PROBE_INTERVAL
        self._whenUp: list[defer.Deferred[None]] = []

    @property
    def pending(self) -> int:
        """Interactions queued or running now."""
        return self._running

    @property
    def available(self) -> bool:
        """False from the first interaction that found the database down until one succeeds."""
        return self._outage is None

    def whenAvailable(self) -> defer.Deferred[None]:
        """Fires at once if L{available}, else when the database is back (the probe or any interaction succeeded)."""
        if self._outage is None:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._whenUp.append(d)
        return d

    @property
    def dialect_name(self) -> str:
        """C{"sqlite"} or C{"postgresql"}: for the rare query that must differ."""
        return self.engine.dialect.name

    def _describe(self) -> str:
        """The URL for messages, never with the password."""
        return self.engine.url.render_as_string(hide_password=True)

    def _createEngine(self, url: sa.URL, poolSize: int) -> sa.Engine:
        """Build the engine with the per-backend settings DESIGN.md asks for."""
        if url.get_backend_name() == "sqlite":
            return self._createSQLiteEngine(url)
        connectArgs: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connectArgs["connect_timeout"] = PG_CONNECT_TIMEOUT
        return sa.create_engine(
            url,
            connect_args=connectArgs,
            # One connection per worker thread plus room for upgrade() and
            # the odd synchronous caller, so workers never wait on the pool.
            pool_size=poolSize,
            max_overflow=2,
            pool_timeout=PG_CONNECT_TIMEOUT,
            # A restarted server leaves dead pooled connections: test each
            # one before use instead of failing the next interaction.
            pool_pre_ping=True,
        )

    def _createSQLiteEngine(self, url: sa.URL) -> sa.Engine:
        """SQLite with WAL, foreign keys, a busy timeout and real transactions."""
        database = url.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in str(url)
        kw: dict[str, Any] = {}
        if memory:
            # Every new connection to :memory: is a new, empty database: keep
            # exactly one, shared by upgrade() and the worker thread.
            kw = {
                "poolclass": sa.pool.StaticPool,
                "connect_args": {"check_same_thread": False},
            }
        else:
            os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
        engine = sa.create_engine(url, **kw)
        # sqlite3's own "timeout" URL parameter (the pysqlite dialect passes
        # it on) sets the busy timeout too, so the PRAGMA must not undo it.
        busyMs = int(float(url.query.get("timeout", SQLITE_BUSY_TIMEOUT)) * 1000)  # type: ignore[arg-type]

        @sa.event.listens_for(engine, "connect")
        def _onConnect(dbapiConnection: Any, record: Any) -> None:
            # Take transaction control from the sqlite3 module (its legacy
            # mode does not BEGIN before SELECT or DDL, breaking atomicity);
            # we emit BEGIN ourselves below.
            dbapiConnection.isolation_level = None
            cursor = dbapiConnection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={busyMs}")
                # WAL + NORMAL is durable across application crashes and
                # avoids an fsync per commit.
                cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _onBegin(conn: sa.Connection) -> None:
            # IMMEDIATE takes the write lock up front, so a transaction that
            # reads then writes waits (busy_timeout) for another process
            # instead of failing with "database is locked" halfway through.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _unavailable(self, error: sa.exc.DBAPIError) -> StoreUnavailable:
        orig = error.orig if error.orig is not None else error
        return StoreUnavailable(
            f"database {self._describe()} unavailable: {_firstLine(orig)}", error
        )

    def _connect(self) -> sa.Connection:
        """A connection from the pool, or L{StoreUnavailable}."""
        try:
            return self.engine.connect()
        except sa.exc.DBAPIError as e:
            raise self._unavailable(e) from e

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the thread pool; calling it again does nothing."""
        if self._started:
            return
        if self._closed:
            raise RuntimeError("store is closed")
        self._started = True
        self._threadpool.start()
        # If the owner forgets close(), still stop the (non-daemon) worker
        # threads when the reactor stops, or the process never exits.
        self._shutdownTrigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._closeAtShutdown
        )

    def _closeAtShutdown(self) -> defer.Deferred[None]:
        """L{close}, minus removing the trigger that is already firing."""
        self._shutdownTrigger = None
        return self.close()

    def close(self) -> defer.Deferred[None]:
        """
        Wait for running interactions, stop the pool and dispose the engine.

        Why wait first: L{ThreadPool.stop} joins its threads, which would
        block the reactor while a query is still running.
        """
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        if self._shutdownTrigger is not None:
            self._reactor.removeSystemEventTrigger(self._shutdownTrigger)
            self._shutdownTrigger = None
        if self._probe is not None and self._probe.active():
            self._probe.cancel()
        self._probe = None

        def stop(_: object) -> None:
            if self._started:
                self._threadpool.stop()
            self.engine.dispose()

        idle: defer.Deferred[None] = defer.Deferred()
        if self._running:
            self._whenIdle.append(idle)
        else:
            idle.callback(None)
        return idle.addCallback(stop)

    # -- queries ------------------------------------------------------------

    def runInteraction(
        self, desc: str, fn: Callable[..., T], *args: Any, **kw: Any
    ) -> defer.Deferred[T]:
        """
        Run C{fn(conn, *args, **kw)} in one transaction on a pool thread.

        The transaction commits when C{fn} returns and rolls back when it
        raises; the Deferred fires with C{fn}'s result or fails with its
        exception (L{StoreUnavailable} when the database cannot be reached).
        C{desc} names the interaction in errors and profiles.
        """
        if not self._started or self._closed:
            state = "closed" if self._closed else "not started"
            return defer.fail(RuntimeError(f"store is {state}: cannot run {desc}"))
        self._running += 1
        d = threads.deferToThreadPool(
            self._reactor, self._threadpool, self._inTransaction, self._failSeq, fn, args, kw
        )
        d.addCallbacks(self._succeeded, self._failed, callbackArgs=(self._failSeq,))
        return d.addBoth(self._finished)

    def _finished(self, result: Any) -> Any:
        """Count the interaction done; let a waiting L{close} proceed when idle."""
        self._running -= 1
        if not self._running:
            waiters, self._whenIdle = self._whenIdle, []
            for waiter in waiters:
                waiter.callback(None)
        return result

    def _inTransaction(self, queuedAt: int, fn: Callable[..., T], args: tuple[Any, ...], kw: dict[str, Any]) -> T:
        """The worker-thread half of L{runInteraction}."""
        if self._failSeq != queuedAt:
            # The database was found down while this waited in the queue:
            # fail now rather than wait out another timeout.
            raise StoreUnavailable(self._failMessage)
        try:
            with self._connect() as conn:
                try:
                    with conn.begin():
                        return fn(conn, *args, **kw)
                except sa.exc.DBAPIError as e:
                    # The server went away mid-transaction, or cannot do its
                    # work now (locked, read-only, full): report it like a
                    # failed connect, not as a query error.
                    if e.connection_invalidated or isinstance(e, sa.exc.OperationalError):
                        raise self._unavailable(e) from e
                    raise
        except StoreUnavailable as e:
            with self._failLock:
                self._failSeq += 1
                self._failMessage = str(e)
            raise

    # -- outages (reactor thread) -------------------------------------------

    def _succeeded(self, result: T, queuedAt: int) -> T:
        # Only an interaction queued after the outage began proves it over
        # (one already running on another thread may finish just after).
        if self._outage is not None and queuedAt >= self._outageSeq:
            self.log.info(
                "database {db} is available again (failed requests while it was down: {n})",
                db=self._describe(),
                n=self._outageFailures,
            )
            self._outage = None
            if self._probe is not None and self._probe.active():
                self._probe.cancel()
            self._probe = None
            waiters, self._whenUp = self._whenUp, []
            for waiter in waiters:
                waiter.callback(None)
        return result

    def _failed(self, failure: Failure) -> Failure:
        """Log an outage once per distinct reason (callers log nothing more), and probe until it ends."""
        if not failure.check(StoreUnavailable):
            return failure
        reason = str(failure.value)
        if self._outage is None:
            self._outage = set()
            self._outageFailures = 0
            self._outageSeq = self._failSeq
        self._outageFailures += 1
        if reason not in self._outage and len(self._outage) < MAX_REASONS_LOGGED:
            self._outage.add(reason)
            self.log.error("{reason}; requests that need the database fail until it is back", reason=reason)
        if self._probe is None and not self._closed:
            self._probe = self._reactor.callLater(self.probeInterval, self._runProbe)
        return failure

    def _runProbe(self) -> None:
        """Ask the database a trivial question; the answer ends the outage or schedules the next probe."""
        self._probe = None
        if self._outage is None or self._closed:
            return
        self.runInteraction("probe", lambda conn: conn.exec_driver_sql("SELECT 1").scalar()).addErrback(lambda f: None)

    # -- migrations (synchronous: startup and jabberdctl only) ---------------

    def _alembicConfig(self) -> Config:
        """Alembic configured in code: no alembic.ini to ship or to lose."""
        config = Config()
        config.set_main_option("script_location", "jabberd.store:migrations")
        config.set_main_option("path_separator", "os")
        return config

    def upgrade(self) -> None:
        """
        Migrate the database to the newest schema, in one transaction.

        Synchronous (it blocks): call it before the reactor runs, never from
        a handler.
        """
        config = self._alembicConfig()
        with self._connect() as conn, conn.begin():
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def currentRevision(self) -> str | None:
        """The schema revision the database is at; None for an empty database."""
        with self._connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def headRevision(self) -> str:
        """The newest schema revision this code knows."""
        head = ScriptDirectory.from_config(self._alembicConfig()).get_current_head()
        assert head is not None
        return head

    def needsUpgrade(self) -> bool:
        """True when L{upgrade} has work to do."""
        return self.currentRevision() != self.headRevision()
