"""
Messages to all occupants (XEP-0045 §7.4): from an occupant with voice, to
every occupant session, with the sender's occupant JID and the client's own
id (muc#stable_id).  The stanza is built once for everybody.  A visitor
(no voice) gets forbidden.
"""

from __future__ import annotations

from twisted.words.xish import domish

from components.muc.constants import MODERATOR, NS_DELAY, PARTICIPANT
from components.muc.features.base import RoomFeature

NS_SID = "urn:xmpp:sid:0"
XML_LANG = ("http://www.w3.org/XML/1998/namespace", "lang")


def forged(child, roomJID: str) -> bool:
    """A delay or stanza-id claiming to come from the room itself: only the room may add those."""
    if not isinstance(child, domish.Element):
        return False
    if child.uri == NS_DELAY and child.name == "delay":
        return child.getAttribute("from") == roomJID
    if child.uri == NS_SID and child.name == "stanza-id":
        return child.getAttribute("by") == roomJID
    return False


class GroupChat(RoomFeature):
    order = 100

    def groupchat(self, room, occupant, session, stanza):
        if occupant.role not in (PARTICIPANT, MODERATOR):
            self.error(stanza, "forbidden", "visitors cannot speak in a moderated room", by=room.jid)
            return True
        message = room.message(occupant.nick, "groupchat", stanza.getAttribute("id"))
        lang = stanza.attributes.get(XML_LANG)
        if lang:
            message.attributes[XML_LANG] = lang
        message.children = [c for c in stanza.children if isinstance(c, domish.Element) and not forged(c, room.jid)]
        room.broadcast(message)
        for hook in self.service.hooks["broadcasted"]:
            hook(room, occupant, message)
        return True
