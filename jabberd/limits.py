"""
Connection and rate limits against one abusive peer (docs/security.md).

Three small, reactor-free pieces, each O(1) per event and bounded in memory:

  - L{AddressLimit}: open client connections per remote address
    (C{c2s.max_connections_per_address});
  - L{TokenBucket}: bytes per second one stream may send, with a burst
    (C{c2s.max_bytes_per_second}, C{c2s.burst_bytes}); the transport pauses
    reading for the delay it returns, so nothing accepted is dropped;
  - L{AuthThrottle}: a growing delay before a SASL failure is answered, per
    remote address and per account (C{auth.throttle_delay},
    C{auth.throttle_max_delay}).

Time is always passed in (the reactor's C{seconds()}), so tests need no
clock of their own.
"""

from __future__ import annotations

from collections import OrderedDict


class AddressLimit:
    """Count open connections per address; refuse beyond C{maximum} (0 = no limit)."""

    __slots__ = ("maximum", "counts")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.counts: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more connection from C{address}; False (not counted) when over the limit."""
        n = self.counts.get(address, 0)
        if self.maximum and n >= self.maximum:
            return False
        self.counts[address] = n + 1
        return True

    def release(self, address: str) -> None:
        """A connection counted by L{acquire} closed."""
        n = self.counts.get(address, 0) - 1
        if n > 0:
            self.counts[address] = n
        else:
            self.counts.pop(address, None)


class TokenBucket:
    """
    C{rate} bytes per second on average, C{burst} bytes at once.

    L{consume} takes bytes that already arrived (they are never refused) and
    returns how long the reader should pause so the average holds.
    """

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def consume(self, size: int, now: float) -> float:
        """Account for C{size} bytes read at C{now}; the seconds to wait before reading more."""
        elapsed = now - self.last
        self.last = now
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.tokens -= size
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate


#: Failures older than this many seconds are forgotten.
THROTTLE_MEMORY = 600.0
#: Most addresses and accounts remembered at once (least recently failed go first).
THROTTLE_ENTRIES = 100000


class AuthThrottle:
    """
    Remember recent SASL failures per address and per account.

    The first failure is answered at once (a typo costs nothing); the n-th
    within L{THROTTLE_MEMORY} seconds waits C{min(delay * 2 ** (n - 2),
    maxDelay)} seconds before it is answered,
    n counting the larger of the address's and the account's failures; a
    success forgets the account's failures (not the address's: one valid
    account must not reset a guessing run on others).  C{delay} = 0 turns
    the throttle off.
    """

    def __init__(self, delay: float, maxDelay: float, memory: float = THROTTLE_MEMORY, entries: int = THROTTLE_ENTRIES) -> None:
        self.delay = delay
        self.maxDelay = maxDelay
        self.memory = memory
        self.entries = entries
        #: key -> (failures, time of the last one); keys are ("addr", a) or ("user", host, name)
        self._failures: OrderedDict[tuple, tuple[int, float]] = OrderedDict()

    def _count(self, key: tuple, now: float) -> int:
        entry = self._failures.get(key)
        if entry is None:
            return 0
        if now - entry[1] > self.memory:
            del self._failures[key]
            return 0
        return entry[0]

    def _keys(self, address: str | None, account: tuple[str, str] | None) -> list[tuple]:
        keys: list[tuple] = []
        if address:
            keys.append(("addr", address))
        if account is not None and account[1]:
            keys.append(("user",) + account)
        return keys

    def failed(self, address: str | None, account: tuple[str, str] | None, now: float) -> float:
        """Record a failure; return the seconds to wait before answering it."""
        if self.delay <= 0:
            return 0.0
        worst = 0
        for key in self._keys(address, account):
            n = self._count(key, now) + 1
            self._failures[key] = (n, now)
            self._failures.move_to_end(key)
            worst = max(worst, n)
        while len(self._failures) > self.entries:
            self._failures.popitem(last=False)
        if worst <= 1:
            return 0.0
        return min(self.delay * 2 ** min(worst - 2, 32), self.maxDelay)

    def succeeded(self, account: tuple[str, str] | None) -> None:
        """The account authenticated: forget its failures."""
        if account is not None:
            self._failures.pop(("user",) + account, None)

    def __len__(self) -> int:
        return len(self._failures)
