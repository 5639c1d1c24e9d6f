"""
The base of a room feature: a small class that hooks room events.

A feature defines only the hooks it needs (a method with the hook's name);
the service collects them at start, in the order of C{order} (lower
first), and calls them with plain dict lookups.  The hooks:

- C{checkJoin(room, join) -> (condition, text[, type]) | None}: refuse an entry;
- C{checkNick(room, occupant, nick) -> refusal | None}: refuse a nickname change;
- C{afterJoin(room, occupant, session, join)}: after the self-presence (history, subject);
- C{beforeMessage(room, occupant, stanza) -> bool}: True = refused (rate limits);
- C{groupchat(room, occupant, session, stanza) -> bool}: True = handled;
- C{broadcasted(room, occupant, template)}: a groupchat message went out (history);
- C{roomMessage(room, fromJID, occupant|None, stanza) -> bool}: a non-groupchat message to the room;
- C{occupantMessage(room, fromJID, occupant|None, nick, stanza) -> bool}: a message to room/nick;
- C{occupantIq(room, fromJID, occupant|None, nick, iq) -> bool}: an iq to room/nick;
- C{occupantError(room, occupant, session, stanza) -> bool}: an error from an occupant's session;
- C{configChanged(room, old, new)}: after an owner changed the configuration;
- C{discoFeatures(room) -> [var]}, C{roomInfo(room) -> [(var, label, values)]},
  C{discoItems(room, requestor) -> [jid]}: service discovery of the room.

C{iqs} maps (type, namespace, element name) of an iq to the room to the
name of the method that answers it: C{method(room, iq, fromJID, occupant|None)}.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.words.xish import domish

from jabberd.xmlstream import iqResult


class RoomFeature:
    """Base class of the features in this package (see the module docstring)."""

    order: ClassVar[int] = 100
    iqs: ClassVar[dict[tuple[str, str, str], str]] = {}

    def __init__(self, service: Any) -> None:
        self.service = service

    @property
    def clock(self) -> Any:
        return self.service.clock

    def result(self, iq: domish.Element, payload: domish.Element | None = None) -> None:
        """Answer C{iq} with a result (from the address it was sent to)."""
        reply = iqResult(iq)
        if payload is not None:
            reply.addChild(payload)
        self.service.send(reply)

    def error(self, stanza: domish.Element, condition: str, text: str | None = None, **kw: Any) -> None:
        self.service.error(stanza, condition, text, **kw)


def child(stanza: domish.Element, uri: str, name: str) -> domish.Element | None:
    """The first child element C{uri}:C{name} of C{stanza}, or None."""
    return next(stanza.elements(uri, name), None)


def text(element: domish.Element | None) -> str | None:
    """The text of an optional element."""
    return str(element) if element is not None else None
