"""
Tests for `twistd jabberd` (jabberd/tap.py and twisted/plugins/jabberd_plugins.py),
run as an operator runs it: a real twistd process, accounts made with the
real `jabberdctl`, a real XMPP client (slixmpp) over real loopback sockets,
and a real SIGTERM.

Transcript of the main test (L{TwistdServerTests.test_loginChatAndShutdown})::

    operator:  jabberdctl adduser alice@localhost --password wonderland
    operator:  twistd -n --pidfile= jabberd --config jabberd.toml
    server:    ... listening for c2s on IPv4Address(..., port=N)
    operator:  echo builder | jabberdctl adduser bob@localhost   (server running)
    alice:     logs in over STARTTLS (bob over direct TLS), sends bob "hello bob"
    bob:       receives it from alice@localhost/a, answers "hi alice"
    operator:  kill -TERM <pid>
    alice,bob: <stream:error><system-shutdown/></stream:error>
    server:    exits with status 0

What was still queued when SIGTERM came is stored or bounced
(L{ShutdownQueueTests}):

- alice sends a message and an iq to unreachable.example, whose route leads
  to a peer that accepts TCP and never answers; SIGTERM: alice gets both
  back as remote-server-timeout errors, then <system-shutdown/>;
- alice sends 1,000 messages to offline bob and SIGTERM follows at once,
  while most stores are still queued: the process exits 0 only after all
  1,000 are committed, in order, and closes SQLite cleanly (no -wal file);
- bob logs in to 250 stored messages, confirms the first batch of 100 and
  not the second; SIGTERM: the server does not wait for him, and exactly
  the 150 unconfirmed messages stay stored.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import subprocess
import sys
from typing import Any

from twisted.internet import defer, error, protocol, reactor, task
from twisted.trial import unittest

from tests.harness import NS_STANZA_ERRORS, NS_STREAM_ERRORS, TranscriptMixin, condition, connectSlixmpp, rawConnect, slixmppClient, xml
from tests.test_ctl import (
    CTL_TIMEOUT,
    consoleScript,
    ctlEnvironment,
    listenerOptions,
    tomlString,
    writeConfig,
)

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60
STOP_TIMEOUT = 30


def twistdCommand(*args: str) -> list[str]:
    """The argv of `twistd ARGS`: the installed script, else twistd's own entry point."""
    script = consoleScript("twistd")
    if script is not None:
        return [script, *args]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *args]


class TwistdProcess(protocol.ProcessProtocol):
    """
    A twistd child whose log lines we wait for, and whose end we wait for.

    Its output is kept whole so that a failing test shows the server's log.
    """

    def __init__(self) -> None:
        self.output = ""
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self.status: int | None = None
        self.signal: int | None = None
        self._waiters: list[tuple[re.Pattern[str], defer.Deferred[re.Match[str]]]] = []

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        for item in list(self._waiters):
            pattern, d = item
            match = pattern.search(self.output)
            if match:
                self._waiters.remove(item)
                d.callback(match)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.status = getattr(reason.value, "exitCode", None)
        self.signal = getattr(reason.value, "signal", None)
        for _, d in self._waiters:
            d.errback(AssertionError(f"twistd ended (status {self.status}) before logging it:\n{self.output}"))
        self._waiters = []
        self.ended.callback(self.status)

    def waitFor(self, pattern: str, timeout: float = START_TIMEOUT) -> defer.Deferred[re.Match[str]]:
        """Fire with the first match of C{pattern} in the output so far or to come."""
        compiled = re.compile(pattern)
        match = compiled.search(self.output)
        if match:
            return defer.succeed(match)
        if self.ended.called:
            return defer.fail(AssertionError(f"twistd ended without logging {pattern!r}:\n{self.output}"))
        d: defer.Deferred[re.Match[str]] = defer.Deferred()
        self._waiters.append((compiled, d))
        return d.addTimeout(timeout, reactor)


