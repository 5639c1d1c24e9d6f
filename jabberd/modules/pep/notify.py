"""
Who receives a node's event notifications, and sending them (XEP-0163 §4).

Recipients, read from memory only (no store I/O per notification):

- the owner's available resources whose caps ask for C{node+notify};
- each contact the owner's roster lets see its presence ('from' or
  'both': the implicit "auto-subscribe" of §4.2) and the node's access
  model admits (L{mayReceive}): for a local contact, its available
  resources whose caps ask for the node; for a remote contact, the full
  JIDs that sent the owner available presence with such caps (tracked
  here from inbound presence, §4.3.1);
- each JID explicitly subscribed to the node (XEP-0060 §6.1) that the
  access model still admits, unless it was notified already.

A notification is built once and serialized once; each recipient gets a
shallow copy of the same C{<message/>} that differs only in its C{to}
(DESIGN.md: "build it once and vary only the to"), sent through the
Router so privacy lists and blocking apply (§4.3.3).

The last published item (§4.3.4, C{send_last_published_item} of
C{on_sub_and_presence}) goes to a resource when it becomes available with
caps asking for the node, and when caps it already had start asking for
it: for a local resource, from the account itself and every local contact
it is subscribed to ('to' or 'both'), their services loaded in one
transaction; for a remote one, from the account it sent presence to.  It
carries a XEP-0203 delay with the time it was published.

A notification's C{<items/>} holds only the item it is about (publish and
retract concern one item), and the last-item delivery only the newest, so
no notification ever carries more than the node's C{pubsub#max_items};
items that publishing pushes out of a full node are dropped silently
(XEP-0060 §7.1.2 "retract-oldest" without notification).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import timezone
from typing import TYPE_CHECKING, Any, Iterable

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd.modules.caps import CapsKey, capsOf, interestsOf
from jabberd.modules.pep.access import accessError, mayReceive
from jabberd.modules.pep.nodes import UNKNOWN, Node, Service
from jabberd.modules.pep.ns import NS_PUBSUB_EVENT
from jabberd.modules.roster import copyStanza
from jabberd.store.database import logFailure
from jabberd.store.pep import StoredItem, newest_item_txn
from jabberd.store.roster import RosterItem
from jabberd.xmlstream import NS_CLIENT

if TYPE_CHECKING:
    from jabberd.c2s.session import ClientSession
    from jabberd.modules.pep.module import PepModule

NS_DELAY = "urn:xmpp:delay"

#: Accounts whose remote contacts' presence (full JIDs and caps) is tracked.
MAX_REMOTE_OWNERS = 10000
#: Resources tracked per remote contact of one account.
MAX_REMOTE_RESOURCES = 16


class RemoteEntity:
    """A remote contact's resource that sent an account available presence: its caps and interests."""

    __slots__ = ("key", "interests")

    def __init__(self, key: CapsKey, interests: frozenset[str]) -> None:
        self.key = key
        self.interests = interests


def itemElement(item: StoredItem, uri: str = NS_PUBSUB_EVENT, payload: bool = True) -> domish.Element:
    """C{<item id=...>payload</item>} in C{uri} (the payload as stored, inserted without re-parsing)."""
    e = domish.Element((uri, "item"))
    e["id"] = item.id
    if payload:
        e.addRawXml(item.xml)
    return e


def itemsEvent(node: str, children: Iterable[domish.Element]) -> domish.Element:
    """C{<event><items node=...>children</items></event>}."""
    event = domish.Element((NS_PUBSUB_EVENT, "event"))
    items = event.addElement("items")
    items["node"] = node
    for child in children:
        items.addChild(child)
    return event


def nodeEvent(name: str, node: str) -> domish.Element:
    """C{<event><name node=.../></event>}: delete and purge notifications."""
    event = domish.Element((NS_PUBSUB_EVENT, "event"))
    event.addElement(name)["node"] = node
    return event


def stamp(item: StoredItem) -> str:
    """The XEP-0082 time of an item's publication."""
    return item.published.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


