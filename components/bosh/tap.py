"""
`twistd -n jabberd-bosh [--config PATH]`: the BOSH/WebSocket connection
manager on its own, relaying each web session to the core over an ordinary
c2s stream (XEP-0206).  Exit statuses as for `twistd jabberd`: 3 for a bad
configuration, 1 when a listener cannot start.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from components.bosh.config import BoshConfig
from jabberd import proxyprotocol
from jabberd.config import ConfigError, load
from jabberd.tap import EXIT_CONFIG, EXIT_START_FAILED, _exitStatusAtExit, filterLogsBelow


class Options(usage.Options):
    """Command line of `twistd jabberd-bosh`."""

    synopsis = "[--config PATH]"
    longdesc = (
        "Run the jabberd BOSH (XEP-0124/0206) and WebSocket (RFC 7395) connection"
        " manager on its own: each web session becomes a c2s stream to the server"
        " named in [core]. See docs/web.md and etc/bosh.toml."
    )
    optParameters = [["config", "c", None, "path to bosh.toml (default: built-in defaults)"]]


class ConnectionManager(Service):
    """The standalone web front: listeners, sessions, and their streams to the core."""

    log = Logger()

    def __init__(self, config: BoshConfig, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.config = config
        self.reactor = reactor
        self.ports: dict[str, list[Any]] = {}
        self.frontend: Any = None
        self.ready: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        d = defer.ensureDeferred(self._start())
        d.addErrback(self._failed)
        d.chainDeferred(self.ready)

    async def _start(self) -> ConnectionManager:
        from components.bosh.upstream import CoreLink
        from components.bosh.web import Limits, WebFrontend

        config = self.config
        core = CoreLink(self.reactor, config.core.connect, config.core.starttls, config.core.ca_file, config.core.proxy_protocol)
        core.hosts = set(config.hosts)
        self.frontend = WebFrontend(config.http, set(config.hosts), core, self.reactor, Limits(config.stanza_size_limit, config.max_depth))
        for description in config.http.listen:
            await self._listen("http", description, self.frontend.site)
        if config.http.listen_tls:
            factory = self.frontend.tlsFactory(self._serverTLS())
            for description in config.http.listen_tls:
                await self._listen("http_tls", description, factory)
        self.log.info("jabberd-bosh relaying {hosts} to {core}", hosts=", ".join(config.hosts), core=config.core.connect)
        return self

    def _serverTLS(self) -> Any:
        from jabberd import tls

        config = self.config
        certificates = {}
        for host in config.hosts:
            if config.tls.certificate:
                certificates[host] = (config.tls.certificate, config.tls.key or config.tls.certificate)
            else:
                os.makedirs(config.data_dir, exist_ok=True)
                certificates[host] = tls.ensureCertificate(config.data_dir, host)
        return tls.ServerTLS(certificates, defaultHost=config.hosts[0], minVersion=config.tls.min_version, ciphers=config.tls.ciphers)

    async def _listen(self, kind: str, description: str, factory: Any) -> None:
        port = await proxyprotocol.serverFromString(self.reactor, description).listen(factory)
        self.ports.setdefault(kind, []).append(port)
        self.log.info("listening for {kind} on {addr}", kind=kind, addr=port.getHost())

    def port(self, kind: str = "http") -> int:
        """The TCP port of the first listener of C{kind} (tests, logs)."""
        return self.ports[kind][0].getHost().port

    def _failed(self, failure: Any) -> Any:
        self.log.failure("jabberd-bosh failed to start", failure)
        return failure

    @defer.inlineCallbacks
    def stopService(self):
        if not self.running:
            return
        for ports in self.ports.values():
            for port in ports:
                yield port.stopListening()
        self.ports.clear()
        if self.frontend is not None:
            self.frontend.stop()
        yield super().stopService()


class TwistdConnectionManager(Service):
    """As twistd runs it: a failed start stops the process with status 1."""

    log = Logger()

    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager

    def startService(self) -> None:
        super().startService()
        self.manager.startService()
        self.manager.ready.addCallbacks(self._started, self._startFailed)

    def _started(self, manager: Any) -> Any:
        self.log.info("jabberd-bosh ready")
        return manager

    def _startFailed(self, failure: Any) -> None:
        reason = failure.getErrorMessage().strip().splitlines()
        self.log.critical("jabberd-bosh could not start: {reason}", reason=reason[0] if reason else failure.type.__name__)
        _exitStatusAtExit(EXIT_START_FAILED)
        reactor = self.manager.reactor
        if reactor.running:
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    def stopService(self) -> Any:
        super().stopService()
        d = defer.maybeDeferred(self.manager.stopService)

        def stopped(result: Any) -> Any:
            # A clean stop asked for by SIGTERM is a success (as for `twistd jabberd`).
            reactor = self.manager.reactor
            if getattr(reactor, "_exitSignal", None) == signal.SIGTERM:
                reactor._exitSignal = None
            return result

        return d.addCallback(stopped)


def makeService(options: Options) -> TwistdConnectionManager:
    """Load and check the configuration, or print every problem and exit with status 3."""
    try:
        config = load(options["config"], cls=BoshConfig)
    except ConfigError as e:
        source = options["config"] or "the built-in defaults"
        lines = [f"jabberd-bosh: {len(e.problems)} problem(s) in {source}:"] + [f"  {p}" for p in e.problems]
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIG)
    filterLogsBelow(config.log_level)
    return TwistdConnectionManager(ConnectionManager(config))
