"""
The event bus: how features plug into the server without the core knowing them.

Handlers are keyed by tuples built from the stanza (L{iq}, L{message},
L{presence}) or by lifecycle names (L{event}); firing a key calls its
handlers from the highest priority down until one returns C{True}.  Lookups
are one dict access, so the bus costs nothing measurable per stanza.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

from twisted.logger import Logger

Handler = Callable[..., Any]

# Named priorities: modules pick one rather than inventing numbers.
PRIORITY_FIRST = 1000  # policy that must see everything first (privacy, limits)
PRIORITY_HIGH = 500
PRIORITY_NORMAL = 0  # the feature that implements the protocol
PRIORITY_LOW = -500
PRIORITY_LAST = -1000  # fallbacks (offline storage, default errors)

# Who an iq is addressed to, from the sender's point of view:
SELF = "self"  # no 'to', or the sender's own bare JID: the server acts for the account
BARE = "bare"  # another local account's bare JID: the server acts for that account
HOST = "host"  # a hosted domain: the server itself


def iq(type_: str, target: str, namespace: str, name: str) -> tuple:
    """Key for an iq of C{type_} ('get'/'set') to C{target} with payload C{{namespace}name}."""
    return ("iq", type_, target, namespace, name)


def message(kind: str) -> tuple:
    """Key for local message delivery: C{kind} is 'bare' or 'full' (the recipient form)."""
    return ("message", kind)


def presence(kind: str) -> tuple:
    """
    Key for presence handling.  C{kind}: 'outbound' (a local client's
    presence without 'to': broadcast), 'directed' (a local client's presence
    with a 'to', any type: sender-side processing), 'inbound' (presence to a
    local account, any origin: recipient-side processing), 'host' (to a
    hosted domain).
    """
    return ("presence", kind)


def event(name: str) -> tuple:
    """Key for a lifecycle event such as 'session-bound' or 'account-deleted'."""
    return ("event", name)


# Lifecycle events fired by the core (arguments in brackets):
SESSION_BOUND = event("session-bound")  # (session)
SESSION_ENDED = event("session-ended")  # (session)
PRESENCE_AVAILABLE = event("presence-available")  # (session) first available presence
ACCOUNT_CREATED = event("account-created")  # (host, username)
ACCOUNT_DELETED = event("account-deleted")  # (host, username)
STREAM_FEATURES = event("stream-features")  # (session, features element) after bind
SERVER_STARTED = event("server-started")  # ()
SERVER_STOPPING = event("server-stopping")  # ()


class EventBus:
    """Priority-ordered handler lists keyed by hashable keys."""

    log = Logger()

    def __init__(self) -> None:
        self._handlers: dict[Hashable, list[tuple[int, int, Handler]]] = {}
        self._order = 0

    def on(self, key: Hashable, handler: Handler, priority: int = PRIORITY_NORMAL) -> Callable[[], None]:
        """Register C{handler} for C{key}; return a callable that unregisters it."""
        self._order += 1
        entry = (priority, -self._order, handler)
        handlers = self._handlers.setdefault(key, [])
        handlers.append(entry)
        handlers.sort(key=lambda e: (e[0], e[1]), reverse=True)

        def off() -> None:
            lst = self._handlers.get(key)
            if lst and entry in lst:
                lst.remove(entry)
                if not lst:
                    del self._handlers[key]

        return off

    def has(self, key: Hashable) -> bool:
        """Whether any handler is registered for C{key}."""
        return key in self._handlers

    def keys(self) -> list[Hashable]:
        """Every key with at least one handler (disco derives features from these)."""
        return list(self._handlers)

    def fire(self, key: Hashable, *args: Any) -> bool:
        """
        Call handlers for C{key} until one returns C{True}; return whether one did.

        A handler that raises is logged and skipped: one broken feature must
        not take the stanza path down for everyone.
        """
        handlers = self._handlers.get(key)
        if not handlers:
            return False
        for _, _, handler in tuple(handlers):
            try:
                if handler(*args) is True:
                    return True
            except Exception:
                self.log.failure("handler {handler!r} for {key!r} failed", handler=handler, key=key)
        return False

    def notify(self, key: Hashable, *args: Any) -> None:
        """Call every handler for C{key} (lifecycle events: nobody stops them)."""
        for _, _, handler in tuple(self._handlers.get(key, ())):
            try:
                handler(*args)
            except Exception:
                self.log.failure("handler {handler!r} for {key!r} failed", handler=handler, key=key)
