"""
IQs to occupants (XEP-0045 §6.7, §17.4; XEP-0410): a request from an
occupant to another occupant's room JID is passed to that occupant (its
primary session; a vCard request to its bare JID) with the sender's
occupant JID and an id of the room's, so no real JID is revealed either
way; the answer goes back under the original id.  A ping from an occupant
to its own nickname is answered by the room (XEP-0410 self-ping
optimisation); from anyone else it is not-acceptable, and a non-occupant's
disco request to an occupant is bad-request (§6.7).
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.words.xish import domish

from components.muc.constants import NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VCARD
from components.muc.features.base import RoomFeature
from jabberd.xmlstream import NS_CLIENT

#: Relayed requests awaiting an answer; the oldest are forgotten beyond this.
MAX_PENDING = 10000


class IqRelay(RoomFeature):
    order = 100

    def __init__(self, service) -> None:
        super().__init__(service)
        #: room id -> (room name, answerer JID, requester full JID, original id, requester nick, target nick)
        self.pending: OrderedDict[str, tuple[str, str, str, str | None, str, str]] = OrderedDict()

    def occupantIq(self, room, fromJID, occupant, nick, iq):
        type_ = iq.getAttribute("type")
        if type_ in ("result", "error"):
            self._answer(room, fromJID, iq)
            return True
        payload = next(iq.elements(), None)
        if occupant is None:
            if payload is not None and payload.uri in (NS_DISCO_INFO, NS_DISCO_ITEMS):
                self.error(iq, "bad-request", "only occupants query occupants")
            else:
                self.error(iq, "not-acceptable", "you are not in the room", by=room.jid)
            return True
        if payload is not None and payload.uri == NS_PING and payload.name == "ping" and nick == occupant.nick:
            self.result(iq)  # XEP-0410: you are in the room
            return True
        target = room.occupants.get(nick)
        if target is None:
            self.error(iq, "item-not-found", "no such occupant", by=room.jid)
            return True
        answerer = target.bare if payload is not None and payload.uri == NS_VCARD else target.jid
        relayID = self.service.newID()
        relayed = domish.Element((NS_CLIENT, "iq"))
        relayed["type"] = type_
        relayed["id"] = relayID
        relayed["from"] = room.occupantJID(occupant.nick)
        relayed["to"] = answerer
        relayed.children = [c for c in iq.children if isinstance(c, domish.Element)]
        self.pending[relayID] = (room.name, answerer, fromJID.full(), iq.getAttribute("id"), occupant.nick, nick)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        self.service.send(relayed)
        return True

    def _answer(self, room, fromJID, iq):
        entry = self.pending.get(iq.getAttribute("id") or "")
        if entry is None:
            return
        roomName, answerer, requester, originalID, requesterNick, targetNick = entry
        if roomName != room.name or fromJID.full() != answerer:
            return
        del self.pending[iq["id"]]
        reply = domish.Element((NS_CLIENT, "iq"))
        reply["type"] = iq["type"]
        if originalID is not None:
            reply["id"] = originalID
        reply["from"] = room.occupantJID(targetNick)
        reply["to"] = requester
        reply.children = [c for c in iq.children if isinstance(c, domish.Element)]
        self.service.send(reply)
