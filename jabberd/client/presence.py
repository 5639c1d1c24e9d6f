"""
Presence (RFC 6121 §4) and presence subscriptions (RFC 6121 §3).

Our side: available presence with show/status/priority (broadcast, or
directed to one JID), unavailable, and the subscription verbs. Every
available presence we send carries our entity capabilities (XEP-0115).

Their side: each presence is parsed into L{Presence}; the availability of
contacts is tracked per resource (L{PresenceHandler.resources}), caps in
it are handed to L{Caps} for verification, and listeners hear everything,
subscription requests included (approving them is the application's call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.subprotocols import XMPPHandler

from jabberd import jid as J
from jabberd.client.caps import NS_CAPS

if TYPE_CHECKING:
    from jabberd.client.client import Client

__all__ = ["SHOW_VALUES", "SUBSCRIPTION_TYPES", "Presence", "PresenceHandler"]

#: RFC 6121 §4.7.2.1
SHOW_VALUES = ("away", "chat", "dnd", "xa")
#: RFC 6121 §3
SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

log = Logger()


@dataclass
class Presence:
    """
    One received presence. C{type} is "available" for presence without a
    type attribute; C{caps} is its XEP-0115 C{<c/>} element, if any.
    """

    sender: JID | None
    recipient: JID | None
    type: str
    show: str | None
    status: str | None
    priority: int
    caps: domish.Element | None
    error: jerror.StanzaError | None
    element: domish.Element

    @classmethod
    def fromElement(cls, element: domish.Element) -> Presence:
        """Parse a C{<presence/>}; raises InvalidJID for a malformed address."""
        kind = element.getAttribute("type", "available")
        show = status = None
        priority = 0
        caps = None
        for child in element.elements():
            if child.name == "show" and child.uri == element.uri:
                value = str(child).strip()
                show = value if value in SHOW_VALUES else None
            elif child.name == "status" and child.uri == element.uri and status is None:
                status = str(child)
            elif child.name == "priority" and child.uri == element.uri:
                try:
                    priority = max(-128, min(127, int(str(child).strip())))
                except ValueError:
                    pass
            elif child.name == "c" and child.uri == NS_CAPS:
                caps = child
        sender, recipient = element.getAttribute("from"), element.getAttribute("to")
        return cls(
            sender=J.parse(sender) if sender else None,
            recipient=J.parse(recipient) if recipient else None,
            type=kind,
            show=show,
            status=status,
            priority=priority,
            caps=caps,
            error=jerror.exceptionFromStanza(element) if kind == "error" else None,
            element=element,
        )


class PresenceHandler(XMPPHandler):
    """Send our presence and subscriptions; track and report everyone else's."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        #: bare JID -> resource ("" for a bare-JID presence) -> last available Presence
        self.contacts: dict[str, dict[str, Presence]] = {}
        self._listeners: list[Callable[[Presence], object]] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/presence", self._onPresence)

    def addListener(self, listener: Callable[[Presence], object]) -> None:
        """Call C{listener(presence)} for every incoming presence."""
        self._listeners.append(listener)

    def removeListener(self, listener: Callable[[Presence], object]) -> None:
        self._listeners.remove(listener)

    def resources(self, contact: JID | str) -> dict[str, Presence]:
        """The available resources of C{contact} (bare JID) and their presence."""
        bare = (J.parse(contact) if isinstance(contact, str) else contact).userhost()
        return dict(self.contacts.get(bare, {}))

    def _onPresence(self, element: domish.Element) -> None:
        try:
            presence = Presence.fromElement(element)
        except J.InvalidJID:
            log.debug("dropping a presence with a malformed address")
            return
        sender = presence.sender
        if sender is not None:
            bare, resource = sender.userhost(), sender.resource or ""
            if presence.type == "available":
                self.contacts.setdefault(bare, {})[resource] = presence
                if presence.caps is not None:
                    self.client.caps.advertised(sender, presence.caps)
            elif presence.type in ("unavailable", "error"):
                resources = self.contacts.get(bare, {})
                resources.pop(resource, None)
                if not resources or not resource:
                    self.contacts.pop(bare, None)
        for listener in list(self._listeners):
            try:
                listener(presence)
            except Exception:
                log.failure("presence listener failed")

    # -- our presence ---------------------------------------------------------------

    def available(
        self,
        show: str | None = None,
        status: str | None = None,
        priority: int = 0,
        to: JID | str | None = None,
    ) -> None:
        """
        Send available presence: broadcast, or directed to C{to} (RFC 6121 §4.6).

        @param show: None (plain available), "away", "chat", "dnd" or "xa".
        @param priority: -128..127; negative means "never deliver bare-JID messages here".
        """
        if show is not None and show not in SHOW_VALUES:
            raise ValueError(f"show must be one of {', '.join(SHOW_VALUES)}, not {show!r}")
        if not -128 <= priority <= 127:
            raise ValueError("priority must be between -128 and 127")
        presence = self._element(None, to)
        if show is not None:
            presence.addElement("show", content=show)
        if status is not None:
            presence.addElement("status", content=status)
        if priority:
            presence.addElement("priority", content=str(priority))
        presence.addChild(self.client.caps.element())
        self.client.send(presence)

    def unavailable(self, status: str | None = None, to: JID | str | None = None) -> None:
        """Send unavailable presence: broadcast, or directed to C{to}."""
        presence = self._element("unavailable", to)
        if status is not None:
            presence.addElement("status", content=status)
        self.client.send(presence)

    # -- subscriptions (RFC 6121 §3) --------------------------------------------------

    def subscribe(self, contact: JID | str) -> None:
        """Ask C{contact} for its presence (§3.1.1)."""
        self._subscription("subscribe", contact)

    def approve(self, contact: JID | str) -> None:
        """Let C{contact} see our presence: answer (or pre-approve, §3.4) its request."""
        self._subscription("subscribed", contact)

    def deny(self, contact: JID | str) -> None:
        """Refuse C{contact}'s subscription request (§3.1.4)."""
        self._subscription("unsubscribed", contact)

    def cancel(self, contact: JID | str) -> None:
        """Stop C{contact} seeing our presence after all (§3.2)."""
        self._subscription("unsubscribed", contact)

    def unsubscribe(self, contact: JID | str) -> None:
        """Stop receiving C{contact}'s presence (§3.3)."""
        self._subscription("unsubscribe", contact)

    def _subscription(self, kind: str, contact: JID | str) -> None:
        # §3.1.1: subscription requests go to the bare JID.
        bare = (J.parse(contact) if isinstance(contact, str) else contact).userhost()
        self.client.send(self._element(kind, bare))

    @staticmethod
    def _element(kind: str | None, to: JID | str | None) -> domish.Element:
        presence = domish.Element((None, "presence"))
        if to is not None:
            presence["to"] = J.parse(to).full() if isinstance(to, str) else to.full()
        if kind is not None:
            presence["type"] = kind
        return presence
