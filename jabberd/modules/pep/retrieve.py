"""
Retrieving items (XEP-0060 §6.5) and one's affiliations (§5.7).

Items: all of a node, the newest N (C{max_items}), or some by id; oldest
first, as the XEP's examples list them.  The owner may always retrieve;
anyone else as the node's access model allows (L{accessError}).  The
newest item is in memory, so the common "what is the current value"
request (C{max_items='1'}, or any request to a node that keeps one item)
is answered without the store; other requests read it, after the writes
queued before them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd.modules.pep.access import visibleNode
from jabberd.modules.pep.errors import PubsubError
from jabberd.modules.pep.nodes import UNKNOWN
from jabberd.modules.pep.notify import itemElement
from jabberd.modules.pep.ns import NS_PUBSUB
from jabberd.modules.pep.publish import checkName
from jabberd.store.pep import StoredItem, get_items_txn
from jabberd.xmlstream import iqResult

if TYPE_CHECKING:
    from jabberd.modules.pep.module import PepModule


class RetrieveMixin:
    """Items and affiliations a requester may see; part of L{PepModule}."""

    @defer.inlineCallbacks
    def items(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        name = checkName(action.getAttribute("node"))
        newest: int | None = None
        raw = action.getAttribute("max_items")
        if raw is not None:
            if not raw.isdigit() or int(raw) < 1:
                raise PubsubError("bad-request", None, "max_items must be a positive number")
            newest = int(raw)
        ids: list[str] = []
        for item in action.elements(NS_PUBSUB, "item"):
            if not item.getAttribute("id"):
                raise PubsubError("bad-request", "item-required", "ask for items by their id")
            ids.append(item["id"])
        if fromJID is None:
            raise PubsubError("forbidden")

        owner, requester = toJID.userhost(), fromJID.userhost()
        service, node = yield visibleNode(self, owner, requester, name)

        onlyNewest = not ids and (newest == 1 or node.config.keep(self.maxItems) == 1)
        if not node.config.persist_items or (onlyNewest and node.last is not UNKNOWN):
            found = [node.last] if isinstance(node.last, StoredItem) else []
            if ids:
                found = [item for item in found if item.id in ids]
        else:
            found = yield self.services.run(
                service, "pep_items", get_items_txn, service.host, service.username, name, ids or None, newest
            )

        reply = iqResult(iq)
        items = reply.addElement((NS_PUBSUB, "pubsub")).addElement("items")
        items["node"] = name
        for item in found:
            items.addChild(itemElement(item, NS_PUBSUB))
        self.server.router.route(reply)

    @defer.inlineCallbacks
    def ownAffiliations(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        """The requester's affiliations with the account's nodes (the account owns them all)."""
        if fromJID is None:
            raise PubsubError("forbidden")
        owner, requester = toJID.userhost(), fromJID.userhost()
        only = action.getAttribute("node")
        service = yield self.services.get(owner)
        if not service.exists:
            raise PubsubError("service-unavailable")
        reply = iqResult(iq)
        affiliations = reply.addElement((NS_PUBSUB, "pubsub")).addElement("affiliations")
        if only:
            affiliations["node"] = only
        for name in sorted(service.nodes):
            if only and name != only:
                continue
            affiliation = service.nodes[name].affiliation(owner, requester)
            if affiliation != "none":
                e = affiliations.addElement("affiliation")
                e["node"] = name
                e["affiliation"] = affiliation
        self.server.router.route(reply)
