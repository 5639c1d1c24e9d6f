"""
Mediated invitations and declines (XEP-0045 §7.8.2): an occupant asks the
room to invite someone; the room sends the invitation from itself, naming
the inviter's bare JID and adding the password of a protected room.  In a
members-only room only admins invite, or members too when the room allows
invites, and the invitee becomes a member.  A decline is passed back to
the inviter, and only for an invitation the room actually sent (so the room
cannot be used to send declines to anybody).
"""

from __future__ import annotations

from components.muc.constants import ADMIN, MEMBER, NONE, NS_MUC_USER, OWNER
from components.muc.features.affiliations import invite
from components.muc.features.base import RoomFeature, child, text
from jabberd import jid as J


class Invitations(RoomFeature):
    order = 50

    def roomMessage(self, room, fromJID, occupant, stanza):
        x = child(stanza, NS_MUC_USER, "x")
        if x is None:
            return False
        invites = list(x.elements(NS_MUC_USER, "invite"))
        declines = list(x.elements(NS_MUC_USER, "decline"))
        if not invites and not declines:
            return False
        if invites:
            self._invite(room, fromJID, occupant, stanza, invites)
        for decline in declines:
            self._decline(room, fromJID, stanza, decline)
        return True

    def _invite(self, room, fromJID, occupant, stanza, invites):
        bare = fromJID.userhost()
        affiliation = room.affiliationOf(bare)
        if occupant is None and affiliation not in (ADMIN, OWNER):
            self.error(stanza, "not-acceptable", "only occupants may invite", by=room.jid)
            return
        if room.config.membersOnly and affiliation not in (ADMIN, OWNER) and not room.config.allowInvites:
            self.error(stanza, "forbidden", "only admins invite to this room", by=room.jid)
            return
        targets = []
        for element in invites:
            try:
                targets.append((J.parse(element.getAttribute("to") or ""), text(child(element, NS_MUC_USER, "reason"))))
            except J.InvalidJID:
                self.error(stanza, "jid-malformed", "the invitee is not a JID", by=room.jid)
                return
        for to, reason in targets:
            invitee = to.userhost()
            if room.config.membersOnly and room.affiliationOf(invitee) == NONE:
                room.setAffiliation(invitee, MEMBER)
            invite(room, to.full(), bare, reason, stanza.getAttribute("id") if len(targets) == 1 else None)

    def _decline(self, room, fromJID, stanza, decline):
        decliner = fromJID.userhost()
        inviter = self.service.invitations.get((room.name, decliner))
        try:
            to = J.parse(decline.getAttribute("to") or "")
        except J.InvalidJID:
            to = None
        if inviter is None or to is None or to.userhost() != inviter:
            self.error(stanza, "not-acceptable", "there is no invitation to decline", by=room.jid)
            return
        del self.service.invitations[(room.name, decliner)]
        message = room.message(None, None, stanza.getAttribute("id"))
        message["to"] = to.full()
        x = message.addElement((NS_MUC_USER, "x"))
        element = x.addElement("decline")
        element["from"] = decliner
        reason = text(child(decline, NS_MUC_USER, "reason"))
        if reason:
            element.addElement("reason", content=reason)
        self.service.send(message)
