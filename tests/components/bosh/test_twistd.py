"""
`twistd -n jabberd-bosh --config bosh.toml`: the standalone connection
manager as an operator runs it, in front of a real server, and what it does
when the server cannot be reached.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.trial import unittest

from components.bosh.config import BoshConfig
from components.bosh.framing import NS_HTTPBIND
from components.bosh.tap import ConnectionManager
from jabberd.config import fromDict
from tests.components.bosh.support import EPHEMERAL, WebMixin
from tests.harness import LOOPBACK
from tests.test_ctl import tomlString
from tests.test_twistd import TwistdMixin, listening


class TwistdTests(TwistdMixin, WebMixin, unittest.TestCase):
    """The jabberd-bosh twistd plugin."""

    def setUp(self) -> None:
        self.setUpFolder()

    def writeConfig(self, text: str) -> str:
        path = os.path.join(self.base, "bosh.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    @defer.inlineCallbacks
    def test_relay(self):
        """The plugin listens, relays a BOSH session to the server (STARTTLS checked against ca_file), and exits 0 on SIGTERM."""
        server = yield self.startServer(http={"listen": [], "listen_tls": []})
        config = self.writeConfig(
            f"data_dir = {tomlString(self.dataDir)}\n"
            "[core]\n"
            f'connect = "tcp:{LOOPBACK}:{server.port("c2s")}"\n'
            f"ca_file = {tomlString(self.certificatePath())}\n"
            "[http]\n"
            f'listen = ["tcp:0:interface={LOOPBACK}"]\n'
            "listen_tls = []\n"
        )
        process = self.spawnTwistd("jabberd-bosh", "--config", config)
        port = self.port((yield process.waitFor(listening("http"))))
        yield process.waitFor(r"jabberd-bosh ready")
        url = f"http://{LOOPBACK}:{port}/http-bind"
        data = f"<body xmlns='{NS_HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='100' to='localhost' wait='5' hold='1' ver='1.11' xmpp:version='1.0'/>".encode()
        answer = yield self.http("POST", url, data)
        self.assertEqual(answer.children[0].name, "features", answer.raw)
        self.assertEqual(answer.attrs["from"], "localhost")
        status = yield self.stop(process)
        self.assertEqual(status, 0, process.output)

    @defer.inlineCallbacks
    def test_badConfig(self):
        """A bad configuration is reported with its key paths and exit status 3."""
        config = self.writeConfig('[http]\nbosh_requests = 1\n[core]\nconect = "tcp:x:1"\n')
        process = self.spawnTwistd("jabberd-bosh", "--config", config)
        status = yield process.ended
        self.assertEqual(status, 3, process.output)
        self.assertIn("core.conect: unknown key (did you mean connect?)", process.output)
        self.assertIn("http.bosh_requests: must be at least 2", process.output)


class UnreachableCoreTests(WebMixin, unittest.TestCase):
    """The server is down."""

    @defer.inlineCallbacks
    def test_remoteConnectionFailed(self):
        """A session whose server cannot be reached ends with remote-connection-failed."""
        self.dataDir = self.mktemp()
        config = fromDict({"data_dir": self.dataDir, "core": {"connect": f"tcp:{LOOPBACK}:1"}, "http": {"listen": EPHEMERAL, "listen_tls": []}}, cls=BoshConfig)
        manager = ConnectionManager(config, reactor)
        manager.startService()
        self.addCleanup(manager.stopService)
        yield manager.ready
        self.web = manager
        answer = yield self.bosh(secure=False).create()
        self.assertEqual((answer.attrs.get("type"), answer.attrs.get("condition")), ("terminate", "remote-connection-failed"))


class ExampleTests(unittest.SynchronousTestCase):
    """etc/bosh.toml is a valid, complete example."""

    def test_everyOption(self) -> None:
        """The example loads, also with every commented option made active, and names every option."""
        import tomllib

        from jabberd.config import load
        from tests.test_config import EXAMPLE, missingOptions, uncommented

        path = os.path.join(os.path.dirname(EXAMPLE), "bosh.toml")
        self.assertEqual(load(path, cls=BoshConfig).hosts, ("localhost",))
        with open(path, encoding="utf-8") as f:
            data = tomllib.loads(uncommented(f.read()))
        fromDict(data, cls=BoshConfig)
        self.assertEqual(list(missingOptions(BoshConfig, data)), [])
