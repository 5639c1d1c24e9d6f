"""
Affiliations, changed by bare JID through muc#admin (XEP-0045 §9.1–§9.5,
§10.3–§10.8): bans (outcast, status 301), membership (321 when it is lost
in a members-only room), admins and owners, and their lists.  The rules:

- admins and owners edit the member and ban lists; only owners touch an
  admin or owner (granting, revoking, banning one);
- nobody bans themselves, and the last owner cannot step down (conflict);
- service administrators are owners everywhere and cannot be changed here.

A change shows at once on every occupant of that user (or domain): a new
role that goes with the new affiliation, or removal.  Adding a member to a
members-only room sends the new member an invitation (§9.5).
"""

from __future__ import annotations

from twisted.words.xish import domish

from components.muc.constants import (
    ADMIN,
    AFFILIATION_RANK,
    AFFILIATION_REMOVED,
    AFFILIATIONS,
    BANNED,
    MEMBER,
    MODERATOR,
    NONE,
    NS_MUC_ADMIN,
    NS_MUC_USER,
    OUTCAST,
    OWNER,
    VISITOR,
    defaultRole,
)
from components.muc.features.roles import Refused
from components.muc.room import Room
from jabberd import jid as J


class AffiliationChange:
    __slots__ = ("bare", "affiliation", "nick", "reason")

    def __init__(self, bare: str, affiliation: str, nick: str | None, reason: str | None) -> None:
        self.bare = bare
        self.affiliation = affiliation
        self.nick = nick
        self.reason = reason


def parseJID(text: str | None) -> str:
    """The bare JID (or domain) an item names: §9: a full JID counts as its bare JID."""
    if not text:
        raise Refused("bad-request", "an affiliation item needs a jid")
    try:
        return J.parse(text).userhost()
    except J.InvalidJID:
        raise Refused("jid-malformed", f"{text} is not a JID") from None


def plan(room: Room, actorBare: str, items: list[tuple[str | None, str, str | None, str | None]]) -> list[AffiliationChange]:
    """
    Check a whole request (jid, affiliation, nick, reason per item) before
    changing anything (§9.2: none is applied when one is refused).
    """
    actor = room.affiliationOf(actorBare)
    if actor not in (ADMIN, OWNER):
        raise Refused("forbidden", "only admins and owners change affiliations")
    owners = set(room.owners())
    changes = []
    for jidText, affiliation, nick, reason in items:
        if affiliation not in AFFILIATIONS:
            raise Refused("bad-request", f"no affiliation {affiliation}")
        bare = parseJID(jidText)
        if bare in room.service.admins:
            raise Refused("not-allowed", "a service administrator's affiliation cannot be changed")
        current = room.affiliations[bare].affiliation if bare in room.affiliations else NONE
        if affiliation in (ADMIN, OWNER) and actor != OWNER:
            raise Refused("forbidden", "only owners grant admin or owner status")
        if current in (ADMIN, OWNER) and current != affiliation and actor != OWNER:
            raise Refused("not-allowed", "only owners change an admin's or owner's affiliation")
        if bare == actorBare and affiliation == OUTCAST:
            raise Refused("conflict", "you cannot ban yourself")
        if current == OWNER and affiliation != OWNER:
            owners.discard(bare)
            if not owners:
                raise Refused("conflict", "a room needs an owner")
        elif affiliation == OWNER:
            owners.add(bare)
        changes.append(AffiliationChange(bare, affiliation, nick, reason))
    return changes


def _matches(occupant, bare: str) -> bool:
    return occupant.bare == bare or ("@" not in bare and occupant.bare.rpartition("@")[2] == bare)


def apply(room: Room, actorNick: str | None, actorBare: str, change: AffiliationChange, between=None) -> bool:
    """Carry out one checked change; True when it removed somebody (C{between} was used)."""
    old = room.setAffiliation(change.bare, change.affiliation, change.nick, change.reason)
    removed = False
    for occupant in [o for o in room.occupants.values() if _matches(o, change.bare)]:
        new = occupant.affiliation
        if new == OUTCAST:
            room.remove(occupant, BANNED, actor=actorNick, reason=change.reason, affiliation=OUTCAST, between=between)
            removed, between = True, None
        elif room.config.membersOnly and AFFILIATION_RANK[new] < AFFILIATION_RANK[MEMBER]:
            room.remove(occupant, AFFILIATION_REMOVED, actor=actorNick, reason=change.reason, between=between)
            removed, between = True, None
        else:
            if new in (ADMIN, OWNER):
                occupant.role = MODERATOR
            elif old in (ADMIN, OWNER) or occupant.role == VISITOR and new == MEMBER:
                occupant.role = defaultRole(new, room.config.moderated)
            room.broadcastPresence(occupant, reason=change.reason, stanzaID=None)
    if (room.config.membersOnly and change.affiliation == MEMBER and old in (NONE, OUTCAST)
            and "@" in change.bare and not any(o.bare == change.bare for o in room.occupants.values())):
        invite(room, change.bare, actorBare, change.reason)
    return removed


def invite(room: Room, to: str, inviter: str, reason: str | None = None, stanzaID: str | None = None) -> None:
    """A mediated invitation from the room (§7.8.2, §9.5)."""
    message = room.message(None, None, stanzaID)
    message["to"] = to
    x = message.addElement((NS_MUC_USER, "x"))
    element = x.addElement("invite")
    element["from"] = inviter
    if reason:
        element.addElement("reason", content=reason)
    if room.config.passwordProtected:
        x.addElement("password", content=room.config.password)
    room.service.send(message)
    room.service.rememberInvitation(room, J.parse(to).userhost(), inviter)


def mayList(room: Room, requesterBare: str, requester, affiliation: str) -> bool:
    """Who may read which affiliation list (§9.3, §9.5, §10.5, §10.8)."""
    mine = room.affiliationOf(requesterBare)
    if affiliation in (OWNER, ADMIN):
        return mine == OWNER or (mine == ADMIN and room.config.nonAnonymous)
    if mine in (ADMIN, OWNER):
        return True
    if affiliation == MEMBER and requester is not None:
        # §5.2.1: in a semi-anonymous room the member list (with JIDs) stays hidden.
        return requester.role in room.config.getMemberList and room.config.nonAnonymous
    return False


def listItems(room: Room, requesterBare: str, requester, affiliation: str, query: domish.Element) -> None:
    if affiliation not in (OWNER, ADMIN, MEMBER, OUTCAST):
        raise Refused("bad-request", "no such affiliation list")
    if not mayList(room, requesterBare, requester, affiliation):
        raise Refused("forbidden", "you may not see this list")
    for jid in room.affiliated(affiliation):
        entry = room.affiliations[jid]
        item = query.addElement((NS_MUC_ADMIN, "item"))
        item["affiliation"] = affiliation
        item["jid"] = jid
        if entry.nick and affiliation != OUTCAST:
            item["nick"] = entry.nick
        if entry.reason:
            item.addElement("reason", content=entry.reason)

