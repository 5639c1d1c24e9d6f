"""
Voice requests (XEP-0045 §7.13, §8.6): a visitor sends a muc#request form;
every moderator gets an approval form; a moderator who submits it with
muc#request_allow true grants the visitor voice.
"""

from __future__ import annotations

from components.muc.constants import MODERATOR, NS_DATA, NS_MUC_REQUEST, PARTICIPANT, VISITOR
from components.muc.features.base import RoomFeature, child
from components.muc.roomconfig import formValues


def _field(form, var, type_, label, value):
    field = form.addElement("field")
    field["var"] = var
    field["type"] = type_
    if label:
        field["label"] = label
    field.addElement("value", content=value)


class VoiceRequests(RoomFeature):
    order = 60

    def roomMessage(self, room, fromJID, occupant, stanza):
        form = child(stanza, NS_DATA, "x")
        if form is None:
            return False
        values = formValues(form)
        if values.get("FORM_TYPE") != [NS_MUC_REQUEST]:
            return False
        if occupant is None:
            self.error(stanza, "not-acceptable", "you are not in the room", by=room.jid)
            return True
        if "muc#request_allow" in values:
            self._approve(room, occupant, stanza, values)
        else:
            self._request(room, occupant, stanza, values)
        return True

    def _request(self, room, occupant, stanza, values):
        if values.get("muc#role") != [PARTICIPANT]:
            self.error(stanza, "bad-request", "only voice (participant) can be requested", by=room.jid)
            return
        if occupant.role != VISITOR:
            return  # already has voice: nothing to ask
        message = room.message(None, None)
        form = message.addElement((NS_DATA, "x"))
        form["type"] = "form"
        form.addElement("title", content="Voice request")
        form.addElement("instructions", content="To approve this request for voice, select the "
                        "\"Grant voice to this person?\" checkbox and click OK.")
        _field(form, "FORM_TYPE", "hidden", None, NS_MUC_REQUEST)
        _field(form, "muc#role", "list-single", "Requested role", PARTICIPANT)
        _field(form, "muc#jid", "jid-single", "User ID", occupant.jid)
        _field(form, "muc#roomnick", "text-single", "Room Nickname", occupant.nick)
        _field(form, "muc#request_allow", "boolean", "Grant voice to this person?", "false")
        moderators = [s for o in room.occupants.values() if o.role == MODERATOR for s in o.sessions]
        if moderators:
            self.service.broadcast(message, moderators)

    def _approve(self, room, occupant, stanza, values):
        if occupant.role != MODERATOR:
            self.error(stanza, "forbidden", "only moderators grant voice", by=room.jid)
            return
        if values["muc#request_allow"][:1] not in (["1"], ["true"]):
            return
        nick = (values.get("muc#roomnick") or [""])[0]
        target = room.occupants.get(nick)
        if target is not None and target.role == VISITOR:
            target.role = PARTICIPANT
            room.broadcastPresence(target, stanzaID=None)

