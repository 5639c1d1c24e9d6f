"""
Messages (RFC 6121 §5): sending chat, normal and headline messages to bare
or full JIDs, and hearing the ones that arrive.

Incoming messages are parsed into L{Message} (sender through the bounded
JID cache, so a flood of distinct senders cannot grow memory) and handed to
every listener; error messages come with their L{StanzaError}, which is how
a sender learns that a message bounced.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.subprotocols import XMPPHandler

from jabberd import jid as J

if TYPE_CHECKING:
    from jabberd.client.client import Client

__all__ = ["MESSAGE_TYPES", "Message", "Messages"]

#: RFC 6121 §5.2.2; "normal" is what a message without a type means.
MESSAGE_TYPES = ("chat", "error", "groupchat", "headline", "normal")

log = Logger()


def _jid(value: str | None) -> JID | None:
    return J.parse(value) if value else None


def _text(element: domish.Element, name: str) -> str | None:
    for child in element.elements():
        if child.name == name and child.uri == element.uri:
            return str(child)
    return None


@dataclass
class Message:
    """One received message; C{element} is the stanza as it arrived."""

    sender: JID | None
    recipient: JID | None
    type: str
    id: str | None
    body: str | None
    subject: str | None
    thread: str | None
    error: jerror.StanzaError | None
    element: domish.Element

    @classmethod
    def fromElement(cls, element: domish.Element) -> Message:
        """Parse a C{<message/>}; raises InvalidJID for a malformed address."""
        kind = element.getAttribute("type", "normal")
        if kind not in MESSAGE_TYPES:
            kind = "normal"  # RFC 6121 §5.2.2: unknown types are treated as normal
        return cls(
            sender=_jid(element.getAttribute("from")),
            recipient=_jid(element.getAttribute("to")),
            type=kind,
            id=element.getAttribute("id"),
            body=_text(element, "body"),
            subject=_text(element, "subject"),
            thread=_text(element, "thread"),
            error=jerror.exceptionFromStanza(element) if kind == "error" else None,
            element=element,
        )


class Messages(XMPPHandler):
    """Send messages; call listeners for each message received."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self._listeners: list[Callable[[Message], object]] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self._onMessage)

    def addListener(self, listener: Callable[[Message], object]) -> None:
        """Call C{listener(message)} for every incoming message (errors included)."""
        self._listeners.append(listener)

    def removeListener(self, listener: Callable[[Message], object]) -> None:
        self._listeners.remove(listener)

    def _onMessage(self, element: domish.Element) -> None:
        try:
            message = Message.fromElement(element)
        except J.InvalidJID:
            log.debug("dropping a message with a malformed address")
            return
        for listener in list(self._listeners):
            try:
                listener(message)
            except Exception:
                log.failure("message listener failed")

    def build(
        self,
        to: JID | str,
        body: str | None = None,
        type: str = "normal",
        subject: str | None = None,
        thread: str | None = None,
        id: str | None = None,
    ) -> domish.Element:
        """The C{<message/>} L{send} would send (to add payloads before sending)."""
        if type not in MESSAGE_TYPES or type == "error":
            raise ValueError(f"message type must be one of chat, groupchat, headline, normal; not {type!r}")
        recipient = J.parse(to) if isinstance(to, str) else to
        message = domish.Element((None, "message"))
        message["to"] = recipient.full()
        message["type"] = type
        message["id"] = id or secrets.token_hex(8)
        if subject is not None:
            message.addElement("subject", content=subject)
        if body is not None:
            message.addElement("body", content=body)
        if thread is not None:
            message.addElement("thread", content=thread)
        return message

    def send(
        self,
        to: JID | str,
        body: str | None = None,
        type: str = "normal",
        subject: str | None = None,
        thread: str | None = None,
        id: str | None = None,
    ) -> str:
        """
        Send a message to a bare or full JID; returns its id, so an error
        bounced later can be matched to it.

        @raise ValueError: an unknown type; L{InvalidJID} for a bad address.
        """
        message = self.build(to, body, type, subject, thread, id)
        self.client.send(message)
        return message["id"]
