"""
The roster (RFC 6121 §2): fetching it, keeping it current, changing it.

Built on tx_xmpp's RosterClientProtocol (request and push parsing, the
"push only from our own account" check); this adds the in-memory copy
that pushes keep up to date and roster versioning (§2.6): given the last
version and items, the server may answer "unchanged" and send only pushes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID
from tx_xmpp.xmppim import RosterClientProtocol, RosterItem, RosterRequest

from jabberd import jid as J

if TYPE_CHECKING:
    from jabberd.client.client import Client

__all__ = ["NS_ROSTERVER", "Roster", "RosterItem", "subscription"]

NS_ROSTERVER = "urn:xmpp:features:rosterver"


def subscription(item: RosterItem) -> str:
    """The item's subscription state as RFC 6121 writes it: none, to, from or both."""
    return {(False, False): "none", (True, False): "to", (False, True): "from", (True, True): "both"}[
        item.subscriptionTo, item.subscriptionFrom
    ]


class Roster(RosterClientProtocol):
    """
    @ivar items: bare JID -> L{RosterItem}, as of the last fetch and pushes.
    @ivar version: the roster version (§2.6) of C{items}, when the server versions.
    """

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.items: dict[str, RosterItem] = {}
        self.version: str | None = None
        self._listeners: list[Callable[[RosterItem], object]] = []

    @property
    def versioning(self) -> bool:
        """Whether the server offers roster versioning (the stream feature of §2.6.1)."""
        return (NS_ROSTERVER, "ver") in self.client.features

    def addListener(self, listener: Callable[[RosterItem], object]) -> None:
        """Call C{listener(item)} for every roster push (C{item.remove} for removals)."""
        self._listeners.append(listener)

    def removeListener(self, listener: Callable[[RosterItem], object]) -> None:
        self._listeners.remove(listener)

    def get(self, version: str | None = None, cached: dict[str, RosterItem] | None = None) -> defer.Deferred:
        """
        Fetch the roster; fires with L{items}.

        With roster versioning and a cached C{version} plus its C{cached}
        items, the server may reply "no change" (empty result): the cached
        items are then kept and any changes arrive as pushes.
        """
        if not self.versioning:
            ask = None
        elif version is not None and cached is not None:
            ask = version
        else:
            ask = ""  # §2.6.2: "I support versioning but have nothing cached"

        def store(roster):
            if roster is None:  # unchanged since `version`
                self.items = dict(cached or {})
                self.version = version
            else:
                self.items = {item.entity.userhost(): item for item in roster.values()}
                self.version = roster.version
            return self.items

        return self.getRoster(ask).addCallback(store)

    def add(self, contact: JID | str, name: str | None = None, groups: Iterable[str] = ()) -> defer.Deferred:
        """Add or update C{contact} with a handle and groups (§2.3); the push follows."""
        entity = J.parse(contact) if isinstance(contact, str) else contact
        return self.setItem(RosterItem(J.parse(entity.userhost()), name=name or "", groups=set(groups)))

    def remove(self, contact: JID | str) -> defer.Deferred:
        """Remove C{contact}, which also cancels subscriptions both ways (§2.5)."""
        entity = J.parse(contact) if isinstance(contact, str) else contact
        return self.removeItem(J.parse(entity.userhost()))

    # -- pushes (§2.1.6) ---------------------------------------------------------------

    def setReceived(self, request: RosterRequest) -> None:
        self.items[request.item.entity.userhost()] = request.item
        self._pushed(request)

    def removeReceived(self, request: RosterRequest) -> None:
        self.items.pop(request.item.entity.userhost(), None)
        self._pushed(request)

    def _pushed(self, request: RosterRequest) -> None:
        if request.version is not None:
            self.version = request.version
        for listener in list(self._listeners):
            listener(request.item)