class NotifyMixin:
    """Recipients and delivery of notifications; part of L{PepModule}."""

    _remote: OrderedDict[str, dict[str, dict[str, RemoteEntity]]]

    # -- sending --------------------------------------------------------------------

    def _message(self: PepModule, owner: str, node: Node, event: domish.Element, *extra: domish.Element) -> domish.Element:
        """The notification, serialized once; copies differ only in 'to'."""
        message = domish.Element((NS_CLIENT, "message"))
        message["from"] = owner
        message["type"] = node.config.notification_type
        message["id"] = "pep-" + secrets.token_hex(6)
        message.children.append(domish.SerializedXML(event.toXml()))
        for child in extra:
            message.children.append(domish.SerializedXML(child.toXml()))
        return message

    def _sendTo(self, message: domish.Element, recipients: Iterable[str]) -> None:
        route = self.server.router.route  # type: ignore[attr-defined]
        for to in recipients:
            route(copyStanza(message, to=to))

    def broadcast(self: PepModule, service: Service, node: Node, event: domish.Element) -> defer.Deferred:
        """Send C{event} to everyone who receives C{node}'s notifications now."""
        if not node.config.deliver_notifications:
            return defer.succeed(None)
        owner = service.bare
        d = self.rosterOf(owner)
        d.addCallback(lambda items: self._sendTo(self._message(owner, node, event), self.recipients(owner, node, items)))
        d.addErrback(lambda f: logFailure(self.log, f, "sending PEP notifications of {owner} failed", owner=owner))
        return d

    def recipients(self: PepModule, owner: str, node: Node, items: dict[str, RosterItem] | None) -> list[str]:
        """The full JIDs that get C{node}'s notifications; C{items}: the owner's roster."""
        interests = self.caps.interests
        available = self.server.sessions.available
        name = node.name
        found = [s.jid.full() for s in available(owner) if name in interests(s)]  # type: ignore[union-attr]
        hosts = self.server.hosts
        remote = self._remote.get(owner)
        for jid, item in (items or {}).items():
            if not item.hasFrom or not mayReceive(node, owner, jid, item):
                continue
            if jid.rpartition("@")[2] in hosts:
                found.extend(s.jid.full() for s in available(jid) if name in interests(s))  # type: ignore[union-attr]
            elif remote is not None:
                for full, entity in remote.get(jid, {}).items():
                    if name in entity.interests:
                        found.append(full)
        if node.subscriptions:
            # Explicit subscribers (XEP-0060 §6.1): once each, and not an
            # entity already notified through its presence subscription.
            notified = {full.partition("/")[0] for full in found}
            whole: set[str] = set()  # accounts notified at their bare JID: every resource
            for jid in sorted(node.subscriptions):
                bare = jid.partition("/")[0]
                if bare in whole or (bare in notified and (bare == jid or jid in found)):
                    continue
                contact = items.get(bare) if items else None
                if bare != owner and accessError(node, owner, bare, contact) is not None:
                    continue
                found.append(jid)
                notified.add(bare)
                if bare == jid:
                    whole.add(bare)
        return found

    def sendLast(self: PepModule, service: Service, node: Node, to: str) -> None:
        """The node's last published item to the full JID C{to}, with its publication time (§4.3.4)."""
        last = node.last
        if last is UNKNOWN:
            d = self.services.run(service, "pep_newest", newest_item_txn, service.host, service.username, node.name)
            d.addCallback(self._newest, service, node, to)
            d.addErrback(lambda f: logFailure(self.log, f, "reading the last PEP item failed"))
            return
        if last is None or not node.config.deliver_notifications:
            return
        delay = domish.Element((NS_DELAY, "delay"))
        delay["stamp"] = stamp(last)
        event = itemsEvent(node.name, [itemElement(last, payload=node.config.deliver_payloads)])
        self._sendTo(self._message(service.bare, node, event, delay), [to])

    def _newest(self: PepModule, item: StoredItem | None, service: Service, node: Node, to: str) -> None:
        if service.nodes.get(node.name) is not node:
            return  # deleted meanwhile
        if node.last is UNKNOWN:
            node.last = item
        self.sendLast(service, node, to)

    # -- local resources coming online ----------------------------------------------------

    def presenceAvailable(self: PepModule, session: ClientSession) -> None:
        """Initial presence: the last items of the nodes its caps ask for."""
        interests = self.caps.interests(session)
        if interests:
            self._lastItemsFor(session, interests)

    def capsChanged(self: PepModule, session: ClientSession, previous: frozenset[str]) -> None:
        """Caps verified or changed: the last items of the nodes newly asked for (once available)."""
        if not session.available:
            return  # presenceAvailable sends them
        fresh = self.caps.interests(session) - previous
        if fresh:
            self._lastItemsFor(session, fresh)

    def _lastItemsFor(self: PepModule, session: ClientSession, interests: frozenset[str]) -> None:
        contact = session.bareJID
        owners: dict[str, RosterItem | None] = {contact: None}
        roster = self.roster.cachedRoster(contact) if self.roster is not None else None
        hosts = self.server.hosts
        for jid, item in (roster or {}).items():
            # The contact sees the owner's presence: the owner's roster gives
            # it 'from' (this server keeps the two local rosters in step).
            if item.hasTo and "/" not in jid and jid.rpartition("@")[2] in hosts and jid != contact:
                owners[jid] = RosterItem(contact, subscription="from")
        d = self.services.getMany(list(owners))
        d.addCallback(self._deliverLast, session, interests, owners)
        d.addErrback(lambda f: logFailure(self.log, f, "sending last PEP items failed"))

    def _deliverLast(
        self: PepModule,
        services: dict[str, Service],
        session: ClientSession,
        interests: frozenset[str],
        owners: dict[str, RosterItem | None],
    ) -> None:
        if not session.available or self.server.sessions.get(session.bareJID, session.resource) is not session:
            return
        to = session.jid.full()  # type: ignore[union-attr]
        contact = session.bareJID
        for owner, seen in owners.items():
            service = services.get(owner)
            if service is None:
                continue
            for name in sorted(interests & service.nodes.keys()):
                node = service.nodes[name]
                if node.config.send_last_published_item != "on_sub_and_presence":
                    continue
                if owner == contact or (node.config.access_model != "roster" and mayReceive(node, owner, contact, seen)):
                    self.sendLast(service, node, to)
                elif node.config.access_model == "roster":
                    # Roster groups are in the owner's roster only.
                    d = self.rosterItem(owner, contact)
                    d.addCallback(self._lastIfAllowed, service, node, contact, to)
                    d.addErrback(lambda f: logFailure(self.log, f, "reading a roster for PEP failed"))

    def _lastIfAllowed(self: PepModule, item: RosterItem | None, service: Service, node: Node, contact: str, to: str) -> None:
        if service.nodes.get(node.name) is node and mayReceive(node, service.bare, contact, item):
            self.sendLast(service, node, to)

    # -- remote contacts -------------------------------------------------------------------

    def inboundPresence(self: PepModule, stanza: domish.Element, fromJID: Any, toJID: Any) -> bool:
        """Presence from a remote contact's resource to an account: track its caps (never claims it)."""
        if fromJID is None or fromJID.resource is None or toJID.user is None or toJID.resource is not None:
            return False
        if fromJID.host in self.server.hosts:
            return False  # local contacts are read from their sessions
        type_ = stanza.getAttribute("type")
        owner, contact, full = toJID.userhost(), fromJID.userhost(), fromJID.full()
        if type_ in ("unavailable", "error"):
            self._forgetRemote(owner, contact, full)
            return False
        if type_ is not None:
            return False
        key = capsOf(stanza)
        if key is None:
            return False
        known = self._remote.get(owner, {}).get(contact, {}).get(full)
        if known is not None and known.key == key:
            return False
        d = self.rosterItem(owner, contact)
        d.addCallback(self._remoteAuthorized, owner, contact, full, key)
        d.addErrback(lambda f: logFailure(self.log, f, "tracking remote caps for PEP failed"))
        return False

    def _forgetRemote(self, owner: str, contact: str, full: str) -> None:
        contacts = self._remote.get(owner)
        if contacts is None:
            return
        resources = contacts.get(contact)
        if resources is not None:
            resources.pop(full, None)
            if not resources:
                del contacts[contact]
        if not contacts:
            del self._remote[owner]

    def _remoteAuthorized(self: PepModule, item: RosterItem | None, owner: str, contact: str, full: str, key: CapsKey) -> None:
        if item is None or not item.hasFrom:
            return  # only contacts that may see the owner's presence
        contacts = self._remote.get(owner)
        if contacts is None:
            contacts = self._remote[owner] = {}
            while len(self._remote) > MAX_REMOTE_OWNERS:
                self._remote.popitem(last=False)
        else:
            self._remote.move_to_end(owner)
        resources = contacts.setdefault(contact, {})
        entity = resources.get(full)
        if entity is not None and entity.key == key:
            return
        if entity is None and len(resources) >= MAX_REMOTE_RESOURCES:
            return
        entity = resources[full] = RemoteEntity(key, entity.interests if entity is not None else frozenset())
        d = self.caps.lookup(key, full, owner)
        d.addCallback(self._remoteResolved, owner, contact, full, entity, item)
        d.addErrback(lambda f: logFailure(self.log, f, "caps lookup for PEP failed"))

    def _remoteResolved(
        self: PepModule, features: frozenset[str] | None, owner: str, contact: str, full: str, entity: RemoteEntity, item: RosterItem
    ) -> None:
        if self._remote.get(owner, {}).get(contact, {}).get(full) is not entity:
            return
        previous, entity.interests = entity.interests, interestsOf(features)
        fresh = entity.interests - previous
        if not fresh:
            return
        d = self.services.get(owner)
        d.addCallback(self._remoteLast, fresh, contact, full, item)
        d.addErrback(lambda f: logFailure(self.log, f, "sending last PEP items failed"))

    def _remoteLast(self: PepModule, service: Service, interests: frozenset[str], contact: str, full: str, item: RosterItem) -> None:
        for name in sorted(interests & service.nodes.keys()):
            node = service.nodes[name]
            if node.config.send_last_published_item == "on_sub_and_presence" and mayReceive(node, service.bare, contact, item):
                self.sendLast(service, node, full)
