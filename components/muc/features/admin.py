"""
The muc#admin iq (XEP-0045 §8, §9, §10.3–§10.8): one request carries role
items (by nick) or affiliation items (by jid); every item is checked before
any is applied, so a request is carried out whole or not at all.  An item
with both a role and an affiliation is a bad-request (§17.4).

Order of what is sent (§8.2): a removed occupant hears of it first, then
the requester gets the result, then the rest of the room.
"""

from __future__ import annotations

from twisted.words.xish import domish

from components.muc.constants import NS_MUC_ADMIN
from components.muc.features import affiliations, roles
from components.muc.features.base import RoomFeature, child, text
from components.muc.features.roles import Refused
from jabberd.xmlstream import iqResult


class Admin(RoomFeature):
    iqs = {
        ("get", NS_MUC_ADMIN, "query"): "get",
        ("set", NS_MUC_ADMIN, "query"): "set",
    }

    def _items(self, iq):
        query = next(iq.elements(NS_MUC_ADMIN, "query"))
        return list(query.elements(NS_MUC_ADMIN, "item"))

    def get(self, room, iq, fromJID, occupant):
        items = self._items(iq)
        query = domish.Element((NS_MUC_ADMIN, "query"))
        try:
            if len(items) != 1:
                raise Refused("bad-request", "ask for one list at a time")
            item = items[0]
            role, affiliation = item.getAttribute("role"), item.getAttribute("affiliation")
            if (role is None) == (affiliation is None):
                raise Refused("bad-request", "ask for a role or an affiliation")
            if role is not None:
                roles.listItems(room, occupant, role, query)
            else:
                affiliations.listItems(room, fromJID.userhost(), occupant, affiliation, query)
        except Refused as e:
            self.error(iq, e.condition, e.text)
            return
        self.result(iq, query)

    def set(self, room, iq, fromJID, occupant):
        items = self._items(iq)
        roleChanges = []
        affiliationItems = []
        try:
            if not items:
                raise Refused("bad-request", "no items")
            for item in items:
                role, affiliation = item.getAttribute("role"), item.getAttribute("affiliation")
                reason = text(child(item, NS_MUC_ADMIN, "reason"))
                if (role is None) == (affiliation is None):
                    raise Refused("bad-request", "an item changes a role or an affiliation")
                if role is not None:
                    roleChanges.append(roles.plan(room, occupant, item.getAttribute("nick"), role, reason))
                else:
                    affiliationItems.append((item.getAttribute("jid"), affiliation, item.getAttribute("nick"), reason))
            affiliationChanges = affiliations.plan(room, fromJID.userhost(), affiliationItems) if affiliationItems else []
        except Refused as e:
            self.error(iq, e.condition, e.text)
            return
        reply = iqResult(iq)
        sent = []

        def answer() -> None:
            if not sent:
                sent.append(True)
                self.service.send(reply)

        removes = any(c.removes for c in roleChanges) or any(c.affiliation == "outcast" for c in affiliationChanges)
        if not removes:
            answer()
        actorNick = occupant.nick if occupant is not None else None
        for change in affiliationChanges:
            affiliations.apply(room, actorNick, fromJID.userhost(), change, between=None if sent else answer)
        for change in roleChanges:
            roles.apply(room, occupant, change, between=None if sent else answer)
        answer()
