"""
A room: its occupants, affiliations and configuration, and the one place
that builds MUC presence (XEP-0045 §7, §17.2.8: role, affiliation and, for
those allowed to see it, the real JID in every presence the room sends).

Features (C{components/muc/features/}) do the protocol; they read and change
a room through the methods here.  The state every stanza needs is in
memory: occupants by nickname and by real full JID, affiliations by bare JID;
the recipients of a broadcast are cached until the occupancy changes.

Fan-out builds each stanza once per distinct content and varies only the
C{to}: a groupchat message is one template for everybody, a presence at
most three (with the real JID, without it, and the occupant's own
self-presence).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from twisted.words.xish import domish

from components.muc.constants import (
    ADMIN,
    AFFILIATION_RANK,
    MODERATOR,
    NONE,
    NS_DELAY,
    NS_MUC,
    NS_MUC_USER,
    OUTCAST,
    OWNER,
    SELF,
)
from components.muc.roomconfig import RoomConfig
from jabberd.xmlstream import NS_CLIENT

if TYPE_CHECKING:
    from components.muc.service import MUCService

__all__ = ["Affiliation", "HistoryEntry", "Occupant", "Room", "stamp"]


def stamp(when: float) -> str:
    """An XEP-0082 DateTime in UTC."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Affiliation:
    """A long-lived affiliation (§5.2) of a bare JID (or a whole domain)."""

    __slots__ = ("affiliation", "nick", "reason")

    def __init__(self, affiliation: str, nick: str | None = None, reason: str | None = None) -> None:
        self.affiliation = affiliation
        self.nick = nick
        self.reason = reason


class Occupant:
    """
    One nickname in the room: a user (bare JID) with one or more sessions
    (real full JIDs) under it.  The presence shown for the occupant is that
    of its primary session, the one that last sent presence.
    """

    __slots__ = ("nick", "bare", "sessions", "primary", "role", "affiliation", "tokens", "refilled", "version", "cache")

    def __init__(self, nick: str, bare: str, role: str, affiliation: str, tokens: float, now: float) -> None:
        self.nick = nick
        self.bare = bare
        #: full JID -> (presence payload children, presence id)
        self.sessions: dict[str, tuple[list, str | None]] = {}
        self.primary = ""
        self.role = role
        self.affiliation = affiliation
        self.tokens = tokens  # message rate limiting (token bucket)
        self.refilled = now
        self.version = 0  # bumped whenever the presence shown changes
        self.cache: dict[bool, tuple[tuple, domish.Element]] = {}  # see Room.presenceTo

    @property
    def jid(self) -> str:
        """The real full JID shown for this occupant (its primary session)."""
        return self.primary

    @property
    def payload(self) -> list:
        return self.sessions[self.primary][0] if self.primary in self.sessions else []

    @property
    def presenceID(self) -> str | None:
        return self.sessions[self.primary][1] if self.primary in self.sessions else None


class HistoryEntry:
    """A groupchat message kept for newcomers: sent as is, only 'to' added."""

    __slots__ = ("time", "stanza", "chars")

    def __init__(self, time: float, stanza: domish.Element) -> None:
        self.time = time
        self.stanza = stanza
        self.chars = -1  # computed on first use (only maxchars needs it)

    def size(self) -> int:
        if self.chars < 0:
            self.chars = len(self.stanza.toXml())
        return self.chars


def presencePayload(stanza: domish.Element) -> list:
    """What an occupant's presence carries to the room: all but MUC extensions and errors (§17.2.6)."""
    return [
        c for c in stanza.children
        if isinstance(c, domish.Element) and c.uri not in (NS_MUC, NS_MUC_USER) and c.name != "error"
    ]


