"""
Private messages (XEP-0045 §7.5): from an occupant to another occupant's
room JID, delivered to every session of the recipient (as recommended),
from the sender's occupant JID, with an <x xmlns='...muc#user'/> for
carbons.  Who may send them is the room's muc#roomconfig_allowpm.
"""

from __future__ import annotations

from twisted.words.xish import domish

from components.muc.constants import MODERATOR, NS_MUC_USER, PARTICIPANT
from components.muc.features.base import RoomFeature
from jabberd.xmlstream import NS_CLIENT

ALLOWED = {
    "anyone": None,
    "participants": (PARTICIPANT, MODERATOR),
    "moderators": (MODERATOR,),
    "none": (),
}


class PrivateMessages(RoomFeature):
    order = 100

    def occupantMessage(self, room, fromJID, occupant, nick, stanza):
        if stanza.getAttribute("type") == "groupchat":
            self.error(stanza, "bad-request", "a private message is not of type groupchat", by=room.jid)
            return True
        if occupant is None:
            self.error(stanza, "not-acceptable", "only occupants may send private messages", by=room.jid)
            return True
        target = room.occupants.get(nick)
        if target is None:
            self.error(stanza, "item-not-found", "no such occupant", by=room.jid)
            return True
        roles = ALLOWED[room.config.allowPM]
        if roles is not None and occupant.role not in roles:
            self.error(stanza, "forbidden", "you may not send private messages in this room", by=room.jid)
            return True
        message = domish.Element((NS_CLIENT, "message"))
        message.attributes.update({k: v for k, v in stanza.attributes.items() if k not in ("to", "from")})
        message["from"] = room.occupantJID(occupant.nick)
        message.children = [c for c in stanza.children if isinstance(c, domish.Element)]
        if not any(c.uri == NS_MUC_USER and c.name == "x" for c in message.children):
            message.children.append(domish.Element((NS_MUC_USER, "x")))
        self.service.broadcast(message, list(target.sessions))
        return True
