"""
The MUC service: a tx_xmpp handler that owns the rooms of one domain.

It turns stanzas into calls on rooms and room features, keyed by dict
lookups (stanza kind, C{to} form, iq payload), never by an XPath per room:

- presence to C{room@service/nick} → L{components.muc.presence};
- C{groupchat} messages to C{room@service} → the C{groupchat} hooks (subject,
  then the broadcast); other messages to the room → C{roomMessage} hooks
  (invitations, declines, voice requests); messages to C{room@service/nick}
  → C{occupantMessage} (private messages); errors from an occupant's
  session → C{occupantError} (ghosts);
- iqs to the room → the features' C{iqs} tables (muc#admin, muc#owner),
  to an occupant → C{occupantIq} (relay, XEP-0410 self-ping); disco and
  ping are answered by the handlers next to this one (L{handlers}), which
  ask this service (L{IDisco}) for what to say.

Features are small classes in C{components/muc/features/}; each overrides
the hooks it needs (L{components.muc.features.base.RoomFeature}).

Persistence: persistent rooms are loaded at start and written behind,
one queue per room so writes keep their order on any backend; nothing
waits for the database on the way of a stanza.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from tx_xmpp.disco import DiscoFeature, DiscoIdentity, DiscoItem
from tx_xmpp.itx_xmpp import IDisco
from tx_xmpp.subprotocols import XMPPHandler
from zope.interface import implementer

from components.base import copyWithTo
from components.muc import store as S
from components.muc.constants import (
    NODE_ROOMUSER,
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    NS_MUC,
    NS_MUC_STABLE_ID,
    NS_MUC_TRAFFIC,
    OWNER,
    SHUTDOWN,
)
from components.muc.room import Affiliation, Room
from components.muc.roomconfig import RoomConfig
from jabberd import jid as J
from jabberd.inflight import InFlight
from jabberd.store.database import logFailure
from jabberd.xmlstream import errorReply

__all__ = ["MUCService", "HOOKS"]

#: The room events a feature can hook (see RoomFeature for the signatures).
HOOKS = (
    "checkJoin",
    "checkNick",
    "afterJoin",
    "beforeMessage",
    "groupchat",
    "broadcasted",
    "roomMessage",
    "occupantMessage",
    "occupantIq",
    "occupantError",
    "configChanged",
    "discoFeatures",
    "roomInfo",
    "discoItems",
)

#: Pending mediated invitations remembered (so a decline can only answer a real invitation).
MAX_INVITATIONS = 10000


def _timestamp(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _datetime(when: float | None) -> datetime | None:
    return datetime.fromtimestamp(when, timezone.utc) if when is not None else None


@implementer(IDisco)
class MUCService(XMPPHandler):
    """The rooms of one MUC domain, and the dispatch of its stanzas."""

    log = Logger()

    def __init__(
        self,
        domain: str,
        config: Any,
        store: Any = None,
        clock: Any = None,
        features: Iterable[type] | None = None,
        newID: Callable[[], str] | None = None,
    ) -> None:
        XMPPHandler.__init__(self)
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[no-redef]
        self.domain = domain
        self.config = config
        self.store = store
        self.clock = clock
        self.admins = frozenset(config.admins)
        self.creators = frozenset(config.room_creators)
        self.defaults = RoomConfig.fromDefaults(config.room_defaults)
        self.rooms: dict[str, Room] = {}
        self.owned: dict[str, set[str]] = {}  # bare JID -> names of rooms it owns
        self.invitations: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.newID = newID or (lambda: uuid.uuid4().hex)
        self._writes: dict[str, defer.Deferred] = {}
        self._writing = InFlight()
        if features is None:
            from components.muc.features import DEFAULT_FEATURES

            features = DEFAULT_FEATURES
        self.features = sorted((cls(self) for cls in features), key=lambda f: f.order)
        self.hooks: dict[str, list[Callable]] = {name: [] for name in HOOKS}
        self.roomIqs: dict[tuple[str, str, str], Callable] = {}
        for feature in self.features:
            for name in HOOKS:
                method = getattr(feature, name, None)
                if method is not None:
                    self.hooks[name].append(method)
            for key, methodName in feature.iqs.items():
                self.roomIqs[key] = getattr(feature, methodName)

    def feature(self, cls: type) -> Any:
        """The loaded instance of feature C{cls} (or None)."""
        for f in self.features:
            if isinstance(f, cls):
                return f
        return None

    # -- life cycle ---------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self):
        """Apply the MUC migrations and load the persistent rooms (before any stanza)."""
        if self.store is None:
            return
        yield self.store.runInteraction("muc_upgrade", S.upgrade_txn)
        stored = yield self.store.runInteraction("muc_load_rooms", S.load_rooms_txn, self.domain)
        for data in stored:
            room = Room(self, data.name, RoomConfig.fromDict(data.config, self.defaults), data.created)
            room.subject = data.subject
            room.subjectNick = data.subjectNick
            room.subjectTime = _timestamp(data.subjectTime)
            for jid, affiliation, nick, reason in data.affiliations:
                room.affiliations[jid] = Affiliation(affiliation, nick, reason)
                if affiliation == OWNER:
                    self.owned.setdefault(jid, set()).add(room.name)
            room.resizeHistory()
            self.rooms[room.name] = room
        self.log.info("MUC {domain}: {count} persistent rooms", domain=self.domain, count=len(stored))

    def connectionInitialized(self) -> None:
        xs = self.xmlstream
        xs.addObserver("/presence", self._onPresence, 10)
        xs.addObserver("/message", self._onMessage, 10)
        xs.addObserver("/iq", self._onIq, 10)

    def connectionLost(self, reason: Any) -> None:
        """The link to the server is gone: nobody can be reached, so nobody is in a room."""
        XMPPHandler.connectionLost(self, reason)
        for room in list(self.rooms.values()):
            for occupant in room.occupants.values():
                occupant.role = "none"
            room.occupants.clear()
            room.sessions.clear()
            room.changed()
            self.roomMaybeEmpty(room)

    def shutdown(self) -> None:
        """§11.2: tell every occupant the service is going away (status 332)."""
        for room in list(self.rooms.values()):
            if room.occupants:
                room.removeAll(SHUTDOWN)
            self.roomMaybeEmpty(room)

    def whenIdle(self) -> defer.Deferred:
        """Fires once every write behind has reached the store (tests, shutdown)."""
        return self._writing.whenIdle()

    # -- sending ------------------------------------------------------------------------

    def broadcast(self, template: domish.Element, tos: list[str]) -> None:
        """One stanza to many: the parent builds it once (see components.base)."""
        parent = self.parent
        fanout = getattr(parent, "broadcast", None)
        if fanout is not None:
            fanout(template, tos)
        else:
            for to in tos:
                self.send(copyWithTo(template, to))

    def error(self, stanza: domish.Element, condition: str, text: str | None = None, by: str | None = None,
              keepPayload: bool = True, errorType: str | None = None) -> None:
        """Answer C{stanza} with an error (never an error to an error)."""
        if stanza.getAttribute("type") == "error" or not stanza.getAttribute("from"):
            return
        if stanza.name == "iq" and stanza.getAttribute("type") == "result":
            return
        reply = errorReply(stanza, condition, text, errorType=errorType, by=by)
        if stanza.name == "presence":
            # §7.2.6 ff.: a join error carries an empty muc <x/>, never the password.
            reply.children = [c for c in reply.children if getattr(c, "name", None) == "error"]
            reply.children.insert(0, domish.Element((NS_MUC, "x")))
        elif not keepPayload:
            reply.children = [c for c in reply.children if getattr(c, "name", None) == "error"]
        self.send(reply)

    # -- dispatch ---------------------------------------------------------------------------

    def _addresses(self, stanza: domish.Element) -> tuple[J.JID, J.JID] | None:
        try:
            return J.parse(stanza["from"]), J.parse(stanza["to"])
        except (KeyError, J.InvalidJID):
            return None

    def _onPresence(self, stanza: domish.Element) -> None:
        stanza.handled = True
        addresses = self._addresses(stanza)
        if addresses is None:
            return
        fromJID, toJID = addresses
        if toJID.host != self.domain or toJID.user is None:
            return
        from components.muc import presence

        presence.handle(self, fromJID, toJID, stanza)

    def _onMessage(self, stanza: domish.Element) -> None:
        stanza.handled = True
        addresses = self._addresses(stanza)
        if addresses is None:
            return
        fromJID, toJID = addresses
        type_ = stanza.getAttribute("type")
        if toJID.host != self.domain or toJID.user is None:
            self.error(stanza, "service-unavailable")
            return
        room = self.rooms.get(toJID.user)
        session = fromJID.full()
        occupant = room.sessions.get(session) if room is not None else None
        if type_ == "error":
            if occupant is not None:
                for hook in self.hooks["occupantError"]:
                    if hook(room, occupant, session, stanza):
                        return
            return
        if room is None or (room.locked and occupant is None):
            self.error(stanza, "item-not-found", by=self.roomJID(toJID))
            return
        if occupant is not None:
            for hook in self.hooks["beforeMessage"]:
                if hook(room, occupant, stanza):
                    return
        if toJID.resource is not None:
            for hook in self.hooks["occupantMessage"]:
                if hook(room, fromJID, occupant, toJID.resource, stanza):
                    return
            self.error(stanza, "feature-not-implemented", by=room.jid)
        elif type_ == "groupchat":
            if occupant is None:
                self.error(stanza, "not-acceptable", "you are not in the room", by=room.jid)
                return
            for hook in self.hooks["groupchat"]:
                if hook(room, occupant, session, stanza):
                    return
        else:
            for hook in self.hooks["roomMessage"]:
                if hook(room, fromJID, occupant, stanza):
                    return
            self.error(stanza, "bad-request", "messages to all occupants are of type groupchat", by=room.jid)

    def _onIq(self, iq: domish.Element) -> None:
        addresses = self._addresses(iq)
        if addresses is None:
            iq.handled = True
            return
        fromJID, toJID = addresses
        type_ = iq.getAttribute("type")
        if toJID.host != self.domain:
            iq.handled = True
            self.error(iq, "service-unavailable")
            return
        if toJID.user is None:
            return  # the service itself: disco, ping (the other handlers)
        room = self.rooms.get(toJID.user)
        if toJID.resource is not None:
            iq.handled = True
            if room is None:
                self.error(iq, "item-not-found", by=self.roomJID(toJID))
                return
            occupant = room.sessions.get(fromJID.full())
            for hook in self.hooks["occupantIq"]:
                if hook(room, fromJID, occupant, toJID.resource, iq):
                    return
            self.error(iq, "service-unavailable")
            return
        if type_ not in ("get", "set"):
            return  # an answer to a request of ours (tracked by the stream manager) or nothing
        payload = next(iq.elements(), None)
        if payload is None:
            return
        handler = self.roomIqs.get((type_, payload.uri, payload.name))
        if handler is None:
            return  # disco, ping, or service-unavailable from the fallback handler
        iq.handled = True
        if room is None:
            self.error(iq, "item-not-found", by=self.roomJID(toJID))
            return
        handler(room, iq, fromJID, room.sessions.get(fromJID.full()))

    def roomJID(self, toJID: J.JID) -> str:
        return toJID.userhost()

    # -- rooms ---------------------------------------------------------------------------------

    def mayCreate(self, bare: str) -> tuple[str, str] | None:
        """Whether C{bare} may create a room now: None, or (condition, text)."""
        if bare in self.admins:
            return None
        if self.creators and bare not in self.creators and bare.rpartition("@")[2] not in self.creators:
            return ("not-allowed", "room creation is restricted")
        if len(self.rooms) >= self.config.max_rooms:
            return ("resource-constraint", "this service holds as many rooms as it may")
        if len(self.owned.get(bare, ())) >= self.config.max_rooms_per_user:
            return ("resource-constraint", "you own as many rooms as you may")
        return None

    def createRoom(self, name: str, owner: str) -> Room:
        """A new locked room owned by C{owner}, awaiting configuration (§10.1.1)."""
        room = Room(self, name, self.defaults.copy(), datetime.now(timezone.utc), locked=True)
        self.rooms[name] = room
        room.setAffiliation(owner, OWNER)
        return room

    def unlock(self, room: Room) -> None:
        """The owner configured the room: others may enter, and a persistent one is stored."""
        room.locked = False
        if room.config.persistent:
            self.saveRoom(room, withAffiliations=True)

    def ownershipChanged(self, room: Room, bare: str, old: str, new: str) -> None:
        if old == OWNER and new != OWNER:
            rooms = self.owned.get(bare)
            if rooms is not None:
                rooms.discard(room.name)
                if not rooms:
                    del self.owned[bare]
        elif new == OWNER and old != OWNER:
            self.owned.setdefault(bare, set()).add(room.name)

    def occupantGone(self, room: Room, occupant: Any) -> None:
        """An occupant left or was removed (all its sessions)."""

    def roomMaybeEmpty(self, room: Room) -> None:
        """A temporary (or never configured) room without occupants ceases to exist."""
        if room.occupants or self.rooms.get(room.name) is not room:
            return
        if room.locked or not room.config.persistent:
            self.dropRoom(room)

    def dropRoom(self, room: Room) -> None:
        """Forget a room (empty temporary, or destroyed)."""
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        for bare in room.owners():
            rooms = self.owned.get(bare)
            if rooms is not None:
                rooms.discard(room.name)
                if not rooms:
                    del self.owned[bare]
        if room.config.persistent and not room.locked:
            self.forgetRoom(room)

    def rememberInvitation(self, room: Room, invitee: str, inviter: str) -> None:
        key = (room.name, invitee)
        self.invitations[key] = inviter
        self.invitations.move_to_end(key)
        while len(self.invitations) > MAX_INVITATIONS:
            self.invitations.popitem(last=False)

    # -- persistence -------------------------------------------------------------------------------

    def _write(self, room: Room, desc: str, fn: Callable, *args: Any) -> None:
        """Run a write behind, after the room's previous writes."""
        if self.store is None:
            return
        name = room.name
        self._writing.begin()
        done: defer.Deferred = defer.Deferred()
        previous = self._writes.get(name)
        self._writes[name] = done

        def run(_: Any = None) -> None:
            d = self.store.runInteraction(desc, fn, *args)
            d.addErrback(lambda f: logFailure(self.log, f, "MUC {desc} failed for {room}", desc=desc, room=room.jid))
            d.addBoth(finished)

        def finished(_: Any) -> None:
            if self._writes.get(name) is done:
                del self._writes[name]
            done.callback(None)
            self._writing.end()

        if previous is None:
            run()
        else:
            previous.addCallback(run)

    def saveRoom(self, room: Room, withAffiliations: bool = False) -> None:
        """Write a persistent room's configuration and subject (and all affiliations)."""
        affiliations = None
        if withAffiliations:
            affiliations = [(j, a.affiliation, a.nick, a.reason) for j, a in sorted(room.affiliations.items())]
        self._write(
            room, "muc_save_room", S.save_room_txn, self.domain, room.name, room.config.toDict(),
            room.subject, room.subjectNick, _datetime(room.subjectTime), room.created, affiliations,
        )

    def saveAffiliation(self, room: Room, bare: str, affiliation: str, nick: str | None, reason: str | None) -> None:
        self._write(room, "muc_set_affiliation", S.set_affiliation_txn, self.domain, room.name, bare, affiliation, nick, reason)

    def forgetRoom(self, room: Room) -> None:
        self._write(room, "muc_delete_room", S.delete_room_txn, self.domain, room.name)

    # -- service discovery (IDisco: asked by the disco handler) -----------------------------------

    def visibleRoom(self, name: str | None, requestor: Any) -> Room | None:
        """The room, unless it does not exist for the requestor (a locked room exists only for its owners)."""
        room = self.rooms.get(name) if name else None
        if room is None:
            return None
        if room.locked and (requestor is None or not room.isOwner(requestor.userhost())):
            return None
        return room

    def getDiscoInfo(self, requestor: Any, target: Any, nodeIdentifier: str = "") -> list:
        if target.user is None:
            if nodeIdentifier:
                return []
            return [
                DiscoIdentity("conference", "text", self.config.name),
                DiscoFeature(NS_DISCO_INFO),
                DiscoFeature(NS_DISCO_ITEMS),
                DiscoFeature(NS_MUC),
                DiscoFeature(NS_MUC_STABLE_ID),
            ]
        room = self.visibleRoom(target.user, requestor)
        if room is None:
            raise jerror.StanzaError("item-not-found")
        if nodeIdentifier == NODE_ROOMUSER:
            nick = room.reservedNick(requestor.userhost()) if requestor is not None else None
            return [DiscoIdentity("conference", "text", nick)] if nick else []
        if nodeIdentifier == NS_MUC_TRAFFIC:
            raise jerror.StanzaError("feature-not-implemented")
        if nodeIdentifier:
            return []
        info: list = [DiscoIdentity("conference", "text", room.config.name or room.name)]
        features = {NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC_STABLE_ID}
        for hook in self.hooks["discoFeatures"]:
            features.update(hook(room))
        info.extend(DiscoFeature(f) for f in sorted(features))
        fields: list = []
        for hook in self.hooks["roomInfo"]:
            fields.extend(hook(room))
        if fields:
            from components.muc.features.discovery import roomInfoForm

            info.append(roomInfoForm(fields))
        return info

    def getDiscoItems(self, requestor: Any, target: Any, nodeIdentifier: str = "") -> list:
        if nodeIdentifier:
            return []
        if target.user is None:
            rooms = [r for r in self.rooms.values() if r.config.public and not r.locked]
            rooms.sort(key=lambda r: r.name)
            return [DiscoItem(JID(r.jid), name=r.config.name or None) for r in rooms]
        room = self.visibleRoom(target.user, requestor)
        if room is None:
            raise jerror.StanzaError("item-not-found")
        items: list = []
        for hook in self.hooks["discoItems"]:
            items.extend(DiscoItem(JID(j)) for j in hook(room, requestor))
        return items
