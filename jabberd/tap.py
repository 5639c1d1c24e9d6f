"""
twistd glue: `twistd -n jabberd [--config PATH]` builds an XMPPServer.

The options stay few on purpose: everything else is in the TOML file, so
the server, `jabberdctl` and the docs agree on one source of settings.

What this adds around L{XMPPServer} is what an operator (or systemd) reads
from a process: its output and its exit status.

  - A configuration problem is reported before anything starts, one line
    per problem with its key path, and the process exits with status 3,
    without a traceback (the same checks as `jabberdctl check`).
  - A failure while starting (a port already in use, the database down)
    stops the process with status 1 instead of leaving a server running
    that listens on nothing.
  - The configuration's C{log_level} filters what twistd writes.
  - SIGTERM after a clean shutdown (every client told `<system-shutdown/>`,
    the store closed) exits with status 0.  twistd's own habit is to
    re-raise the signal so the process dies "killed by SIGTERM"; for a
    service manager and for scripts, a clean stop on request is a success.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

#: Exit statuses of `twistd jabberd`, documented in docs/operations.md.
EXIT_START_FAILED = 1
EXIT_CONFIG = 3


class Options(usage.Options):
    """Command line of `twistd jabberd`."""

    synopsis = "[--config PATH]"
    longdesc = (
        "Run the jabberd XMPP server. Without --config it serves localhost with a"
        " SQLite store and a self-signed certificate in $JABBERD_DATA_DIR (else"
        " ~/.local/share/jabberd). Check a configuration with `jabberdctl check`."
    )
    optParameters = [
        ["config", "c", None, "path to jabberd.toml (default: built-in defaults, serving localhost)"],
    ]


class TwistdService(MultiService):
    """
    The XMPPServer as twistd runs it: reports how startup went and turns
    the outcome into the process's exit status (see the module docstring).

    An application embedding jabberd uses L{XMPPServer} directly and keeps
    its own policy.
    """

    log = Logger()

    def __init__(self, server: Any, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.reactor = reactor
        self.server = server
        self.failed = False
        server.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        self.server.ready.addCallbacks(self._started, self._startFailed)

    def _started(self, server: Any) -> Any:
        modules = ", ".join(server.modules.modules) or "none"
        self.log.info("jabberd ready; modules: {modules}", modules=modules)
        return server

    def _startFailed(self, failure: Any) -> None:
        """
        Stop with status 1 and one line saying why.

        XMPPServer has already logged the traceback; the line here is for
        the operator scanning the end of the log.
        """
        self.failed = True
        reason = failure.getErrorMessage().strip().splitlines()
        self.log.critical(
            "jabberd could not start: {reason}", reason=reason[0] if reason else failure.type.__name__
        )
        _exitStatusAtExit(EXIT_START_FAILED)
        if self.reactor.running:
            self.reactor.stop()
        else:
            self.reactor.callWhenRunning(self.reactor.stop)

    def stopService(self) -> Any:
        d = super().stopService()

        def stopped(result: Any) -> Any:
            # A clean stop asked for by SIGTERM is a success: stop twistd
            # from re-raising the signal (see the module docstring).
            # _exitSignal is what twistd reads (the reactor's
            # _ISupportsExitSignalCapturing) to decide to re-raise.
            if not self.failed and getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
                self.reactor._exitSignal = None
            return result

        return d.addCallback(stopped)


def _exitStatusAtExit(status: int) -> None:
    """
    Make the interpreter exit with C{status} once twistd is done.

    twistd's runner returns normally after the reactor stops, which makes
    the console script exit 0, and exceptions raised inside the reactor are
    caught and logged.  An atexit handler runs after twistd has removed its
    pid file and closed its logs; it is registered last, so it runs first,
    flushes what is buffered, and ends the process with the status.
    """

    def exitWith() -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        os._exit(status)

    atexit.register(exitWith)


def makeService(options: Options) -> TwistdService:
    """
    Load and check the configuration and return the server service, or
    print the problems and exit with status 3.
    """
    from jabberd.ctl import configurationProblems
    from jabberd.service import XMPPServer

    config, problems = configurationProblems(options["config"])
    if problems:
        source = options["config"] or "the built-in defaults"
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = [f"jabberd: {count} in {source}:"] + [f"  {p}" for p in problems]
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIG)
    assert config is not None
    try:
        server = XMPPServer(config)
    except (OSError, ImportError) as e:
        # The store opens its engine here (creating the SQLite folder, loading
        # the driver): an environment problem, not a bug, so one line.
        sys.stderr.write(f"jabberd: could not start: {e}\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_START_FAILED)
    filterLogsBelow(config.log_level)
    return TwistdService(server)


def filterLogsBelow(levelName: str, beginner: Any = None) -> None:
    """
    Make twistd's log observer drop events less severe than C{levelName}.

    twistd calls makeService before it starts logging, and then hands its
    observer (file or stdout, chosen by its own options) to
    C{globalLogBeginner.beginLoggingTo}; wrapping that one call is the only
    point where a plugin can put a filter in front of the observer without
    replacing twistd's choice of where the log goes.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
    )

    beginner = globalLogBeginner if beginner is None else beginner
    level = LogLevel.levelWithName(levelName)
    if level == LogLevel.debug:
        return  # nothing to drop
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    original = beginner.beginLoggingTo

    def beginLoggingTo(observers: Any, *args: Any, **kw: Any) -> Any:
        del beginner.beginLoggingTo  # once: back to the class's method
        filtered = [FilteringLogObserver(o, [predicate]) for o in observers]
        return original(filtered, *args, **kw)

    beginner.beginLoggingTo = beginLoggingTo
