"""
Tests for packaging (setup.cfg, pyproject.toml): what `pip install .` puts
on a machine, and that `twistd jabberd` then works from any directory.

Built offline: a copy of the source tree (so nothing stale in build/ or a
developer's dropin.cache can leak in, and the checkout is left untouched)
becomes a wheel with `pip wheel --no-deps --no-build-isolation`, using the
setuptools of the running environment (the `test` extra brings a new enough
one).  The wheel is installed into a new, empty venv without its
dependencies; the dependencies are then borrowed from the running
environment by a .pth file (added after the install, so pip never sees the
running environment's own jabberd).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.test_ctl import loopbackListeners

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300

#: Never copied into the build: VCS data, build output, test output, state.
IGNORED = shutil.ignore_patterns(
    ".git", "_trial_temp*", "build", "dist", "*.egg-info", ".venv", "venv",
    "__pycache__", "*.pyc", "dropin.cache", "data", "*.sqlite*",
)


def setuptoolsProblem() -> str | None:
    """Why this environment cannot build a wheel offline (None when it can)."""
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed: pip install -e '.[test]'"
    version = tuple(int(p) for p in re.findall(r"\d+", setuptools.__version__)[:2])
    if version < (70, 1):
        return (
            f"setuptools {setuptools.__version__} cannot build wheels without the `wheel`"
            " package; the test extra asks for >= 70.1: pip install -e '.[test]'"
        )
    return None


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, failing with its output when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, **kw)
    if result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class _Built:
    """The wheel and the venv, built once for the whole module (they take a while)."""

    base: str | None = None
    wheel: str = ""
    source: str = ""
    venv: str = ""
    sitePackages: str = ""


def buildOnce() -> _Built:
    """Copy the tree, build the wheel, install it into a fresh venv; once per test run."""
    if _Built.base is not None:
        return _Built
    problem = setuptoolsProblem()
    if problem:
        raise SkipTest(problem)
    base = os.path.abspath("packaging")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    source = os.path.join(base, "source")
    shutil.copytree(ROOT, source, ignore=IGNORED)
    # A developer's stale plugin cache must never be shipped.
    with open(os.path.join(source, "twisted", "plugins", "dropin.cache"), "wb") as f:
        f.write(b"stale")
    dist = os.path.join(base, "dist")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-w", dist, source],
        cwd=base,
    )
    (wheel,) = [os.path.join(dist, n) for n in os.listdir(dist) if n.endswith(".whl")]
    venv = os.path.join(base, "venv")
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = os.path.join(venv, "bin", "python")
    run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", wheel],
        cwd=base,
    )
    sitePackages = run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    ).stdout.strip()
    borrowed = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    with open(os.path.join(sitePackages, "zz_borrowed_dependencies.pth"), "w") as f:
        f.write("\n".join(borrowed) + "\n")
    _Built.base, _Built.wheel, _Built.source = base, wheel, source
    _Built.venv, _Built.sitePackages = venv, sitePackages
    return _Built


class WheelContentsTests(SynchronousTestCase):
    """The file list of the wheel `pip wheel .` builds."""

    def setUp(self) -> None:
        self.built = buildOnce()
        with zipfile.ZipFile(self.built.wheel) as z:
            self.names = set(z.namelist())
            self.entryPoints = z.read(next(n for n in self.names if n.endswith("entry_points.txt"))).decode()
            self.metadata = z.read(next(n for n in self.names if n.endswith(".dist-info/METADATA"))).decode()

    def sourceFiles(self, top: str) -> set[str]:
        """The .py files under C{top} in the source copy, as wheel names."""
        found = set()
        for directory, _, files in os.walk(os.path.join(self.built.source, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    found.add(os.path.relpath(path, self.built.source).replace(os.sep, "/"))
        return found

    def test_packages(self) -> None:
        """Every module of jabberd/ and components/ is in the wheel, the migrations included."""
        for top in ("jabberd", "components"):
            missing = self.sourceFiles(top) - self.names
            self.assertEqual(missing, set(), f"{top}: not in the wheel")
        for name in ("jabberd/tap.py", "jabberd/ctl.py", "jabberd/store/migrations/env.py",
                     "jabberd/store/migrations/versions/0001_accounts.py"):
            self.assertIn(name, self.names)

    def test_dropins(self) -> None:
        """Every dropin goes to twisted/plugins/, with no __init__.py that would shadow Twisted's own package."""
        self.assertIn("twisted/plugins/jabberd_plugins.py", self.names)
        twisted = {n for n in self.names if n.startswith("twisted/")}
        self.assertEqual(twisted, self.sourceFiles(os.path.join("twisted", "plugins")))
        self.assertNotIn("twisted/__init__.py", twisted)
        self.assertNotIn("twisted/plugins/__init__.py", twisted)

    def test_nothingElse(self) -> None:
        """No tests, caches, build droppings or stale dropin.cache are shipped."""
        tops = {n.split("/")[0] for n in self.names}
        self.assertEqual(
            {t for t in tops if not t.endswith(".dist-info")}, {"jabberd", "components", "twisted"}
        )
        for name in self.names:
            self.assertFalse(re.search(r"(__pycache__|\.pyc$|dropin\.cache$|\.sqlite)", name), name)

    def test_metadata(self) -> None:
        """The console scripts and the runtime dependencies are declared."""
        self.assertIn("jabberdctl = jabberd.ctl:main", self.entryPoints)
        for requirement in ("twisted", "tx-xmpp", "pyopenssl", "service-identity", "sqlalchemy", "alembic"):
            self.assertTrue(
                re.search(rf"^Requires-Dist: {requirement}\b", self.metadata, re.M | re.I), requirement
            )
        self.assertTrue(re.search(r"^Requires-Dist: slixmpp.*extra == .test.", self.metadata, re.M))


