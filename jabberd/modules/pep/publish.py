"""
Publishing (XEP-0060 §7.1, XEP-0163 §3.1), retracting (§7.2) and creating
nodes (§8.1) — the owner's side of the items.

- Publish creates the node when it does not exist (auto-create), with the
  default configuration except what C{<publish-options/>} asks for;
  when the node exists, each publish option is a precondition the node's
  configuration must meet, or the publish fails with conflict and
  C{<precondition-not-met/>} (XEP-0223, XEP-0222).  An item without an
  id gets a generated one; the result always names the item.  One item
  with exactly one payload; payloads over C{[limits] max_pep_payload_size}
  are refused (not-acceptable, C{<payload-too-big/>}); an account has at
  most C{[limits] max_pep_nodes} nodes (policy-violation).
- Retract deletes one item and notifies (the C{notify} attribute, else
  C{pubsub#notify_retract}).
- Create makes an empty node, configured by a C{<configure/>} form beside it.

Memory changes at once (so the next request sees it); the store is written
in order and the requester is answered, and notifications sent, once the
write is done.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd.modules.pep.config import (
    NS_NODE_CONFIG,
    NS_PUBLISH_OPTIONS,
    ConfigError,
    NodeConfig,
    applyForm,
    checkFormType,
    formOf,
    formValues,
    unmetPrecondition,
)
from jabberd.modules.pep.errors import PubsubError, nodeRequired, noSuchNode
from jabberd.modules.pep.nodes import UNKNOWN, Node, Service
from jabberd.modules.pep.notify import itemElement, itemsEvent
from jabberd.modules.pep.ns import NS_PUBSUB, NS_PUBSUB_EVENT
from jabberd.store.pep import NAME_LENGTH, StoredItem, create_node_txn, publish_item_txn, retract_item_txn
from jabberd.xmlstream import iqResult

if TYPE_CHECKING:
    from jabberd.modules.pep.module import PepModule


def checkName(name: str | None, what: str = "node") -> str:
    """A NodeID or ItemID: present and storable."""
    if not name:
        raise nodeRequired()
    if len(name) > NAME_LENGTH:
        raise PubsubError("not-acceptable", None, f"a {what} name is limited to {NAME_LENGTH} characters")
    return name


def _child(parent: domish.Element, name: str) -> domish.Element | None:
    return next(parent.elements(parent.uri, name), None)


class PublishMixin:
    """Publish, retract and create; part of L{PepModule}."""

    def createNode(self: PepModule, service: Service, name: str, config: NodeConfig) -> tuple[Node, defer.Deferred]:
        """Add the node C{name} (the account's quota allowing); the Deferred fires once it is stored."""
        if len(service.nodes) >= self.maxNodes:
            raise PubsubError("policy-violation", None, f"an account may have at most {self.maxNodes} nodes")
        node = service.nodes[name] = Node(name, config)
        d = self.services.run(service, "pep_create", create_node_txn, service.host, service.username, name, config.toDict())
        return node, d

    @defer.inlineCallbacks
    def publish(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        name = checkName(action.getAttribute("node"))
        items = list(action.elements(NS_PUBSUB, "item"))
        if not items:
            raise PubsubError("bad-request", "item-required")
        if len(items) > 1:
            raise PubsubError("bad-request", "invalid-payload", "publish one item at a time")
        payloads = list(items[0].elements())
        if not payloads:
            raise PubsubError("bad-request", "payload-required")
        if len(payloads) > 1:
            raise PubsubError("bad-request", "invalid-payload", "an item carries exactly one payload")
        itemId = items[0].getAttribute("id") or uuid.uuid4().hex
        checkName(itemId, "item")
        xml = payloads[0].toXml()
        if len(xml.encode("utf-8")) > self.maxPayload:
            raise PubsubError("not-acceptable", "payload-too-big", f"a payload is limited to {self.maxPayload} bytes")
        options = formOf(_child(pubsub, "publish-options"))
        values = formValues(options) if options is not None else {}
        if values:
            try:
                checkFormType(values, NS_PUBLISH_OPTIONS)
            except ConfigError as e:
                raise PubsubError("bad-request", None, str(e)) from None

        service = yield self.services.get(toJID.userhost())
        node = service.nodes.get(name)
        if node is None:
            try:
                config = applyForm(NodeConfig(), values, self.maxItems)
            except ConfigError as e:
                raise PubsubError("conflict", "precondition-not-met", str(e)) from None
            node, created = self.createNode(service, name, config)
            created.addErrback(lambda f: None)  # the publish after it fails too, and says so
        elif values:
            unmet = unmetPrecondition(node.config, values, self.maxItems)
            if unmet is not None:
                raise PubsubError("conflict", "precondition-not-met", f"the node does not have that {unmet}")
        item = StoredItem(itemId, xml, fromJID.full(), self.now())
        node.last = item
        if node.config.persist_items:
            keep = node.config.keep(self.maxItems)
            yield self.services.run(service, "pep_publish", publish_item_txn, service.host, service.username, name, item, keep)
        else:
            yield self.services.run(service, "pep_publish", None)

        reply = iqResult(iq)
        published = reply.addElement((NS_PUBSUB, "pubsub")).addElement("publish")
        published["node"] = name
        published.addElement("item")["id"] = itemId
        self.server.router.route(reply)
        if service.nodes.get(name) is node:
            self.broadcast(service, node, itemsEvent(name, [itemElement(item, payload=node.config.deliver_payloads)]))

    @defer.inlineCallbacks
    def retract(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        name = checkName(action.getAttribute("node"))
        items = list(action.elements(NS_PUBSUB, "item"))
        if len(items) != 1 or not items[0].getAttribute("id"):
            raise PubsubError("bad-request", "item-required")
        itemId = items[0]["id"]
        flag = action.getAttribute("notify")
        notify = True if flag in ("1", "true") else False if flag in ("0", "false") else None

        service = yield self.services.get(toJID.userhost())
        node = service.nodes.get(name)
        if node is None:
            raise noSuchNode()
        wasLast = isinstance(node.last, StoredItem) and node.last.id == itemId
        if node.config.persist_items:
            if wasLast:
                node.last = UNKNOWN  # until the store says which item is the newest now
            deleted, newest = yield self.services.run(
                service, "pep_retract", retract_item_txn, service.host, service.username, name, itemId
            )
            if node.last is UNKNOWN:
                node.last = newest
        else:
            if not wasLast:
                raise PubsubError("item-not-found")
            node.last = None
            deleted = True
            yield self.services.run(service, "pep_retract", None)
        if not deleted:
            raise PubsubError("item-not-found")

        self.server.router.route(iqResult(iq))
        if (node.config.notify_retract if notify is None else notify) and service.nodes.get(name) is node:
            retracted = domish.Element((NS_PUBSUB_EVENT, "retract"))
            retracted["id"] = itemId
            self.broadcast(service, node, itemsEvent(name, [retracted]))

    @defer.inlineCallbacks
    def create(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        name = action.getAttribute("node")
        if not name:
            # No instant nodes: PEP nodes are named by their payload's namespace.
            raise PubsubError("not-acceptable", "nodeid-required")
        checkName(name)
        form = formOf(_child(pubsub, "configure"))
        config = NodeConfig()
        if form is not None and form.getAttribute("type") != "cancel":
            values = formValues(form)
            try:
                checkFormType(values, NS_NODE_CONFIG)
                config = applyForm(config, values, self.maxItems)
            except ConfigError as e:
                raise PubsubError("not-acceptable", None, str(e)) from None

        service = yield self.services.get(toJID.userhost())
        if name in service.nodes:
            raise PubsubError("conflict", None, "the node exists")
        _, stored = self.createNode(service, name, config)
        yield stored
        self.server.router.route(iqResult(iq))
