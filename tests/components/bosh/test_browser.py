"""
A real browser: Strophe.js (npm strophe.js) in headless Chromium (Debian's
chromium, driven by npm playwright-core) logs in over BOSH and, separately,
over WebSocket, chats with a slixmpp client, survives a network pause (the
browser goes offline for a while and gets what was sent meanwhile), and
chats again; against the in-process transport and the standalone connection
manager.

The page (browser/page.html, browser/client.js) is served from another
origin than the XMPP endpoints, so CORS is part of the test.  The npm
packages are installed by the test itself (`npm ci` into the gitignored
browser/node_modules) from the committed package-lock.json.  Without
chromium, node or npm the tests are skipped, saying which is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest
from twisted.web import server as webserver
from twisted.web import static

from tests.components.bosh.support import WebMixin
from tests.harness import LOOPBACK, connectSlixmpp, slixmppClient

BROWSER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
RUN_TIMEOUT = 180
PAUSE_SECONDS = 6

_installed: list[str] = []


def missingTools() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; or set CHROMIUM)"
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def installPackages() -> None:
    """`npm ci` once per run, unless node_modules already matches the lock file."""
    if _installed:
        return
    lock = os.path.join(BROWSER_DIR, "package-lock.json")
    stamp = os.path.join(BROWSER_DIR, "node_modules", ".package-lock.json")
    if not (os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock)):
        subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=BROWSER_DIR, check=True, capture_output=True, timeout=300,
        )
    _installed.append("yes")


class NodeProcess(protocol.ProcessProtocol):
    """The runner's output, line by line; C{ended} fires with its exit code."""

    def __init__(self) -> None:
        self.output = ""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value.exitCode)


class BrowserMixin(WebMixin):
    """Strophe.js in Chromium, one transport per class (C{service})."""

    service = "bosh"

    def setUp(self) -> None:
        why = missingTools()
        if why:
            raise unittest.SkipTest(why)
        installPackages()

    def serveFiles(self) -> int:
        """The test page on its own loopback origin; returns its port."""
        root = static.File(BROWSER_DIR)
        root.putChild(b"strophe.umd.min.js", static.File(os.path.join(BROWSER_DIR, "node_modules", "strophe.js", "dist", "strophe.umd.min.js")))
        site = webserver.Site(root)
        port = reactor.listenTCP(0, site, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @defer.inlineCallbacks
    def peer(self, port: int):
        """bob, a slixmpp client that echoes alice and speaks up while she is away."""
        bob = slixmppClient("bob@localhost/slix", "secret", sslContext=self.clientSSLContext())
        heard: list[str] = []

        def message(msg: Any) -> None:
            if msg["type"] not in ("chat", "normal") or not msg["body"]:
                return
            body = msg["body"]
            heard.append(body)
            bob.send_message(mto=msg["from"], mbody=f"echo: {body}", mtype="chat")
            if body == "pause-now":
                # Sent while the browser is offline (the runner pauses on "PAUSE").
                reactor.callLater(2, bob.send_message, mto=msg["from"], mbody="while you were away", mtype="chat")

        bob.add_event_handler("message", message)
        yield connectSlixmpp(bob, port)
        bob.send_presence()
        self.addCleanup(bob.disconnect)
        return heard

    @defer.inlineCallbacks
    def test_chatAndPause(self):
        """The browser logs in, chats, goes offline for a few seconds, receives what was sent meanwhile and chats again."""
        server = yield self.startWeb()
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        heard = yield self.peer(server.port("c2s"))
        if self.service == "bosh":
            endpoint = f"http://{LOOPBACK}:{self.web.port('http')}/http-bind"
        else:
            endpoint = f"ws://{LOOPBACK}:{self.web.port('http')}/xmpp-websocket"
        page = f"http://{LOOPBACK}:{self.serveFiles()}/page.html?service={endpoint}&jid=alice@localhost/browser&password=secret&peer=bob@localhost/slix"
        node = NodeProcess()
        env = {**os.environ, "CHROMIUM": CHROMIUM}
        process = reactor.spawnProcess(node, shutil.which("node"), ["node", "runner.mjs", page, str(PAUSE_SECONDS)], env=env, path=BROWSER_DIR)

        def kill() -> None:
            if not node.ended.called:
                process.signalProcess("KILL")

        self.addCleanup(lambda: (kill(), node.ended)[1])
        code = yield node.ended.addTimeout(RUN_TIMEOUT, reactor)
        self.assertEqual(code, 0, node.output)
        lines = node.output.splitlines()
        self.assertEqual(lines[-1], "DONE", node.output)
        self.assertIn("page: bound as alice@localhost/browser", lines)
        self.assertIn("PAUSE", lines)
        self.assertIn("ONLINE", lines)
        self.assertEqual(heard, ["hello", "pause-now", "back"])


class InProcessBOSH(BrowserMixin, unittest.TestCase):
    """Strophe.js over BOSH, in-process."""


class InProcessWebSocket(BrowserMixin, unittest.TestCase):
    """Strophe.js over WebSocket, in-process."""

    service = "websocket"


class StandaloneBOSH(BrowserMixin, unittest.TestCase):
    """Strophe.js over BOSH, through the standalone connection manager."""

    standalone = True


class StandaloneWebSocket(BrowserMixin, unittest.TestCase):
    """Strophe.js over WebSocket, through the standalone connection manager."""

    standalone = True
    service = "websocket"
