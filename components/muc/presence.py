"""
The room's presence protocol (XEP-0045 §7.2, §7.6, §7.7, §7.14, §10.1):
entering (and creating) a room, presence updates, nickname changes,
several sessions of one user under one nickname, and leaving.

The checks that may refuse an entry (locked, banned, members-only,
password, full, nickname taken) are C{checkJoin} hooks of the features;
what follows a successful entry (history, subject) are C{afterJoin} hooks,
in feature order.  The order of what a newcomer receives is §7.1's: the
others' presence, the own (self-)presence last, then history, then the
subject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.words.xish import domish

from components.muc.constants import (
    CREATED,
    KICKED,
    ERROR_REMOVED,
    LOGGING_ON,
    NICK_CHANGED,
    NICK_MODIFIED,
    NON_ANONYMOUS,
    NONE,
    NS_MUC,
    NS_MUC_USER,
    SELF,
    defaultRole,
)
from components.muc.room import Occupant, Room, presencePayload
from jabberd import jid as J
from jabberd.xmlstream import NS_CLIENT

if TYPE_CHECKING:
    from components.muc.service import MUCService

__all__ = ["JoinRequest", "handle"]


class JoinRequest:
    """An attempt to enter a room, as the C{checkJoin} and C{afterJoin} hooks see it."""

    __slots__ = ("stanza", "session", "bare", "nick", "modified", "password", "history", "affiliation", "created", "existing")

    def __init__(self, stanza: domish.Element, session: str, bare: str, nick: str, modified: bool, muc: domish.Element) -> None:
        self.stanza = stanza
        self.session = session  # the real full JID
        self.bare = bare
        self.nick = nick
        self.modified = modified  # resourceprep changed the nickname asked for (status 210)
        password = next(muc.elements(NS_MUC, "password"), None)
        self.password = str(password) if password is not None else None
        self.history = next(muc.elements(NS_MUC, "history"), None)
        self.affiliation = NONE
        self.created = False
        self.existing: Occupant | None = None  # another session of the same user under this nick


def handle(service: MUCService, fromJID: J.JID, toJID: J.JID, stanza: domish.Element) -> None:
    """Presence to C{room@service} or C{room@service/nick}."""
    type_ = stanza.getAttribute("type")
    room = service.rooms.get(toJID.user)
    if type_ == "error":
        occupant = room.sessions.get(fromJID.full()) if room is not None else None
        if occupant is not None:
            for hook in service.hooks["occupantError"]:
                if hook(room, occupant, fromJID.full(), stanza):
                    return
        return
    if toJID.resource is None:
        if type_ is None:
            # §7.2.1: entering needs a nickname.
            service.error(stanza, "jid-malformed", "no nickname given", by=toJID.userhost())
        return
    if fromJID.resource is None:
        return  # only a client's full JID can be an occupant
    if type_ is None:
        _available(service, room, fromJID, toJID, stanza)
    elif type_ == "unavailable":
        if room is not None:
            _unavailable(service, room, fromJID.full(), stanza)
    # Probes and subscription requests are not for rooms (§17.2.1, §17.2.4).


def _requestedNick(stanza: domish.Element) -> str:
    return stanza["to"].partition("/")[2]


def _available(service: MUCService, room: Room | None, fromJID: J.JID, toJID: J.JID, stanza: domish.Element) -> None:
    nick = toJID.resource
    assert nick is not None
    session = fromJID.full()
    muc = next(stanza.elements(NS_MUC, "x"), None)
    occupant = room.sessions.get(session) if room is not None else None
    modified = _requestedNick(stanza) != nick
    if not nick.strip():
        service.error(stanza, "not-acceptable", "nicknames cannot be blank", by=toJID.userhost())
        return
    if occupant is not None:
        assert room is not None
        if occupant.nick != nick:
            changeNick(room, occupant, session, stanza, nick, modified)
        elif muc is not None:
            _resync(room, occupant, session, stanza)
        else:
            _update(room, occupant, session, stanza)
        return
    if muc is None:
        # §7.2.22: presence without <x/> from a non-occupant is not a join
        # (groupchat 1.0, or a client that lost track): tell it it is out.
        _notInRoom(service, toJID, session)
        return
    join = JoinRequest(stanza, session, fromJID.userhost(), nick, modified, muc)
    if room is None:
        refusal = service.mayCreate(join.bare)
        if refusal is not None:
            service.error(stanza, refusal[0], refusal[1], by=toJID.userhost())
            return
        room = service.createRoom(toJID.user, join.bare)
        join.created = True
    _enter(service, room, join)


def _notInRoom(service: MUCService, toJID: J.JID, session: str) -> None:
    p = domish.Element((NS_CLIENT, "presence"))
    p["from"] = toJID.full()
    p["to"] = session
    p["type"] = "unavailable"
    x = p.addElement((NS_MUC_USER, "x"))
    item = x.addElement("item")
    item["affiliation"] = NONE
    item["role"] = NONE
    item.addElement("reason", content="You are not in the room.")
    for code in (SELF, KICKED, ERROR_REMOVED):
        x.addElement("status")["code"] = code
    service.send(p)


def _enter(service: MUCService, room: Room, join: JoinRequest) -> None:
    join.affiliation = room.affiliationOf(join.bare)
    existing = room.occupants.get(join.nick)
    if existing is not None and existing.bare == join.bare:
        join.existing = existing
    if room.locked and not join.created and join.affiliation != "owner":
        # §7.2.11: nobody but its owners enters a room awaiting configuration.
        service.error(join.stanza, "item-not-found", "the room is being configured", by=room.jid)
        return
    for hook in service.hooks["checkJoin"]:
        refusal = hook(room, join)
        if refusal is not None:
            service.error(join.stanza, refusal[0], refusal[1], by=room.jid,
                          errorType=refusal[2] if len(refusal) > 2 else None)
            if join.created:
                service.dropRoom(room)
            return
    statuses = [SELF]
    if room.config.nonAnonymous:
        statuses.append(NON_ANONYMOUS)
    if room.config.enableLogging:
        statuses.append(LOGGING_ON)
    if join.created:
        statuses.append(CREATED)
    if join.modified:
        statuses.append(NICK_MODIFIED)
    send = service.broadcast
    if join.existing is not None:
        occupant = join.existing
        others = list(occupant.sessions)
        _othersTo(room, occupant, join.session, send)
        room.addSession(occupant, join.session, join.stanza)
        # The occupant's presence is now this session's: the room (and the
        # occupant's other sessions) see the update, the new session its self-presence.
        room.broadcastPresence(occupant, selfSessions=others, stanzaID=occupant.presenceID)
        room.broadcastPresence(occupant, selfCodes=statuses, selfSessions=[join.session], toOthers=False,
                               stanzaID=occupant.presenceID)
    else:
        now = service.clock.seconds()
        role = defaultRole(join.affiliation, room.config.moderated)
        occupant = Occupant(join.nick, join.bare, role, join.affiliation, float(service.config.message_burst), now)
        _othersTo(room, occupant, join.session, send)
        room.addSession(occupant, join.session, join.stanza)
        room.broadcastPresence(occupant, selfCodes=statuses, stanzaID=occupant.presenceID)
    for hook in service.hooks["afterJoin"]:
        hook(room, occupant, join.session, join)


def _othersTo(room: Room, newcomer: Occupant, session: str, send) -> None:
    """Every other occupant's presence (whose role is broadcast) to a new session."""
    shown = room.config.presenceBroadcast
    target = [session]
    for other in list(room.occupants.values()):
        if other is not newcomer and other.role in shown:
            send(room.presenceTo(other, newcomer), target)


