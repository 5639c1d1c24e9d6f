"""
Destroying a room (XEP-0045 §10.9): every occupant gets one unavailable
presence with <destroy/> (the reason and alternate venue, if given), and
the room is forgotten, persistent or not.
"""

from __future__ import annotations

from twisted.words.xish import domish

from components.muc.constants import NS_MUC_USER


def destroy(room, reason: str | None = None, alternate: str | None = None, password: str | None = None) -> None:
    element = domish.Element((NS_MUC_USER, "destroy"))
    if alternate:
        element["jid"] = alternate
    if reason:
        element.addElement("reason", content=reason)
    if password:
        element.addElement("password", content=password)
    room.removeAll(None, destroy=element)
    room.service.dropRoom(room)