class Room:
    """One chat room of a L{MUCService}."""

    def __init__(self, service: MUCService, name: str, config: RoomConfig, created: datetime, locked: bool = False) -> None:
        self.service = service
        self.name = name
        self.jid = f"{name}@{service.domain}"
        self.config = config
        self.created = created
        self.locked = locked  # created, awaiting its first configuration (§10.1)
        self.affiliations: dict[str, Affiliation] = {}
        self.occupants: dict[str, Occupant] = {}  # by nickname
        self.sessions: dict[str, Occupant] = {}  # by real full JID
        self.subject: str | None = None  # None: never set
        self.subjectNick: str | None = None
        self.subjectTime: float | None = None
        self.history: deque[HistoryEntry] = deque(maxlen=self.historyCap())
        self._recipients: list[str] | None = None

    def __repr__(self) -> str:
        return f"<Room {self.jid} occupants={len(self.occupants)}>"

    # -- affiliations ---------------------------------------------------------

    def affiliationOf(self, bare: str) -> str:
        """§5.2: the affiliation of a bare JID: its own, else its domain's, else none."""
        if bare in self.service.admins:
            return OWNER
        entry = self.affiliations.get(bare)
        if entry is None and "@" in bare:
            entry = self.affiliations.get(bare.rpartition("@")[2])
        return entry.affiliation if entry is not None else NONE

    def affiliated(self, affiliation: str) -> list[str]:
        """The JIDs with C{affiliation}, sorted (service admins are not listed)."""
        return sorted(j for j, a in self.affiliations.items() if a.affiliation == affiliation)

    def owners(self) -> list[str]:
        return self.affiliated(OWNER)

    def reservedNick(self, bare: str) -> str | None:
        entry = self.affiliations.get(bare)
        return entry.nick if entry is not None else None

    def setAffiliation(self, bare: str, affiliation: str, nick: str | None = None, reason: str | None = None) -> str:
        """Record an affiliation (C{none} removes it) and write it behind; returns the old one."""
        old = self.affiliations.get(bare)
        oldAffiliation = old.affiliation if old is not None else NONE
        if affiliation == NONE:
            self.affiliations.pop(bare, None)
        else:
            if nick is None and old is not None and affiliation != OUTCAST:
                nick = old.nick
            self.affiliations[bare] = Affiliation(affiliation, nick, reason)
        self.service.ownershipChanged(self, bare, oldAffiliation, affiliation)
        for occupant in self.occupants.values():
            if occupant.bare == bare or ("@" not in bare and occupant.bare.rpartition("@")[2] == bare):
                occupant.affiliation = self.affiliationOf(occupant.bare)
        if self.config.persistent and not self.locked:
            self.service.saveAffiliation(self, bare, affiliation, nick, reason)
        return oldAffiliation

    # -- occupants ----------------------------------------------------------------

    def occupantJID(self, nick: str) -> str:
        return f"{self.jid}/{nick}"

    def recipients(self) -> list[str]:
        """Every real full JID in the room (cached until occupancy changes)."""
        if self._recipients is None:
            self._recipients = [jid for o in self.occupants.values() for jid in o.sessions]
        return self._recipients

    def changed(self) -> None:
        """Occupancy changed: drop cached recipient lists."""
        self._recipients = None

    def canSeeJIDs(self, occupant: Occupant) -> bool:
        """§7.2.3/§7.2.4: everyone in a non-anonymous room, moderators otherwise."""
        return self.config.nonAnonymous or occupant.role == MODERATOR

    def isEmpty(self) -> bool:
        return not self.occupants

    def count(self) -> int:
        return len(self.occupants)

    def historyCap(self) -> int:
        return max(0, min(self.config.historyLength, self.service.config.max_history))

    def resizeHistory(self) -> None:
        cap = self.historyCap()
        if self.history.maxlen != cap:
            self.history = deque(self.history, maxlen=cap)

    # -- building presence -------------------------------------------------------

    def userX(
        self,
        occupant: Occupant,
        withJID: bool,
        codes: Iterable[str] = (),
        role: str | None = None,
        affiliation: str | None = None,
        nick: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        destroy: domish.Element | None = None,
    ) -> domish.Element:
        """The C{<x xmlns='...muc#user'/>} of a presence about C{occupant}."""
        x = domish.Element((NS_MUC_USER, "x"))
        item = x.addElement("item")
        item["affiliation"] = occupant.affiliation if affiliation is None else affiliation
        item["role"] = occupant.role if role is None else role
        if withJID and occupant.primary:
            item["jid"] = occupant.primary
        if nick is not None:
            item["nick"] = nick
        if actor is not None:
            item.addElement("actor")["nick"] = actor
        if reason:
            item.addElement("reason", content=reason)
        for code in sorted(set(codes)):
            x.addElement("status")["code"] = code
        if destroy is not None:
            x.addChild(destroy)
        return x

    def presence(
        self,
        occupant: Occupant,
        x: domish.Element,
        type_: str | None = None,
        payload: list | None = None,
        stanzaID: str | None = None,
        nick: str | None = None,
    ) -> domish.Element:
        """A presence from the occupant's room JID (no 'to': the fan-out adds it)."""
        p = domish.Element((NS_CLIENT, "presence"))
        p["from"] = self.occupantJID(occupant.nick if nick is None else nick)
        if stanzaID:
            p["id"] = stanzaID
        if type_:
            p["type"] = type_
        p.children = list(occupant.payload if payload is None else payload)
        p.children.append(x)
        return p

    def presenceTo(self, occupant: Occupant, recipient: Occupant) -> domish.Element:
        """
        C{occupant}'s current presence as C{recipient} is allowed to see it
        (a template: the fan-out adds the 'to').  Kept until what it shows
        changes, so that each newcomer costs a copy, not a build, per occupant.
        """
        withJID = self.canSeeJIDs(recipient)
        key = (occupant.version, occupant.nick, occupant.role, occupant.affiliation)
        cached = occupant.cache.get(withJID)
        if cached is not None and cached[0] == key:
            return cached[1]
        stanza = self.presence(occupant, self.userX(occupant, withJID), stanzaID=occupant.presenceID)
        occupant.cache[withJID] = (key, stanza)
        return stanza

    def broadcastPresence(
        self,
        occupant: Occupant,
        type_: str | None = None,
        codes: Iterable[str] = (),
        selfCodes: Iterable[str] = (),
        *,
        payload: list | None = None,
        stanzaID: str | None = None,
        selfSessions: Iterable[str] | None = None,
        selfFirst: bool = False,
        toOthers: bool = True,
        role: str | None = None,
        affiliation: str | None = None,
        nick: str | None = None,
        fromNick: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        between: Any = None,
    ) -> None:
        """
        Send C{occupant}'s presence to the room: to every other occupant
        (if its role's presence is broadcast, with the real JID to those
        who may see it) and, with status 110 and C{selfCodes}, to its own
        sessions (all, or C{selfSessions}).
        """
        kw = dict(role=role, affiliation=affiliation, nick=nick, actor=actor, reason=reason)
        send = self.service.broadcast
        withJID: list[str] = []
        withoutJID: list[str] = []
        shown = occupant.role in self.config.presenceBroadcast
        if toOthers and shown:
            seeAll = self.config.nonAnonymous
            for other in self.occupants.values():
                if other is not occupant:
                    (withJID if seeAll or other.role == MODERATOR else withoutJID).extend(other.sessions)
        own = list(occupant.sessions) if selfSessions is None else list(selfSessions)

        def toSelf() -> None:
            if own:
                x = self.userX(occupant, self.canSeeJIDs(occupant), [SELF, *codes, *selfCodes], **kw)
                send(self.presence(occupant, x, type_, payload, stanzaID, fromNick), own)

        if selfFirst:
            toSelf()
        if between is not None:
            between()  # what goes out after the occupant heard, before the room hears (§8.2)
        if withJID:
            send(self.presence(occupant, self.userX(occupant, True, codes, **kw), type_, payload, stanzaID, fromNick), withJID)
        if withoutJID:
            send(self.presence(occupant, self.userX(occupant, False, codes, **kw), type_, payload, stanzaID, fromNick), withoutJID)
        if not selfFirst:
            toSelf()

    # -- changing occupancy --------------------------------------------------------

    def addSession(self, occupant: Occupant, session: str, stanza: domish.Element) -> None:
        """Add (or refresh) a real full JID under C{occupant}, making it the primary session."""
        occupant.sessions[session] = (presencePayload(stanza), stanza.getAttribute("id"))
        occupant.primary = session
        occupant.version += 1
        self.occupants[occupant.nick] = occupant
        if self.sessions.get(session) is not occupant:
            self.sessions[session] = occupant
            self.changed()

    def dropSession(self, occupant: Occupant, session: str) -> bool:
        """Remove one session; True when it was the occupant's last (the occupant is gone)."""
        occupant.sessions.pop(session, None)
        self.sessions.pop(session, None)
        self.changed()
        if occupant.sessions:
            if occupant.primary == session:
                occupant.primary = next(reversed(occupant.sessions))
                occupant.version += 1
            return False
        self.occupants.pop(occupant.nick, None)
        return True

    def remove(
        self,
        occupant: Occupant,
        code: str,
        actor: str | None = None,
        reason: str | None = None,
        affiliation: str | None = None,
        between: Any = None,
    ) -> None:
        """
        Remove an occupant with all its sessions and say why with C{code}
        (301 banned, 307 kicked, 321/322 affiliation, 333 error): to itself
        first (110), then to everyone else (§8.2, §9.1).
        """
        self.broadcastPresence(
            occupant, "unavailable", [code], payload=[], selfFirst=True,
            role=NONE, affiliation=affiliation, actor=actor, reason=reason, between=between,
        )
        for session in list(occupant.sessions):
            self.sessions.pop(session, None)
        occupant.sessions.clear()
        self.occupants.pop(occupant.nick, None)
        self.changed()
        occupant.role = NONE
        self.service.occupantGone(self, occupant)
        self.service.roomMaybeEmpty(self)

    def removeAll(self, code: str | None = None, destroy: domish.Element | None = None) -> None:
        """
        Everyone out, each told only about themselves (destruction §10.9,
        service shutdown §11.2): no presence from the others.
        """
        send = self.service.broadcast
        for occupant in list(self.occupants.values()):
            codes = [SELF, code] if code else []
            x = self.userX(occupant, False, codes, role=NONE, affiliation=NONE, destroy=destroy)
            send(self.presence(occupant, x, "unavailable", payload=[]), list(occupant.sessions))
            occupant.role = NONE
        self.occupants.clear()
        self.sessions.clear()
        self.changed()

    # -- messages ----------------------------------------------------------------------

    def message(self, fromNick: str | None, type_: str | None = "groupchat", stanzaID: str | None = None) -> domish.Element:
        """An empty message from the room (C{fromNick} None) or an occupant JID."""
        m = domish.Element((NS_CLIENT, "message"))
        m["from"] = self.jid if fromNick is None else self.occupantJID(fromNick)
        if type_:
            m["type"] = type_
        m["id"] = stanzaID or self.service.newID()
        return m

    def broadcast(self, template: domish.Element, recipients: list[str] | None = None) -> None:
        """Send C{template} to every occupant session (or C{recipients})."""
        tos = self.recipients() if recipients is None else recipients
        if tos:
            self.service.broadcast(template, tos)

    def statusMessage(self, codes: Iterable[str]) -> None:
        """A configuration-change notice (§10.2.1): a message with status codes only."""
        m = self.message(None)
        x = m.addElement((NS_MUC_USER, "x"))
        for code in sorted(set(codes)):
            x.addElement("status")["code"] = code
        self.broadcast(m)

    def delayed(self, template: domish.Element, when: float) -> domish.Element:
        """C{template} with an XEP-0203 delay stamped by the room."""
        copy = domish.Element((template.uri, template.name), template.defaultUri, dict(template.attributes))
        copy.children = list(template.children)
        delay = copy.addElement((NS_DELAY, "delay"))
        delay["from"] = self.jid
        delay["stamp"] = stamp(when)
        return copy

    # -- permissions -----------------------------------------------------------------------

    @staticmethod
    def outranks(a: str, b: str) -> bool:
        """Whether affiliation C{a} is above affiliation C{b}."""
        return AFFILIATION_RANK[a] > AFFILIATION_RANK[b]

    def isAdmin(self, bare: str) -> bool:
        return self.affiliationOf(bare) in (ADMIN, OWNER)

    def isOwner(self, bare: str) -> bool:
        return self.affiliationOf(bare) == OWNER
