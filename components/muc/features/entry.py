"""
Who may enter (XEP-0045 §7.2.7–§7.2.10): banned users (forbidden), members-only
rooms (registration-required), passwords (not-authorized) and full rooms
(service-unavailable).  One small feature each, checked in this order.
"""

from __future__ import annotations

import hmac

from components.muc.constants import ADMIN, AFFILIATION_RANK, MEMBER, MEMBERS_ONLY_REMOVED, OUTCAST, OWNER
from components.muc.features.base import RoomFeature

#: Owners and admins enter a full room, up to this many beyond the service limit (§7.2.9).
ADMIN_EXTRA = 10


class Bans(RoomFeature):
    """Outcasts do not enter (§7.2.8)."""

    order = 10

    def checkJoin(self, room, join):
        if join.affiliation == OUTCAST:
            return ("forbidden", "you are banned from this room")
        return None


class MembersOnly(RoomFeature):
    """Members-only rooms (§7.2.7, §10.2: status 322 when a room becomes members-only)."""

    order = 20

    def checkJoin(self, room, join):
        if room.config.membersOnly and AFFILIATION_RANK[join.affiliation] < AFFILIATION_RANK[MEMBER]:
            return ("registration-required", "this room is for members only")
        return None

    def configChanged(self, room, old, new):
        if new.membersOnly and not old.membersOnly:
            for occupant in list(room.occupants.values()):
                if AFFILIATION_RANK[occupant.affiliation] < AFFILIATION_RANK[MEMBER]:
                    room.remove(occupant, MEMBERS_ONLY_REMOVED)

    def discoFeatures(self, room):
        return ["muc_membersonly" if room.config.membersOnly else "muc_open"]


class Passwords(RoomFeature):
    """Password-protected rooms (§7.2.6); the password is compared in constant time."""

    order = 30

    def checkJoin(self, room, join):
        config = room.config
        if not config.passwordProtected or join.existing is not None:
            return None
        given = (join.password or "").encode("utf-8")
        if not hmac.compare_digest(given, config.password.encode("utf-8")):
            return ("not-authorized", "a password is required" if join.password is None else "wrong password")
        return None

    def discoFeatures(self, room):
        return ["muc_passwordprotected" if room.config.passwordProtected else "muc_unsecured"]


class MaxUsers(RoomFeature):
    """
    A full room refuses newcomers with service-unavailable (§7.2.9); its
    owners and admins still enter, a few beyond the service's limit.
    """

    order = 40

    def checkJoin(self, room, join):
        if join.existing is not None:
            return None  # another session of an occupant: nobody new
        hard = self.service.config.max_occupants
        limit = min(room.config.maxUsers or hard, hard)
        count = room.count()
        if join.affiliation in (OWNER, ADMIN):
            if count >= hard + ADMIN_EXTRA:
                return ("service-unavailable", "the room is full", "wait")
        elif count >= limit:
            return ("service-unavailable", "the room is full", "wait")
        return None


class Nicknames(RoomFeature):
    """
    Nickname conflicts (§7.2.9): a nickname in use by another user, or
    reserved by another affiliated user (the 'nick' of a member list item),
    is refused with conflict, on entry and on a nickname change.
    """

    order = 50

    def _reservedByOther(self, room, bare, nick):
        for jid, entry in room.affiliations.items():
            if entry.nick == nick and jid != bare and entry.affiliation != OUTCAST:
                return True
        return False

    def checkJoin(self, room, join):
        holder = room.occupants.get(join.nick)
        if holder is not None and holder.bare != join.bare:
            return ("conflict", "that nickname is in use")
        if self._reservedByOther(room, join.bare, join.nick):
            return ("conflict", "that nickname is reserved")
        return None

    def checkNick(self, room, occupant, nick):
        if self._reservedByOther(room, occupant.bare, nick):
            return ("conflict", "that nickname is reserved")
        return None
