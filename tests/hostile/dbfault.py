"""
Ways to take a real database away from a running server, and give it back.

- L{SQLiteLock}: another process holds SQLite's write lock (C{BEGIN
  EXCLUSIVE}), as an operator's C{sqlite3} shell left inside a transaction,
  a backup script or a stuck tool would.  The tests run as root, so a
  C{chmod} would not stop writes, and an open connection keeps writing to a
  file that was deleted or replaced; a lock is the fault a running server
  really meets, and every interaction then fails with "database is locked"
  after the busy timeout, reads too (the store begins every transaction
  with C{BEGIN IMMEDIATE}).
- L{ThrowawayPostgreSQL}: a PostgreSQL cluster of the test's own (initdb in
  a temporary folder, loopback only, unix sockets in that folder), stopped
  with C{pg_ctl stop -m immediate} (every connection cut, as a crash or a
  failover does) and started again.  The shared server on 5432 is never
  touched.  initdb refuses root, so as root the cluster belongs to the
  C{postgres} (else C{nobody}) user.

Every command runs as a child process the reactor watches: nothing blocks
the server under test, which shares the reactor.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import sys
import tempfile
from typing import Any

from twisted.internet import defer, protocol, reactor

__all__ = ["SQLiteLock", "ThrowawayPostgreSQL", "postgresqlBinaries", "freePort"]

LOCK_SCRIPT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


def freePort() -> int:
    """A TCP port free on the loopback address right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Child(protocol.ProcessProtocol):
    """Collects a child's output; C{ended} fires with its exit status."""

    def __init__(self) -> None:
        self.output = ""
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self._waiting: list[tuple[str, defer.Deferred[None]]] = []

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        for item in list(self._waiting):
            if item[0] in self.output:
                self._waiting.remove(item)
                item[1].callback(None)

    errReceived = outReceived

    def waitFor(self, text: str, timeout: float = 30) -> defer.Deferred[None]:
        if text in self.output:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append((text, d))
        return d.addTimeout(timeout, reactor)

    def processEnded(self, reason: Any) -> None:
        for _, d in self._waiting:
            if not d.called:
                d.errback(AssertionError(f"child ended before printing it:\n{self.output}"))
        self._waiting = []
        self.ended.callback(getattr(reason.value, "exitCode", None))


def _spawn(argv: list[str], uid: int | None = None, gid: int | None = None, path: str | None = None) -> _Child:
    child = _Child()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    child.transport = reactor.spawnProcess(child, argv[0], argv, env=env, uid=uid, gid=gid, path=path)  # type: ignore[attr-defined]
    return child


@defer.inlineCallbacks
def _run(argv: list[str], uid: int | None = None, gid: int | None = None, timeout: float = 60):
    """Run a command to its end; fail with its output unless it exits 0."""
    child = _spawn(argv, uid, gid, path="/")
    status = yield child.ended.addTimeout(timeout, reactor)
    if status != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {status}:\n{child.output}")
    return child.output


class SQLiteLock:
    """Another process holding the write lock of an SQLite file until L{release}."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._child: _Child | None = None

    @defer.inlineCallbacks
    def hold(self):
        """Fires once the other process holds the lock."""
        self._child = _spawn([sys.executable, "-c", LOCK_SCRIPT, self.path])
        yield self._child.waitFor("locked")

    @defer.inlineCallbacks
    def release(self):
        """Commit and end the other process; fires once the lock is gone."""
        child, self._child = self._child, None
        if child is None or child.ended.called:
            return
        child.transport.write(b"\n")  # type: ignore[attr-defined]
        child.transport.closeStdin()  # type: ignore[attr-defined]
        yield child.ended.addTimeout(30, reactor)


def postgresqlBinaries() -> str | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
    )
    for bindir in reversed(found):
        if os.access(os.path.join(bindir, "initdb"), os.X_OK) and os.access(os.path.join(bindir, "pg_ctl"), os.X_OK):
            return bindir
    return None


class ThrowawayPostgreSQL:
    """
    A PostgreSQL cluster of our own on 127.0.0.1:C{port}.  L{create} is
    synchronous (class setup, before any server runs); L{stop} and L{start}
    return Deferreds.
    """

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.port = freePort()
        self.base = tempfile.mkdtemp(prefix="jabberd-dbtest-pg-")
        self.data = os.path.join(self.base, "data")
        self.uid: int | None = None
        self.gid: int | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    entry = pwd.getpwnam(name)
                except KeyError:
                    continue
                self.uid, self.gid = entry.pw_uid, entry.pw_gid
                break
            else:
                raise RuntimeError("running as root and there is no postgres or nobody user for initdb")
            os.chown(self.base, self.uid, self.gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?connect_timeout=3"

    def _command(self, *args: str) -> list[str]:
        return [os.path.join(self.bindir, args[0]), *args[1:]]

    def create(self) -> None:
        """initdb and start (blocking: only before the reactor serves anything)."""
        import subprocess

        def demote() -> None:
            if self.gid is not None and self.uid is not None:
                os.setgid(self.gid)
                os.setuid(self.uid)

        subprocess.run(
            self._command("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"),
            check=True, capture_output=True, preexec_fn=demote, cwd="/", timeout=120,
        )
        subprocess.run(self._pgctl("start"), check=True, capture_output=True, preexec_fn=demote, cwd="/", timeout=120)

    def _pgctl(self, action: str, *extra: str) -> list[str]:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        return self._command(
            "pg_ctl", "-D", self.data, "-l", os.path.join(self.base, "log"), "-w", "-t", "60", "-o", options, *extra, action
        )

    def stop(self) -> defer.Deferred:
        """Stop at once, cutting every connection (a crash, as far as clients can tell)."""
        return _run(self._pgctl("stop", "-m", "immediate"), self.uid, self.gid)

    def start(self) -> defer.Deferred:
        """Start again (crash recovery included); fires once it accepts connections."""
        return _run(self._pgctl("start"), self.uid, self.gid)

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def destroy(self) -> None:
        """Stop if running and remove every file (blocking: class teardown)."""
        import subprocess

        if self.running():
            subprocess.run(self._pgctl("stop", "-m", "immediate"), capture_output=True, timeout=60,
                           preexec_fn=(lambda: (os.setgid(self.gid), os.setuid(self.uid))) if self.uid is not None else None)  # type: ignore[arg-type]
        shutil.rmtree(self.base, ignore_errors=True)