def _update(room: Room, occupant: Occupant, session: str, stanza: domish.Element) -> None:
    """§7.7: a new availability status from an occupant, reflected to the room."""
    room.addSession(occupant, session, stanza)
    room.broadcastPresence(occupant, stanzaID=occupant.presenceID)


def _resync(room: Room, occupant: Occupant, session: str, stanza: domish.Element) -> None:
    """
    §7.2.1: a join from a session already in the room lost track: send it
    everything a newcomer gets; the room sees the presence only if it changed.
    """
    before = [c.toXml() for c in occupant.sessions[session][0]] if session in occupant.sessions else None
    room.addSession(occupant, session, stanza)
    service = room.service
    _othersTo(room, occupant, session, service.broadcast)
    if before != [c.toXml() for c in occupant.payload]:
        room.broadcastPresence(occupant, selfSessions=[s for s in occupant.sessions if s != session],
                               stanzaID=occupant.presenceID)
    codes = [NON_ANONYMOUS] if room.config.nonAnonymous else []
    room.broadcastPresence(occupant, selfCodes=codes, selfSessions=[session], toOthers=False,
                           stanzaID=occupant.presenceID)
    muc = next(stanza.elements(NS_MUC, "x"))
    join = JoinRequest(stanza, session, occupant.bare, occupant.nick, False, muc)
    join.affiliation = occupant.affiliation
    for hook in service.hooks["afterJoin"]:
        hook(room, occupant, session, join)


def changeNick(room: Room, occupant: Occupant, session: str, stanza: domish.Element, nick: str, modified: bool) -> None:
    """§7.6: every session of the occupant moves to the new nickname (303, then the new presence)."""
    service = room.service
    holder = room.occupants.get(nick)
    if holder is not None:
        service.error(stanza, "conflict", "that nickname is in use", by=room.jid)
        return
    for hook in service.hooks["checkNick"]:
        refusal = hook(room, occupant, nick)
        if refusal is not None:
            service.error(stanza, refusal[0], refusal[1], by=room.jid)
            return
    room.broadcastPresence(occupant, "unavailable", [NICK_CHANGED], payload=[], nick=nick)
    del room.occupants[occupant.nick]
    occupant.nick = nick
    room.addSession(occupant, session, stanza)
    room.broadcastPresence(occupant, selfCodes=[NICK_MODIFIED] if modified else (), stanzaID=occupant.presenceID)


def _unavailable(service: MUCService, room: Room, session: str, stanza: domish.Element) -> None:
    """§7.14: an occupant's session leaves (§17.2.5: anyone else's unavailable is ignored)."""
    occupant = room.sessions.get(session)
    if occupant is None:
        return
    payload = presencePayload(stanza)
    if len(occupant.sessions) > 1:
        wasPrimary = occupant.primary == session
        room.broadcastPresence(occupant, "unavailable", payload=payload, selfSessions=[session],
                               toOthers=False, role=NONE)
        room.dropSession(occupant, session)
        if wasPrimary:
            room.broadcastPresence(occupant, stanzaID=occupant.presenceID)
        return
    room.broadcastPresence(occupant, "unavailable", payload=payload, selfFirst=True, role=NONE)
    room.dropSession(occupant, session)
    occupant.role = NONE
    service.occupantGone(room, occupant)
    service.roomMaybeEmpty(room)


def removeSession(room: Room, occupant: Occupant, session: str, code: str) -> None:
    """Remove one session for a service reason (333: its server reported it gone)."""
    if len(occupant.sessions) > 1:
        wasPrimary = occupant.primary == session
        room.broadcastPresence(occupant, "unavailable", [code], payload=[], selfSessions=[session],
                               toOthers=False, role=NONE)
        room.dropSession(occupant, session)
        if wasPrimary:
            room.broadcastPresence(occupant, stanzaID=occupant.presenceID)
        return
    room.remove(occupant, code)