class TwistdMixin:
    """Runs twistd children, killed at cleanup if a test left one running."""

    mktemp: Any
    addCleanup: Any

    def setUpFolder(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.dataDir = os.path.join(self.base, "data")
        os.makedirs(self.base)

    def spawnTwistd(self, *args: str, env: dict[str, str] | None = None) -> TwistdProcess:
        """Start `twistd -n --pidfile= ARGS` in the test's folder."""
        proto = TwistdProcess()
        argv = twistdCommand("-n", "--pidfile=", *args)
        transport = reactor.spawnProcess(
            proto, argv[0], argv, env=env or ctlEnvironment(self.dataDir), path=self.base
        )
        proto.transport = transport

        def kill() -> Any:
            if proto.ended.called:
                return None
            try:
                transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                return None
            return proto.ended

        self.addCleanup(kill)
        return proto

    @defer.inlineCallbacks
    def stop(self, proto: TwistdProcess):
        """SIGTERM the server and wait for it to exit; fire with its exit status."""
        proto.transport.signalProcess("TERM")
        status = yield proto.ended.addTimeout(STOP_TIMEOUT, reactor)
        return status

    def ctl(self, config: str | None, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        """Run jabberdctl (blocking: no server runs in this process)."""
        command = [sys.executable, "-m", "jabberd.ctl"] + (["--config", config] if config else [])
        result = subprocess.run(
            command + list(args), input=input, capture_output=True, text=True,
            cwd=self.base, env=ctlEnvironment(self.dataDir), timeout=CTL_TIMEOUT,
        )
        assert result.returncode == 0, f"jabberdctl {args}: {result.stderr}"
        return result

    @staticmethod
    def port(match: re.Match[str]) -> int:
        return int(match.group(1))

    def clientContext(self, host: str = "localhost") -> ssl.SSLContext:
        """A client TLS context trusting exactly the certificate the server generated."""
        return ssl.create_default_context(cafile=os.path.join(self.dataDir, "certs", f"{host}.pem"))


def listening(kind: str) -> str:
    """The pattern of the server's log line for a listener of C{kind}, capturing the port."""
    return rf"listening for {kind} on IPv4Address\(type='TCP', host='[^']*', port=(\d+)\)"


class TwistdServerTests(TwistdMixin, unittest.TestCase):
    """A configured server under twistd: real login, chat, clean shutdown."""

    def setUp(self) -> None:
        self.setUpFolder()
        # Every listener (c2s, s2s, http, components...) on a free loopback port.
        self.config = writeConfig(os.path.join(self.base, "jabberd.toml"), self.dataDir)

    def client(self, jid: str, password: str, **kw: Any) -> Any:
        c = slixmppClient(jid, password, sslContext=self.clientContext(), **kw)
        self.addCleanup(c.disconnect)
        return c

    @defer.inlineCallbacks
    def test_loginChatAndShutdown(self):
        """Accounts made with jabberdctl log in to twistd jabberd and chat; SIGTERM says system-shutdown and exits 0."""
        self.ctl(self.config, "adduser", "alice@localhost", "--password", "wonderland")
        server = self.spawnTwistd("jabberd", "--config", self.config)
        port = self.port((yield server.waitFor(listening("c2s"))))
        tlsPort = self.port((yield server.waitFor(listening("c2s_tls"))))
        yield server.waitFor(r"jabberd ready; modules: ")
        # jabberdctl works on the store of a running server (SQLite, WAL).
        self.ctl(self.config, "adduser", "bob@localhost", input="builder\n")

        alice = self.client("alice@localhost/a", "wonderland")
        bob = self.client("bob@localhost/b", "builder", directTLS=True)
        yield connectSlixmpp(alice, port)
        yield connectSlixmpp(bob, tlsPort)
        loop = asyncio.get_event_loop()
        bobGot, aliceGot = loop.create_future(), loop.create_future()
        bob.add_event_handler("message", lambda m: bobGot.done() or bobGot.set_result(m))
        alice.add_event_handler("message", lambda m: aliceGot.done() or aliceGot.set_result(m))
        alice.send_message(mto="bob@localhost/b", mbody="hello bob", mtype="chat")
        m = yield defer.Deferred.fromFuture(bobGot).addTimeout(10, reactor)
        self.assertEqual((str(m["from"]), m["body"]), ("alice@localhost/a", "hello bob"))
        bob.send_message(mto="alice@localhost/a", mbody="hi alice", mtype="chat")
        m = yield defer.Deferred.fromFuture(aliceGot).addTimeout(10, reactor)
        self.assertEqual((str(m["from"]), m["body"]), ("bob@localhost/b", "hi alice"))

        errors: dict[str, Any] = {"alice": loop.create_future(), "bob": loop.create_future()}
        for name, c in (("alice", alice), ("bob", bob)):
            future = errors[name]
            c.add_event_handler("stream_error", lambda e, f=future: f.done() or f.set_result(e["condition"]))
        status = yield self.stop(server)
        self.assertEqual((status, server.signal), (0, None), server.output)
        for name, future in errors.items():
            condition = yield defer.Deferred.fromFuture(future).addTimeout(10, reactor)
            self.assertEqual(condition, "system-shutdown", name)
        self.assertIn("Received SIGTERM", server.output)
        self.assertNotIn("Traceback", server.output)

    @defer.inlineCallbacks
    def test_portInUse(self):
        """A listener that cannot bind stops the process with status 1 and a one-line reason; log_level = "warn" hides the info lines."""
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = writeConfig(
            os.path.join(self.base, "busy.toml"), self.dataDir,
            listeners={"c2s_listen": [f"tcp:{port}:interface={LOOPBACK}"]},
            top='log_level = "warn"',
        )
        server = self.spawnTwistd("jabberd", "--config", config)
        status = yield server.ended.addTimeout(START_TIMEOUT, reactor)
        self.assertEqual(status, 1, server.output)
        self.assertRegex(
            server.output, rf"jabberd could not start: Couldn't listen on {LOOPBACK}:{port}: .*in use"
        )
        self.assertNotIn("jabberd data folder", server.output)


class ShutdownQueueTests(TwistdMixin, TranscriptMixin, unittest.TestCase):
    """SIGTERM with stanzas still queued: each is stored offline or bounced, never dropped."""

    N = 1000

    def setUp(self) -> None:
        self.setUpFolder()
        # A peer that accepts TCP (the kernel does, from the backlog) and never says a word.
        self.blackhole = socket.socket()
        self.addCleanup(self.blackhole.close)
        self.blackhole.bind((LOOPBACK, 0))
        self.blackhole.listen(8)
        route = f"{LOOPBACK}:{self.blackhole.getsockname()[1]}"
        self.config = writeConfig(
            os.path.join(self.base, "jabberd.toml"), self.dataDir,
            top=f's2s.routes = {{ "unreachable.example" = "{route}" }}\nlimits.max_offline_messages = {self.N}',
        )
        self.ctl(self.config, "adduser", "alice@localhost", "--password", "secret")
        self.ctl(self.config, "adduser", "bob@localhost", "--password", "secret")
        self.database = os.path.join(self.dataDir, "jabberd.sqlite")

    @defer.inlineCallbacks
    def startServer(self):  # type: ignore[override]
        """twistd jabberd on this test's configuration, once it is ready."""
        server = self.spawnTwistd("jabberd", "--config", self.config)
        self.c2sPort = self.port((yield server.waitFor(listening("c2s"))))
        yield server.waitFor(r"jabberd ready; modules: ")
        return server

    @defer.inlineCallbacks
    def connect(self, kind: str = "c2s", tlsOptions: Any = None):
        client = yield rawConnect(self.c2sPort, tlsOptions)
        self.addCleanup(client.disconnect)
        return client

    @defer.inlineCallbacks
    def routed(self, client: Any, tag: str):
        """Ping the server and wait for the answer: everything sent before has been routed."""
        client.send(f"<iq type='get' id='{tag}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        reply = yield client.waitFor(lambda: next((e for e in client.elements if e.getAttribute("id") == tag), None), timeout=20)
        self.assertEqual(reply["type"], "result", xml(reply))

    def storedIds(self) -> list[str]:
        """Bob's stored message ids in order, read beside the server (SQLite WAL) and closed at once."""
        import sqlalchemy as sa

        from jabberd.modules.offline import parseStored
        from jabberd.store import sqliteURL
        from jabberd.store.offline import offline_messages

        engine = sa.create_engine(sqliteURL(self.database))
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(offline_messages.c.stanza).order_by(offline_messages.c.id)).scalars().all()
        finally:
            engine.dispose()
        return [parseStored(row)["id"] for row in rows]

    def assertShutdownLast(self, client: Any) -> None:
        """The last thing the client got is <system-shutdown/>, and the connection is closed."""
        self.assertTrue(client.lost)
        error = client.elements[-1]
        self.assertEqual((error.name, condition(error, NS_STREAM_ERRORS)), ("error", "system-shutdown"), xml(error))

    @defer.inlineCallbacks
    def test_remoteQueueBouncedOnSigterm(self):
        """A message and an iq queued for an unreachable domain come back as remote-server-timeout errors before system-shutdown."""
        server = yield self.startServer()
        alice, aliceJID = yield self.login("alice@localhost")
        alice.send("<message to='bob@unreachable.example' id='q1' type='chat'><body>queued</body></message>")
        alice.send("<iq type='get' id='q2' to='unreachable.example'><ping xmlns='urn:xmpp:ping'/></iq>")
        yield self.routed(alice, "routed")
        self.assertEqual([e for e in alice.elements if e.getAttribute("type") == "error"], [])

        status = yield self.stop(server)
        self.assertEqual(status, 0, server.output)
        yield alice.waitClosed(10)
        self.assertShutdownLast(alice)
        bounced = [e for e in alice.elements if e.getAttribute("type") == "error"]
        self.assertEqual(
            [(e.name, e["id"], e["from"], e["to"], e.error["type"], condition(e, NS_STANZA_ERRORS)) for e in bounced],
            [
                ("message", "q1", "bob@unreachable.example", aliceJID, "wait", "remote-server-timeout"),
                ("iq", "q2", "unreachable.example", aliceJID, "wait", "remote-server-timeout"),
            ],
            [xml(e) for e in bounced],
        )
        self.assertEqual(str(bounced[0].body), "queued")  # the bounce carries the original
        self.assertNotIn("Traceback", server.output)

    @defer.inlineCallbacks
    def test_offlineStoresFinishedOnSigterm(self):
        """SIGTERM right after a burst to an offline account exits only once every message is stored, in order, with SQLite closed cleanly."""
        server = yield self.startServer()
        alice, _ = yield self.login("alice@localhost")
        sent = [f"m{i:04d}" for i in range(self.N)]
        alice.send("".join(f"<message to='bob@localhost' id='{i}' type='chat'><body>{i}</body></message>" for i in sent))
        yield self.routed(alice, "routed")
        stored = len(self.storedIds())
        status = yield self.stop(server)
        self.assertLess(stored, self.N, "every store was done before SIGTERM: nothing was tested")

        self.assertEqual(status, 0, server.output)
        yield alice.waitClosed(10)
        self.assertShutdownLast(alice)
        self.assertEqual([xml(e) for e in alice.elements if e.getAttribute("type") == "error"], [])
        # A cleanly closed SQLite database in WAL mode leaves no -wal file behind.
        self.assertFalse(os.path.exists(self.database + "-wal"), "the store was not closed cleanly")
        self.assertEqual(self.storedIds(), sent)
        self.assertNotIn("Traceback", server.output)

    @defer.inlineCallbacks
    def test_unconfirmedDeliveryKeptOnSigterm(self):
        """Bob confirms the first batch of his offline messages but not the second; after SIGTERM exactly the unconfirmed ones stay stored."""
        server = yield self.startServer()
        alice, _ = yield self.login("alice@localhost")
        sent = [f"d{i:03d}" for i in range(250)]
        alice.send("".join(f"<message to='bob@localhost' id='{i}' type='chat'><body>{i}</body></message>" for i in sent))
        yield self.routed(alice, "routed")
        while len(self.storedIds()) < len(sent):
            yield task.deferLater(reactor, 0.05, lambda: None)

        bob, _ = yield self.login("bob@localhost")
        bob.send("<presence/>")

        def confirmation(after: int) -> Any:
            pings = [e for e in bob.elements if e.name == "iq" and e.getAttribute("type") == "get"]
            return pings[after] if len(pings) > after else None

        first = yield bob.waitFor(lambda: confirmation(0), timeout=10)
        bob.send(f"<iq type='result' id='{first['id']}' to='{first['from']}'/>")
        yield bob.waitFor(lambda: confirmation(1), timeout=10)  # the second batch is out, unconfirmed
        received = [e["id"] for e in bob.elements if e.name == "message"]
        self.assertEqual(received, sent[:200])
        self.assertEqual(self.storedIds(), sent[100:])

        status = yield self.stop(server)
        self.assertEqual(status, 0, server.output)
        self.assertShutdownLast(bob)
        self.assertEqual(self.storedIds(), sent[100:])
        self.assertFalse(os.path.exists(self.database + "-wal"), "the store was not closed cleanly")


class TwistdConfigurationTests(TwistdMixin, unittest.TestCase):
    """What twistd jabberd prints before it starts anything."""

    def setUp(self) -> None:
        self.setUpFolder()

    def twistd(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            twistdCommand("-n", "--pidfile=", *args), capture_output=True, text=True,
            cwd=self.base, env=env or ctlEnvironment(self.dataDir), timeout=START_TIMEOUT,
        )

    def test_badConfig(self) -> None:
        """Every problem is printed with its key path, the exit status is 3, and there is no traceback."""
        path = os.path.join(self.base, "bad.toml")
        with open(path, "w") as f:
            f.write(f"data_dir = {tomlString(self.dataDir)}\n")
            f.write('hosts = ["localhost", "localhost"]\n[c2s]\nlisten = [5222]\n')
            f.write('[modules]\nenabled = ["no-such-module"]\n')
        result = self.twistd("jabberd", "--config", path)
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(lines[0], f"jabberd: 3 problems in {path}:")
        # The wording is jabberd.config's; what this command owns is one
        # indented line per problem, each starting with its key path.
        self.assertEqual(
            [line.split(": ")[0] for line in lines[1:]],
            ["  hosts", "  c2s.listen[0]", "  modules.enabled[0]"],
        )
        self.assertIn("unknown module 'no-such-module'", lines[3])
        self.assertFalse(os.path.exists(self.dataDir), "nothing may start on a bad configuration")

    def test_dataDirCannotBeCreated(self) -> None:
        """A data folder that cannot be created stops twistd before it starts: status 3, one line under data_dir."""
        blocker = os.path.join(self.base, "a-file")
        with open(blocker, "w"):
            pass
        path = os.path.join(self.base, "bad.toml")
        with open(path, "w") as f:
            f.write(f"data_dir = {tomlString(os.path.join(blocker, 'data'))}\n")
        result = self.twistd("jabberd", "--config", path)
        self.assertEqual(result.returncode, 3, result.stdout + result.stderr)
        self.assertIn(f"  data_dir: {blocker}/data: {blocker} is not a folder\n", result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_missingConfig(self) -> None:
        """A --config file that does not exist is reported in one line, status 3."""
        missing = os.path.join(self.base, "missing.toml")
        result = self.twistd("jabberd", "--config", missing)
        self.assertEqual(result.returncode, 3)
        self.assertEqual(result.stderr, f"jabberd: 1 problem in {missing}:\n  {missing}: file not found\n")

    def test_pluginListed(self) -> None:
        """`twistd --help` lists the jabberd plugin and `twistd jabberd --help` its one option."""
        self.assertIn("jabberd", self.twistd("--help").stdout)
        result = self.twistd("jabberd", "--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--config=", result.stdout)


def defaultPorts() -> list[int]:
    """The TCP ports a zero-config server listens on (the defaults of every listener option)."""
    from jabberd.config import fromDict

    config = fromDict({"data_dir": "/nonexistent"})
    ports = []
    for path in listenerOptions():
        value: Any = config
        for part in path.split("."):
            value = getattr(value, part)
        for endpoint in value:
            match = re.match(r"(?:tcp6?|ssl):(?:port=)?(\d+)", endpoint)
            if match:
                ports.append(int(match.group(1)))
    return ports


class ZeroConfigTests(TwistdMixin, unittest.TestCase):
    """`twistd -n jabberd` with no configuration at all: the README's quick start."""

    def setUp(self) -> None:
        self.setUpFolder()
        taken = []
        for port in defaultPorts():
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("", port))
                except OSError:
                    taken.append(port)
        if taken:
            raise unittest.SkipTest(
                f"the zero-config server listens on the default ports {defaultPorts()},"
                f" and {taken} are taken on this machine"
            )

    @defer.inlineCallbacks
    def test_zeroConfig(self):
        """With only JABBERD_DATA_DIR set the server names its data folder, creates the store and a certificate, and serves localhost."""
        env = ctlEnvironment(self.dataDir)
        env["HOME"] = self.base  # nothing may land in the real home folder
        self.ctl(None, "adduser", "alice@localhost", "--password", "wonderland")
        server = self.spawnTwistd("jabberd", env=env)
        yield server.waitFor(r"jabberd ready")
        self.assertIn(f"jabberd data folder: {self.dataDir}", server.output)
        self.assertTrue(os.path.exists(os.path.join(self.dataDir, "jabberd.sqlite")))
        from jabberd import tls

        certificate = os.path.join(self.dataDir, "certs", "localhost.pem")
        key, cert, chain = tls.loadKeyAndCert(certificate, None)
        self.assertTrue(tls.verifyPeerDomain(cert, "localhost"))
        self.assertIn("port=5222)", server.output)

        alice = slixmppClient("alice@localhost/zero", "wonderland", sslContext=self.clientContext())
        self.addCleanup(alice.disconnect)
        yield connectSlixmpp(alice, 5222)
        self.assertEqual(str(alice.boundjid), "alice@localhost/zero")
        status = yield self.stop(server)
        self.assertEqual(status, 0, server.output)
