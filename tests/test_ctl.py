"""
Tests for `jabberdctl` (L{jabberd.ctl}), run the way an operator runs it: a
real process (`python -m jabberd.ctl`, and the installed console script)
against a real configuration file and a real store, on SQLite and on
PostgreSQL when one is reachable.  Every assertion is on what a person or a
script sees: standard output, the one line on standard error, the exit
status.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import stat
import subprocess
import sys
import sysconfig
import time
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from jabberd.ctl import EPILOG, ExitCode
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")
CTL_TIMEOUT = 60


def ctlEnvironment(dataDir: str) -> dict[str, str]:
    """
    The environment of a jabberdctl/twistd child: ours, with the default
    data folder moved into the test's temp folder so that nothing can
    touch ~/.local/share/jabberd, and the project importable from any cwd.
    """
    env = dict(os.environ)
    env["JABBERD_DATA_DIR"] = dataDir
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env.pop("COVERAGE_PROCESS_START", None)
    return env


def consoleScript(name: str) -> str | None:
    """The path of an installed console script (jabberdctl, twistd), or None."""
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


LOOPBACK_ANY_PORT = "tcp:0:interface=127.0.0.1"


def listenerOptions() -> list[str]:
    """
    The key path of every listener option ("c2s.listen", "http.listen_tls",
    ...), read from the configuration classes so that a listener added
    later is covered without touching these tests.
    """
    import dataclasses
    from typing import get_type_hints

    from jabberd.config import Config

    paths = []

    def walk(cls: type, where: str) -> None:
        hints = get_type_hints(cls)
        for field in dataclasses.fields(cls):
            hint = hints[field.name]
            path = f"{where}.{field.name}" if where else field.name
            if dataclasses.is_dataclass(hint):
                walk(hint, path)
            elif field.name.startswith("listen"):
                paths.append(path)

    walk(Config, "")
    return paths


def loopbackListeners(**overrides: list[str]) -> str:
    """
    Top-level TOML lines (dotted keys) putting every listener on a free
    loopback port, so a test server never takes a well-known port or
    listens beyond loopback; C{overrides} maps "c2s_listen" style names
    (dots as underscores) to other endpoint lists.
    """
    lines = []
    for path in listenerOptions():
        endpoints = overrides.get(path.replace(".", "_"), [LOOPBACK_ANY_PORT])
        lines.append(f"{path} = [{', '.join(tomlString(e) for e in endpoints)}]")
    return "\n".join(lines)


def writeConfig(
    path: str,
    dataDir: str,
    database: str = "",
    extra: str = "",
    top: str = "",
    listeners: dict[str, list[str]] | None = None,
) -> str:
    """
    A TOML configuration serving localhost and example.org, data in dataDir,
    every listener on a free loopback port (see L{loopbackListeners}, which
    C{listeners} overrides); C{top} is added among the top-level keys,
    C{extra} (tables other than those of listeners and [auth]) at the end.
    """
    lines = [
        top,
        'hosts = ["localhost", "example.org"]',
        f"data_dir = {tomlString(dataDir)}",
        f"database = {tomlString(database)}",
        loopbackListeners(**(listeners or {})),
        "[auth]",
        "scram_iterations = 4096",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    return path


def tomlString(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    import json

    return json.dumps(value)


class CtlRunner:
    """Mixed into a TestCase: C{ctl(...)} runs jabberdctl in a child process."""

    mktemp: Any
    fail: Any

    def setUpCtl(self, database: str = "") -> None:
        """A temp folder with a data folder and a configuration file."""
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.dataDir = os.path.join(self.base, "data")
        self.config = writeConfig(os.path.join(self.base, "jabberd.toml"), self.dataDir, database)

    def ctl(
        self, *args: str, input: str | None = None, config: str | None = "", script: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """
        Run jabberdctl with C{args} (and C{--config}, unless C{config} is
        None) and return the finished process; stdin is C{input} or empty.
        """
        command = [consoleScript("jabberdctl")] if script else [sys.executable, "-m", "jabberd.ctl"]
        if config is not None:
            command += ["--config", config or self.config]
        return subprocess.run(
            command + list(args),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            cwd=self.base,
            env=ctlEnvironment(self.dataDir),
            timeout=CTL_TIMEOUT,
        )

    def assertExit(self, result: subprocess.CompletedProcess[str], code: int) -> None:
        """C{result} ended with C{code}; show its output when it did not."""
        if result.returncode != code:
            self.fail(
                f"exit status {result.returncode}, expected {code}\n"
                f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}"
            )

    def assertOneLineError(self, result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
        """C{result} failed with C{code} and exactly one stderr line containing C{words}."""
        self.assertExit(result, code)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
        assert lines[0].startswith("jabberdctl: "), lines[0]
        assert "Traceback" not in result.stderr
        for word in words:
            assert word in lines[0], f"{word!r} not in {lines[0]!r}"
        return lines[0]


# -- accounts and the database, on each backend ---------------------------------


class AccountCommandsMixin(CtlRunner):
    """adduser, passwd, deluser, users and db upgrade; run on each backend."""

    newDatabaseURL: Any
    assertEqual: Any
    assertIn: Any
    assertNotIn: Any
    assertNotEqual: Any
    assertTrue: Any

    def databaseURL(self) -> str:
        """The `database` setting: a new empty database of the backend under test."""
        raise NotImplementedError

    def setUp(self) -> None:
        self.setUpCtl(self.databaseURL())

    def credentials(self, address: str) -> dict[str, Any] | None:
        """The account's stored SCRAM credentials, read through the store's own API."""
        from jabberd.config import load
        from jabberd.store import Store
        from jabberd.store.accounts import get_credentials_txn

        user, _, host = address.partition("@")
        store = Store(load(self.config).databaseURL())
        try:
            with store.engine.begin() as conn:
                return get_credentials_txn(conn, host, user)
        finally:
            store.engine.dispose()

    def upgraded(self) -> None:
        """
        Bring the database to the newest schema first, as an operator would
        with `jabberdctl db upgrade` (a server database needs it); done in
        this process because that command has its own test and a child
        process per test costs a second.
        """
        from jabberd.store import Store

        store = Store(self.databaseURLForStore())
        try:
            store.upgrade()
        finally:
            store.engine.dispose()

    def test_adduserAndUsers(self) -> None:
        """Accounts created with --password and on stdin are listed, sorted, per host or all."""
        self.upgraded()
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "wonderland"), 0)
        result = self.ctl("adduser", "Bob@LocalHost", input="builder\n")
        self.assertExit(result, 0)
        self.assertEqual(result.stdout, "created bob@localhost\n")
        self.assertExit(self.ctl("adduser", "carol@example.org", input="c\n"), 0)
        self.assertEqual(
            self.ctl("users").stdout.splitlines(),
            ["alice@localhost", "bob@localhost", "carol@example.org"],
        )
        self.assertEqual(self.ctl("users", "example.org").stdout, "carol@example.org\n")
        self.assertEqual(self.ctl("users", "nobody.example").stdout, "")
        creds = self.credentials("bob@localhost")
        assert creds is not None
        self.assertIn("SCRAM-SHA-256", creds)

    def test_duplicateUser(self) -> None:
        """Creating an account twice fails with status 4 and leaves the first password alone."""
        self.upgraded()
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "one"), 0)
        before = self.credentials("alice@localhost")
        result = self.ctl("adduser", "alice@localhost", "--password", "two")
        self.assertOneLineError(result, ExitCode.EXISTS, "alice@localhost already exists")
        self.assertEqual(self.credentials("alice@localhost"), before)

    def test_unknownHost(self) -> None:
        """An account on a domain the server does not serve is refused, naming the hosts."""
        self.upgraded()
        result = self.ctl("adduser", "mallory@evil.example", "--password", "x")
        self.assertOneLineError(
            result, ExitCode.USAGE, "evil.example is not a host", "localhost, example.org"
        )
        self.assertEqual(self.ctl("users").stdout, "")

    def test_invalidJID(self) -> None:
        """Malformed addresses, full JIDs and bare domains are usage errors naming the input."""
        for address in ("alice@", "@localhost", "al ice@localhost", "alice@localhost/phone", "localhost"):
            result = self.ctl("adduser", address, "--password", "x")
            self.assertOneLineError(result, ExitCode.USAGE, address)

    def test_emptyPassword(self) -> None:
        """An empty line on stdin is not a password: status 2, nothing created."""
        self.upgraded()
        self.assertOneLineError(self.ctl("adduser", "alice@localhost", input="\n"), ExitCode.USAGE, "empty")
        self.assertOneLineError(self.ctl("adduser", "alice@localhost"), ExitCode.USAGE, "empty")
        self.assertEqual(self.ctl("users").stdout, "")

    def test_passwd(self) -> None:
        """passwd replaces the stored credentials; an unknown account is status 5."""
        self.upgraded()
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "one"), 0)
        before = self.credentials("alice@localhost")
        result = self.ctl("passwd", "alice@localhost", input="two\n")
        self.assertExit(result, 0)
        self.assertEqual(result.stdout, "password changed for alice@localhost\n")
        after = self.credentials("alice@localhost")
        assert before is not None and after is not None
        self.assertNotEqual(after["SCRAM-SHA-256"].stored_key, before["SCRAM-SHA-256"].stored_key)
        result = self.ctl("passwd", "nobody@localhost", "--password", "x")
        self.assertOneLineError(result, ExitCode.NOT_FOUND, "nobody@localhost does not exist")

    def test_deluser(self) -> None:
        """deluser removes the account and its credentials; deleting it again is status 5."""
        self.upgraded()
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "x"), 0)
        self.assertExit(self.ctl("adduser", "bob@localhost", "--password", "x"), 0)
        result = self.ctl("deluser", "alice@localhost")
        self.assertExit(result, 0)
        self.assertEqual(result.stdout, "deleted alice@localhost\n")
        self.assertEqual(self.ctl("users").stdout, "bob@localhost\n")
        self.assertEqual(self.credentials("alice@localhost"), None)
        self.assertOneLineError(self.ctl("deluser", "alice@localhost"), ExitCode.NOT_FOUND, "does not exist")

    def test_dbUpgradeIdempotent(self) -> None:
        """db upgrade migrates an empty database to the newest revision, then changes nothing."""
        from jabberd.store import Store

        first = self.ctl("db", "upgrade")
        self.assertExit(first, 0)
        store = Store(self.databaseURLForStore())
        try:
            head = store.headRevision()
            self.assertEqual(store.currentRevision(), head)
        finally:
            store.engine.dispose()
        self.assertEqual(first.stdout, f"database upgraded from revision none (empty) to {head}\n")
        second = self.ctl("db", "upgrade")
        self.assertExit(second, 0)
        self.assertEqual(second.stdout, f"database at revision {head} (already up to date)\n")
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "x"), 0)
        self.assertExit(self.ctl("db", "upgrade"), 0)
        self.assertEqual(self.ctl("users").stdout, "alice@localhost\n")

    def databaseURLForStore(self) -> str:
        """The URL the configuration resolves to (SQLite: the file in data_dir)."""
        from jabberd.config import load

        return load(self.config).databaseURL()


class SQLiteAccountCommandsTests(SQLiteStoreMixin, AccountCommandsMixin, SynchronousTestCase):
    """The account commands on the zero-config SQLite store in data_dir."""

    def databaseURL(self) -> str:
        return ""  # the default: {data_dir}/jabberd.sqlite

    def test_sqliteNeedsNoUpgrade(self) -> None:
        """On the embedded SQLite store adduser migrates by itself, like the server does."""
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "x"), 0)
        self.assertTrue(os.path.exists(os.path.join(self.dataDir, "jabberd.sqlite")))
        self.assertEqual(self.ctl("users").stdout, "alice@localhost\n")

    def test_consoleScript(self) -> None:
        """The installed `jabberdctl` console script runs the same commands."""
        if consoleScript("jabberdctl") is None:
            raise SkipTest("no jabberdctl console script next to this Python: install the project")
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "x", script=True), 0)
        result = self.ctl("users", script=True)
        self.assertExit(result, 0)
        self.assertEqual(result.stdout, "alice@localhost\n")


class PostgreSQLAccountCommandsTests(PostgreSQLStoreMixin, AccountCommandsMixin, SynchronousTestCase):
    """The account commands on PostgreSQL, each test in a new schema dropped after it."""

    def databaseURL(self) -> str:
        return self.newDatabaseURL()

    def test_serverDatabaseNeedsUpgrade(self) -> None:
        """A server database is never migrated behind the operator's back: status 6 until db upgrade."""
        result = self.ctl("adduser", "alice@localhost", "--password", "x")
        self.assertOneLineError(result, ExitCode.DATABASE, "jabberdctl db upgrade")
        self.upgraded()
        self.assertExit(self.ctl("adduser", "alice@localhost", "--password", "x"), 0)


