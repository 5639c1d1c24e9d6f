"""
The room subject (XEP-0045 §7.2.15, §8.1): a groupchat message with a
<subject/> and neither <body/> nor <thread/> changes it, if the sender is a
moderator or the room lets participants change it; every newcomer gets it
after the history (an empty <subject/> when there is none), stamped with
when it was set.
"""

from __future__ import annotations

from components.muc.constants import MODERATOR, NS_DELAY, PARTICIPANT
from components.muc.features.base import RoomFeature
from components.muc.room import stamp
from jabberd.xmlstream import NS_CLIENT


class Subject(RoomFeature):
    order = 20

    def groupchat(self, room, occupant, session, stanza):
        subject = next(stanza.elements(NS_CLIENT, "subject"), None)
        if subject is None or next(stanza.elements(NS_CLIENT, "body"), None) is not None \
                or next(stanza.elements(NS_CLIENT, "thread"), None) is not None:
            return False  # §8.1: with a body or thread it is an ordinary message
        allowed = occupant.role == MODERATOR or (room.config.changeSubject and occupant.role == PARTICIPANT)
        if not allowed:
            self.error(stanza, "forbidden", "you may not change the subject", by=room.jid)
            return True
        room.subject = str(subject)
        room.subjectNick = occupant.nick
        room.subjectTime = self.clock.seconds()
        message = room.message(occupant.nick, "groupchat", stanza.getAttribute("id"))
        message.addElement("subject", content=room.subject)
        room.broadcast(message)
        if room.config.persistent and not room.locked:
            self.service.saveRoom(room)
        return True

    def afterJoin(self, room, occupant, session, join):
        message = room.message(room.subjectNick if room.subject is not None else None, "groupchat")
        message.addElement("subject", content=room.subject or "")
        if room.subjectTime is not None:
            delay = message.addElement((NS_DELAY, "delay"))
            delay["from"] = room.jid
            delay["stamp"] = stamp(room.subjectTime)
        self.service.broadcast(message, [session])


