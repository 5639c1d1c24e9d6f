"""
Roles, changed by nickname through muc#admin (XEP-0045 §8.2–§8.5, §9.6–§9.8):
kick (role none, status 307), voice (participant/visitor) and moderator
status, and the role lists.  The permission rules:

- only moderators change roles; granting or revoking moderator status
  takes an admin or owner;
- nobody is kicked, or loses voice, by someone of a lower affiliation;
- an admin's or owner's voice and moderator status cannot be taken.
"""

from __future__ import annotations

from components.muc.constants import (
    ADMIN,
    KICKED,
    MODERATOR,
    NONE,
    NS_MUC_ADMIN,
    OWNER,
    PARTICIPANT,
    VISITOR,
)
from components.muc.room import Room

ROLE_VALUES = (MODERATOR, PARTICIPANT, VISITOR, NONE)


class Refused(Exception):
    """An admin request refused: the stanza error condition and text."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text


class RoleChange:
    __slots__ = ("target", "role", "reason")

    def __init__(self, target, role: str, reason: str | None) -> None:
        self.target = target
        self.role = role
        self.reason = reason

    @property
    def removes(self) -> bool:
        return self.role == NONE


def plan(room: Room, actor, nick: str | None, role: str, reason: str | None) -> RoleChange:
    """Check one role item; raises L{Refused}."""
    if actor is None or actor.role != MODERATOR:
        raise Refused("forbidden", "only moderators change roles")
    if role not in ROLE_VALUES or not nick:
        raise Refused("bad-request", "a role item needs a nick and a role")
    target = room.occupants.get(nick)
    if target is None:
        raise Refused("item-not-found", f"nobody is called {nick}")
    actorAffiliation = actor.affiliation
    privileged = actorAffiliation in (ADMIN, OWNER)
    if role == NONE:
        if Room.outranks(target.affiliation, actorAffiliation):
            raise Refused("not-allowed", "you cannot kick someone of a higher affiliation")
    elif role == MODERATOR or target.role == MODERATOR:
        if target.role == role:
            pass
        elif not privileged:
            raise Refused("forbidden", "only admins and owners grant or revoke moderator status")
        elif target.affiliation in (ADMIN, OWNER):
            raise Refused("not-allowed", "admins and owners are always moderators")
    if role == VISITOR and (target.affiliation in (ADMIN, OWNER) or Room.outranks(target.affiliation, actorAffiliation)):
        raise Refused("not-allowed", "you cannot revoke the voice of someone of this affiliation")
    return RoleChange(target, role, reason)


def apply(room: Room, actor, change: RoleChange, between=None) -> None:
    """Carry out a checked change: kick (307) or a new role shown to the room."""
    target = change.target
    if room.occupants.get(target.nick) is not target:
        return  # removed by an earlier item of the same request
    if change.role == NONE:
        room.remove(target, KICKED, actor=actor.nick if actor else None, reason=change.reason, between=between)
    elif target.role != change.role:
        target.role = change.role
        room.broadcastPresence(target, reason=change.reason, stanzaID=None)


def listItems(room: Room, requester, role: str, query) -> None:
    """§8.5, §9.8: the occupants with C{role} (nick, role, affiliation, full JID), for moderators."""
    if requester is None or requester.role != MODERATOR:
        raise Refused("forbidden", "only moderators see role lists")
    if role not in (MODERATOR, PARTICIPANT, VISITOR):
        raise Refused("bad-request", "no such role list")
    for occupant in sorted(room.occupants.values(), key=lambda o: o.nick):
        if occupant.role == role:
            item = query.addElement((NS_MUC_ADMIN, "item"))
            item["affiliation"] = occupant.affiliation
            item["jid"] = occupant.jid
            item["nick"] = occupant.nick
            item["role"] = occupant.role