# -- configuration, certificates, the command line --------------------------------


class ConfigurationTests(CtlRunner, SynchronousTestCase):
    """check, configuration errors in other commands, cert generate, usage and help."""

    def setUp(self) -> None:
        self.setUpCtl()

    def writeBad(self, text: str) -> str:
        path = os.path.join(self.base, "bad.toml")
        with open(path, "w") as f:
            f.write(f"data_dir = {tomlString(self.dataDir)}\n" + text)
        return path

    def test_checkOk(self) -> None:
        """A valid file passes check with status 0, naming the hosts and the modules."""
        result = self.ctl("check")
        self.assertExit(result, 0)
        self.assertIn(f"{self.config}: ok (hosts: localhost, example.org; modules: ", result.stdout)
        self.assertIn("register", result.stdout)
        self.assertEqual(result.stderr, "")
        self.assertFalse(os.path.exists(self.dataDir), "check must not create the data folder")

    def test_checkDefaults(self) -> None:
        """Without --config, check judges the built-in defaults (the zero-config start)."""
        result = self.ctl("check", config=None)
        self.assertExit(result, 0)
        self.assertIn("the built-in defaults: ok (hosts: localhost;", result.stdout)

    def test_checkReportsEveryProblem(self) -> None:
        """A wrong key, a bad value and unknown modules are all reported at once, by key path; status 1."""
        path = self.writeBad(
            "[c2s]\nstanza_size_limt = 100000\nmax_depth = 2\n"
            '[modules]\nenabled = ["registr", "no-such-module"]\n'
        )
        result = self.ctl("check", config=path)
        self.assertExit(result, ExitCode.FAILURE)
        lines = result.stderr.splitlines()
        self.assertEqual(
            lines[:2],
            [
                "jabberdctl: c2s.stanza_size_limt: unknown key (did you mean stanza_size_limit?)",
                "jabberdctl: c2s.max_depth: must be at least 8",
            ],
        )
        self.assertTrue(lines[2].startswith("jabberdctl: modules.enabled[0]: unknown module 'registr' (did you mean register?)"), lines[2])
        self.assertTrue(lines[3].startswith("jabberdctl: modules.enabled[1]: unknown module 'no-such-module'"), lines[3])
        self.assertEqual(lines[4:], [f"jabberdctl: 4 problems in {path}"])
        self.assertNotIn("Traceback", result.stderr)

    def test_checkDisabledModule(self) -> None:
        """modules.disabled is checked too: a typo there would silently disable nothing."""
        path = self.writeBad('[modules]\ndisabled = ["regster"]\n')
        result = self.ctl("check", config=path)
        self.assertExit(result, ExitCode.FAILURE)
        self.assertIn("modules.disabled[0]: unknown module 'regster' (did you mean register?)", result.stderr)

    def test_checkCertificate(self) -> None:
        """A configured certificate TLS cannot load is a problem under its key, before the server fails on it."""
        junk = os.path.join(self.base, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        path = self.writeBad(f"[tls]\ncertificate = {tomlString(junk)}\n")
        result = self.ctl("check", config=path)
        self.assertExit(result, ExitCode.FAILURE)
        self.assertIn(f"jabberdctl: tls.certificate: {junk}: no PEM certificate found\n", result.stderr)
        missing = os.path.join(self.base, "missing.pem")
        path = self.writeBad(f'[host."localhost"]\ncertificate = {tomlString(missing)}\n')
        result = self.ctl("check", config=path)
        self.assertExit(result, ExitCode.FAILURE)
        self.assertIn(f'jabberdctl: host."localhost".certificate: {missing}: cannot read', result.stderr)

    def test_checkDataDir(self) -> None:
        """A data folder that cannot be created is a problem under data_dir, and check creates nothing."""
        blocker = os.path.join(self.base, "a-file")
        with open(blocker, "w"):
            pass
        path = os.path.join(self.base, "bad.toml")
        with open(path, "w") as f:
            f.write(f"data_dir = {tomlString(os.path.join(blocker, 'data'))}\n")
        result = self.ctl("check", config=path)
        self.assertExit(result, ExitCode.FAILURE)
        self.assertIn(f"jabberdctl: data_dir: {blocker}/data: {blocker} is not a folder\n", result.stderr)

    def test_checkDatabaseDriver(self) -> None:
        """A database URL whose driver cannot be loaded is reported under `database`, without connecting."""
        path = self.writeBad('database = "postgresql+nosuchdriver://jabberd@127.0.0.1:1/jabberd"\n')
        result = self.ctl("check", config=path)
        self.assertExit(result, ExitCode.FAILURE)
        self.assertIn("jabberdctl: database: ", result.stderr)
        self.assertIn("nosuchdriver", result.stderr)

    def test_configErrorInOtherCommands(self) -> None:
        """Any other command refuses an invalid file with status 3, naming the key path."""
        path = self.writeBad("[c2s]\nstanza_size_limt = 100000\n")
        result = self.ctl("adduser", "alice@localhost", "--password", "x", config=path)
        self.assertOneLineError(result, ExitCode.CONFIG, "c2s.stanza_size_limt: unknown key")
        self.assertFalse(os.path.exists(self.dataDir))

    def test_missingConfig(self) -> None:
        """A configuration file that does not exist is status 3 (and status 1 for check)."""
        missing = os.path.join(self.base, "nope.toml")
        self.assertOneLineError(self.ctl("users", config=missing), ExitCode.CONFIG, f"{missing}: file not found")
        result = self.ctl("check", config=missing)
        self.assertExit(result, ExitCode.FAILURE)
        self.assertIn(f"{missing}: file not found", result.stderr)

    def test_databaseUnreachable(self) -> None:
        """A database that refuses connections is status 6, one line, password hidden."""
        path = self.writeBad('database = "postgresql://jabberd:s3cret@127.0.0.1:1/jabberd"\n')
        result = self.ctl("users", config=path)
        line = self.assertOneLineError(result, ExitCode.DATABASE, "127.0.0.1")
        self.assertNotIn("s3cret", line)

    def test_usageErrors(self) -> None:
        """Unknown commands, options and missing arguments are one line and status 2."""
        for args in (["frobnicate"], ["adduser"], ["users", "--bogus"], ["cert"], []):
            result = self.ctl(*args, config=None)
            line = self.assertOneLineError(result, ExitCode.USAGE)
            self.assertIn("--help", line)

    def test_helpDocumentsExitCodes(self) -> None:
        """--help ends with the exit statuses, and they are the ones ExitCode defines."""
        result = self.ctl("--help", config=None)
        self.assertExit(result, 0)
        self.assertIn("exit status:", result.stdout)
        for code in ExitCode:
            self.assertTrue(re.search(rf"^  {code.value}  \S", result.stdout, re.M), f"{code!r} not in --help")
        self.assertIn(EPILOG.splitlines()[0], result.stdout)
        sub = self.ctl("adduser", "--help", config=None)
        self.assertIn("exit status:", sub.stdout)

    def test_operationsDocumentsExitCodes(self) -> None:
        """docs/operations.md has a row for every exit status (the docs and the code agree)."""
        with open(OPERATIONS) as f:
            text = f.read()
        for code in ExitCode:
            self.assertTrue(re.search(rf"^\| {code.value} \| `{code.name}` \|", text, re.M), f"{code!r} not in operations.md")

    def test_operationsDocumentsListeners(self) -> None:
        """docs/operations.md has a row for every listener option the configuration has."""
        with open(OPERATIONS) as f:
            text = f.read()
        for path in listenerOptions():
            self.assertIn(f"| `{path}` |", text, f"{path} missing from the ports table")

    def test_version(self) -> None:
        """--version names the release."""
        import jabberd

        result = self.ctl("--version", config=None)
        self.assertExit(result, 0)
        self.assertEqual(result.stdout, f"jabberd {jabberd.__version__}\n")

    def test_certGenerate(self) -> None:
        """cert generate writes a private PEM that jabberd.tls loads and that names the host."""
        from jabberd import tls

        result = self.ctl("cert", "generate", "example.org")
        self.assertExit(result, 0)
        path = os.path.join(self.dataDir, "certs", "example.org.pem")
        self.assertEqual(result.stdout, f"wrote a self-signed certificate for example.org to {path}\n")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        key, cert, chain = tls.loadKeyAndCert(path, None)
        self.assertTrue(tls.verifyPeerDomain(cert, "example.org"))
        self.assertFalse(tls.verifyPeerDomain(cert, "localhost"))
        server = tls.ServerTLS({"example.org": (path, path)}, defaultHost="example.org")
        self.assertEqual(server.hosts, ["example.org"])
        # Where the server looks for a generated certificate: it will use this one.
        self.assertEqual((path, path), tls.ensureCertificate(self.dataDir, "example.org"))

    def test_certGenerateExisting(self) -> None:
        """An existing certificate is kept (status 4) unless --force; --output writes elsewhere."""
        from jabberd import tls

        self.assertExit(self.ctl("cert", "generate", "localhost"), 0)
        path = os.path.join(self.dataDir, "certs", "localhost.pem")
        with open(path, "rb") as f:
            first = f.read()
        self.assertOneLineError(self.ctl("cert", "generate", "localhost"), ExitCode.EXISTS, "--force")
        self.assertExit(self.ctl("cert", "generate", "localhost", "--force"), 0)
        with open(path, "rb") as f:
            self.assertNotEqual(f.read(), first)
        other = os.path.join(self.base, "elsewhere", "xmpp.pem")
        self.assertExit(self.ctl("cert", "generate", "localhost", "-o", other), 0)
        tls.loadKeyAndCert(other, None)

    def test_certGenerateInvalidHost(self) -> None:
        """A host that is not a domain name is a usage error, and no file is written."""
        self.assertOneLineError(self.ctl("cert", "generate", "bad host/../x"), ExitCode.USAGE, "bad host")
        self.assertFalse(os.path.exists(os.path.join(self.dataDir, "certs")))


class TerminalPromptTests(CtlRunner, SynchronousTestCase):
    """On a terminal, adduser asks for the password twice and never echoes it."""

    def setUp(self) -> None:
        self.setUpCtl()

    def converse(self, answers: list[str]) -> tuple[int, str]:
        """Run adduser on a pseudo-terminal, answering each prompt; return (status, screen)."""
        master, slave = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "jabberd.ctl", "--config", self.config, "adduser", "alice@localhost"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=self.base,
            env=ctlEnvironment(self.dataDir),
            start_new_session=True,
        )
        os.close(slave)
        screen = b""

        def readUntil(token: bytes) -> None:
            nonlocal screen
            deadline = time.monotonic() + CTL_TIMEOUT
            while token not in screen and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(master, 1024)
                    except OSError:  # the child closed the terminal
                        return
                    if not chunk:
                        return
                    screen += chunk

        try:
            for prompt, answer in zip((b"Password: ", b"Again: "), answers):
                readUntil(prompt)
                os.write(master, answer.encode() + b"\n")
            status = process.wait(timeout=CTL_TIMEOUT)
            readUntil(b"\0")  # whatever is left
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(master)
        return status, screen.decode(errors="replace")

    def test_promptsTwice(self) -> None:
        """Two matching answers create the account; the password never appears on screen."""
        status, screen = self.converse(["hunter2", "hunter2"])
        self.assertEqual(status, 0, screen)
        self.assertIn("Password: ", screen)
        self.assertIn("Again: ", screen)
        self.assertIn("created alice@localhost", screen)
        self.assertNotIn("hunter2", screen)
        self.assertEqual(self.ctl("users").stdout, "alice@localhost\n")

    def test_mismatch(self) -> None:
        """Two different answers create nothing: status 2."""
        status, screen = self.converse(["hunter2", "hunter3"])
        self.assertEqual(status, ExitCode.USAGE, screen)
        self.assertIn("jabberdctl: the passwords do not match", screen)
        self.assertEqual(self.ctl("users").stdout, "")
