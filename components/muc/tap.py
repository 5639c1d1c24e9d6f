"""
The MUC as its own process: C{twistd -n jabberd-muc --config etc/muc.toml}.

L{MucComponentService} opens the store (the server's database, the MUC's
own tables, migrated on start), loads the persistent rooms, then connects
to the server over XEP-0114 and keeps reconnecting (with backoff) whenever
the connection is lost.  Stopping tells every occupant (status 332), closes
the connection and the store.

Exit statuses are the server's (docs/operations.md): 3 for a configuration
problem (printed one per line with its key path), 1 when starting fails.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from jabberd.tap import EXIT_CONFIG, EXIT_START_FAILED, _exitStatusAtExit, filterLogsBelow


class Options(usage.Options):
    synopsis = "[--config PATH]"
    longdesc = (
        "Run the jabberd multi-user chat (XEP-0045) as an external component (XEP-0114)"
        " connected to a jabberd (or any) XMPP server. See etc/muc.toml and docs/muc.md."
    )
    optParameters = [["config", "c", None, "path to muc.toml"]]


class MucComponentService(MultiService):
    """Store, MUC service and XEP-0114 connection, started in that order."""

    log = Logger()

    def __init__(self, config: Any, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        from components import muc
        from components.base import ExternalComponent
        from jabberd.store import Store

        self.config = config
        self.reactor = reactor
        link = config.component
        self.store = Store(config.databaseURL(), reactor=reactor)
        self.muc = muc.MUCService(link.domain, config.muc, store=self.store, clock=reactor)
        self.component = ExternalComponent(
            link.host, link.port, link.domain, link.secret, muc.handlers(self.muc), maxDelay=link.reconnect_max_delay,
        )
        self.ready: defer.Deferred = defer.Deferred()
        self.failed = False

    def startService(self) -> None:
        super().startService()
        d = defer.ensureDeferred(self._start())
        d.chainDeferred(self.ready)

    async def _start(self) -> "MucComponentService":
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.store.start()
        await self.muc.start()
        self.component.startService()
        link = self.config.component
        self.log.info("jabberd-muc serving {domain} through {host}:{port}", domain=link.domain, host=link.host, port=link.port)
        return self

    @defer.inlineCallbacks
    def stopService(self):
        if not self.running:
            return
        self.muc.shutdown()
        if self.component.running:
            yield self.component.stopService()
        yield self.muc.whenIdle()
        yield self.store.close()
        yield super().stopService()


class TwistdMucService(MultiService):
    """What twistd runs: the component, and exit status 1 if it cannot start."""

    log = Logger()

    def __init__(self, service: MucComponentService, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.reactor = reactor
        self.service = service
        service.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        self.service.ready.addErrback(self._failed)

    def stopService(self) -> Any:
        d = super().stopService()

        def stopped(result: Any) -> Any:
            # As `twistd jabberd`: a clean stop on SIGTERM exits 0 (see jabberd.tap).
            if getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
                self.reactor._exitSignal = None
            return result

        return d.addCallback(stopped)

    def _failed(self, failure: Any) -> None:
        self.log.critical("jabberd-muc could not start: {reason}", reason=failure.getErrorMessage().strip().splitlines()[:1])
        _exitStatusAtExit(EXIT_START_FAILED)
        if self.reactor.running:
            self.reactor.stop()
        else:
            self.reactor.callWhenRunning(self.reactor.stop)


def makeService(options: Options) -> TwistdMucService:
    from components.config import loadMuc
    from jabberd.config import ConfigError

    try:
        config = loadMuc(options["config"])
    except ConfigError as e:
        source = options["config"] or "the built-in defaults"
        count = f"{len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}"
        sys.stderr.write("\n".join([f"jabberd-muc: {count} in {source}:"] + [f"  {p}" for p in e.problems]) + "\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIG)
    filterLogsBelow(config.log_level)
    return TwistdMucService(MucComponentService(config))
