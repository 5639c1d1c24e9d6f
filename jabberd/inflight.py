"""
Work in progress, counted, so that shutdown and tests can wait until none is
left (a module's store writes, loads, held requests).
"""

from __future__ import annotations

from typing import TypeVar

from twisted.internet import defer

T = TypeVar("T")


class InFlight:
    """A counter of unfinished work and the Deferreds waiting for it to reach zero."""

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[defer.Deferred] = []

    def begin(self) -> None:
        self.count += 1

    def end(self, result: T = None) -> T:  # type: ignore[assignment]
        """One piece of work finished; passes C{result} through, so it fits C{addBoth}."""
        self.count -= 1
        if self.count == 0 and self._waiters:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)
        return result

    def track(self, d: defer.Deferred) -> defer.Deferred:
        """Count C{d} until it fires; C{d} itself."""
        self.begin()
        return d.addBoth(self.end)

    def whenIdle(self) -> defer.Deferred:
        """Fires once nothing is in progress (at once if nothing is)."""
        if self.count == 0:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._waiters.append(d)
        return d


__all__ = ["InFlight"]
