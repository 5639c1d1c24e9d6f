"""
Bound client sessions per account: the in-memory state the hot path reads.

Routing a stanza to a full JID, choosing the resources for a bare-JID
message and broadcasting presence all read this registry; nothing here
touches the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from jabberd.bus import SESSION_BOUND, SESSION_ENDED, EventBus

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession


class SessionManager:
    """Who is connected, by bare JID and resource."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._accounts: dict[str, dict[str, ClientSession]] = {}

    def bind(self, session: ClientSession) -> None:
        """
        Register a newly bound session; an existing session with the same
        full JID is replaced and receives the C{<conflict/>} stream error
        (RFC 6120 §7.7.2.2: the new session wins).
        """
        resources = self._accounts.setdefault(session.bareJID, {})
        old = resources.get(session.resource)
        if old is not None and old is not session:
            self.unbind(old)
            old.terminate("conflict", "replaced by a new session with the same resource")
            resources = self._accounts.setdefault(session.bareJID, {})
        resources[session.resource] = session
        self._bus.notify(SESSION_BOUND, session)

    def unbind(self, session: ClientSession) -> None:
        """Forget C{session} and tell the modules it ended (once)."""
        resources = self._accounts.get(session.bareJID)
        if not resources or resources.get(session.resource) is not session:
            return
        del resources[session.resource]
        if not resources:
            del self._accounts[session.bareJID]
        self._bus.notify(SESSION_ENDED, session)

    def get(self, bareJID: str, resource: str) -> ClientSession | None:
        """The session bound to C{bareJID}/C{resource}, if any."""
        resources = self._accounts.get(bareJID)
        return resources.get(resource) if resources else None

    def resources(self, bareJID: str) -> dict[str, ClientSession]:
        """Every session of an account by resource (empty when offline); do not mutate."""
        return self._accounts.get(bareJID, {})

    def available(self, bareJID: str) -> list[ClientSession]:
        """The account's sessions that have sent available presence."""
        return [s for s in self._accounts.get(bareJID, {}).values() if s.available]

    def all(self) -> Iterator[ClientSession]:
        """Every bound session (shutdown, statistics)."""
        for resources in list(self._accounts.values()):
            yield from list(resources.values())

    def count(self) -> int:
        """How many sessions are bound."""
        return sum(len(r) for r in self._accounts.values())
