"""
The muc#owner iq (XEP-0045 §10): the configuration form, instant rooms
(an empty submitted form), reserved rooms (a filled one), cancelling the
initial configuration (the room is destroyed), and later changes, all for
owners only (forbidden otherwise).

Submitting unlocks a new room (§10.1.2–§10.1.3) and stores it when it is
persistent; a later change is told to the room (C{configChanged} hooks:
status codes, members-only removals) and written behind.  The
roomadmins/roomowners fields are full lists (§10.2), turned into
affiliation changes checked like muc#admin ones.
"""

from __future__ import annotations

from twisted.words.xish import domish

from components.muc.constants import ADMIN, NONE, NS_DATA, NS_MUC_OWNER, OWNER
from components.muc.features import affiliations
from components.muc.features.base import RoomFeature, child, text
from components.muc.features.destroy import destroy
from components.muc.features.roles import Refused
from components.muc.roomconfig import NotAcceptable, applyForm, configForm, formValues
from jabberd import jid as J


class Owner(RoomFeature):
    iqs = {
        ("get", NS_MUC_OWNER, "query"): "get",
        ("set", NS_MUC_OWNER, "query"): "set",
    }

    def get(self, room, iq, fromJID, occupant):
        if not room.isOwner(fromJID.userhost()):
            self.error(iq, "forbidden", "only owners configure the room")
            return
        query = domish.Element((NS_MUC_OWNER, "query"))
        query.addChild(configForm(room))
        self.result(iq, query)

    def set(self, room, iq, fromJID, occupant):
        bare = fromJID.userhost()
        if not room.isOwner(bare):
            self.error(iq, "forbidden", "only owners configure or destroy the room")
            return
        query = next(iq.elements(NS_MUC_OWNER, "query"))
        request = child(query, NS_MUC_OWNER, "destroy")
        if request is not None:
            self._destroy(room, iq, request)
            return
        form = child(query, NS_DATA, "x")
        if form is None:
            self.error(iq, "bad-request", "expected a data form or <destroy/>")
            return
        formType = form.getAttribute("type")
        if formType == "cancel":
            if room.locked:
                # §10.1.3: cancelling the initial configuration destroys the room.
                destroy(room)
            self.result(iq)
            return
        if formType != "submit":
            self.error(iq, "bad-request", "submit or cancel the form")
            return
        self._configure(room, iq, fromJID, occupant, formValues(form))

    def _configure(self, room, iq, fromJID, occupant, values):
        service = self.service
        try:
            new = applyForm(room.config, values, service.config.max_occupants, service.config.max_history)
            changes = self._listChanges(room, fromJID.userhost(), values)
        except NotAcceptable as e:
            self.error(iq, "not-acceptable", str(e))
            return
        except Refused as e:
            self.error(iq, e.condition, e.text)
            return
        old = room.config
        wasLocked = room.locked
        room.config = new
        room.resizeHistory()
        self.result(iq)
        actorNick = occupant.nick if occupant is not None else None
        for change in changes:
            affiliations.apply(room, actorNick, fromJID.userhost(), change)
        if wasLocked:
            service.unlock(room)
        else:
            if new.persistent and not old.persistent:
                service.saveRoom(room, withAffiliations=True)
            elif old.persistent and not new.persistent:
                service.forgetRoom(room)
            elif new.persistent:
                service.saveRoom(room)
            for hook in service.hooks["configChanged"]:
                hook(room, old, new)
        service.roomMaybeEmpty(room)

    def _listChanges(self, room, actorBare, values):
        """The affiliation changes that make the admin and owner lists what the form says."""
        items = []
        for var, affiliation in (("muc#roomconfig_roomowners", OWNER), ("muc#roomconfig_roomadmins", ADMIN)):
            if var not in values:
                continue
            wanted = set()
            for value in values[var]:
                if value.strip():
                    try:
                        wanted.add(J.parse(value.strip()).userhost())
                    except J.InvalidJID:
                        raise NotAcceptable(f"{var}: {value} is not a JID") from None
            current = set(room.affiliated(affiliation))
            if affiliation == OWNER and not wanted:
                continue  # an empty owner list is a client's blank field, not "no owners"
            items += [(j, affiliation, None, None) for j in sorted(wanted - current)]
            items += [(j, NONE, None, None) for j in sorted(current - wanted)
                      if not (affiliation == ADMIN and j in values.get("muc#roomconfig_roomowners", ()))]
        return affiliations.plan(room, actorBare, items) if items else []

    def _destroy(self, room, iq, request):
        alternate = request.getAttribute("jid")
        if alternate:
            try:
                alternate = J.parse(alternate).full()
            except J.InvalidJID:
                self.error(iq, "jid-malformed", "the alternate venue is not a JID")
                return
        destroy(room, text(child(request, NS_MUC_OWNER, "reason")), alternate, text(child(request, NS_MUC_OWNER, "password")))
        self.result(iq)