class InstalledTests(SynchronousTestCase):
    """The installed wheel, run from a folder that has nothing to do with the source."""

    def setUp(self) -> None:
        self.built = buildOnce()
        self.cwd = os.path.abspath(self.mktemp())
        os.makedirs(self.cwd)
        self.dataDir = os.path.join(self.cwd, "data")
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env["JABBERD_DATA_DIR"] = self.dataDir
        self.env["HOME"] = self.cwd
        self.python = os.path.join(self.built.venv, "bin", "python")
        self.cache = os.path.join(self.built.sitePackages, "twisted", "plugins", "dropin.cache")

    def runIn(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TIMEOUT, cwd=self.cwd, env=self.env
        )
        if check and result.returncode != 0:
            self.fail(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def twistd(self, *args: str) -> list[str]:
        return [self.python, "-c", "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()", *args]

    def test_importedFromTheVenv(self) -> None:
        """jabberd, components and the dropins are imported from the venv, not the checkout."""
        out = self.runIn(
            self.python, "-c",
            "import jabberd, components, twisted.plugins.jabberd_plugins as p;"
            " print(jabberd.__file__); print(components.__file__); print(p.__file__)",
        ).stdout.split()
        for path in out:
            self.assertTrue(path.startswith(self.built.sitePackages), path)

    def test_consoleScriptAndMigrations(self) -> None:
        """The installed jabberdctl migrates a new database with the shipped migrations."""
        ctl = os.path.join(self.built.venv, "bin", "jabberdctl")
        self.assertIn("jabberd ", self.runIn(ctl, "--version").stdout)
        result = self.runIn(ctl, "db", "upgrade")
        self.assertTrue(result.stdout.startswith("database upgraded from revision none (empty) to "), result.stdout)
        self.runIn(ctl, "adduser", "alice@localhost", "--password", "x")
        self.assertEqual(self.runIn(ctl, "users").stdout, "alice@localhost\n")

    def test_twistdFindsThePlugin(self) -> None:
        """twistd, started far from the source, lists jabberd and starts it."""
        self.assertIn("jabberd", self.runIn(*self.twistd("--help")).stdout)
        config = os.path.join(self.cwd, "jabberd.toml")
        with open(config, "w") as f:
            f.write(loopbackListeners() + "\n")
        output = self.startAndStop(config)
        self.assertIn(f"jabberd data folder: {self.dataDir}", output)

    def startAndStop(self, config: str) -> str:
        """Run twistd jabberd until it is ready, SIGTERM it, return its log."""
        process = subprocess.Popen(
            self.twistd("-n", "--pidfile=", "jabberd", "--config", config),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.cwd, env=self.env,
        )
        output = ""
        try:
            deadline = time.monotonic() + 60
            assert process.stdout is not None
            while "jabberd ready" not in output and time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                output += line
            self.assertIn("jabberd ready", output)
            process.terminate()
            output += process.communicate(timeout=60)[0]
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        self.assertEqual(process.returncode, 0, output)
        return output


class EditableInstallTests(SynchronousTestCase):
    """`pip install -e .` (the README's test command) must keep the dropins findable."""

    def test_editableIsAPathEntry(self) -> None:
        """The editable wheel adds the project folder to sys.path rather than an import hook."""
        built = buildOnce()
        out = os.path.abspath(self.mktemp())
        os.makedirs(out)
        run(
            [sys.executable, "-c",
             "import sys; from setuptools import build_meta;"
             " print(build_meta.build_editable(sys.argv[1]))", out],
            cwd=built.source,
        )
        (wheel,) = [os.path.join(out, n) for n in os.listdir(out) if n.endswith(".whl")]
        with zipfile.ZipFile(wheel) as z:
            pths = [n for n in z.namelist() if n.endswith(".pth")]
            self.assertEqual(len(pths), 1, z.namelist())
            lines = z.read(pths[0]).decode().split()
        # twistd finds twisted/plugins/ by scanning sys.path entries; an
        # `import __editable__..._finder` line would hide the dropins.
        self.assertEqual([os.path.realpath(p) for p in lines], [os.path.realpath(built.source)])


class ReadmeAndCITests(SynchronousTestCase):
    """The README's quick start and .ci/run cannot drift apart."""

    def setUp(self) -> None:
        with open(os.path.join(ROOT, "README.md")) as f:
            self.readme = f.read()
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            self.ci = f.read()
        section = self.readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
        self.commands = re.findall(r"```sh\n(.*?)\n```", section, re.S)

    def test_twoCommands(self) -> None:
        """The quick start is two one-line commands: install and run, install and test."""
        self.assertEqual(len(self.commands), 2, self.commands)
        for command in self.commands:
            self.assertNotIn("\n", command)
        run, test = self.commands
        self.assertTrue(run.startswith("python3 -m venv .venv && "), run)
        self.assertIn("pip install . ", run)  # a real, non-editable install
        self.assertTrue(run.endswith("twistd -n jabberd"), run)
        self.assertIn("trial --reactor=asyncio tests", test)

    def test_ciRunsTheReadmeTestCommand(self) -> None:
        """.ci/run runs the README's test command verbatim, and fails when it fails."""
        match = re.search(r'^TEST_COMMAND="(.*)"$', self.ci, re.M)
        assert match is not None, "no TEST_COMMAND in .ci/run"
        self.assertEqual(match.group(1), self.commands[1])
        self.assertIn('bash -c "$TEST_COMMAND"', self.ci)
        self.assertIn("set -euo pipefail", self.ci)
        self.assertIn('exit "$status"', self.ci)

    def test_embedding(self) -> None:
        """The embedding example uses the public names jabberd exports."""
        import jabberd

        self.assertIn("from jabberd import XMPPServer, loadConfig", self.readme)
        self.assertIn(".setServiceParent(application)", self.readme)
        self.assertTrue(callable(jabberd.XMPPServer) and callable(jabberd.loadConfig))
