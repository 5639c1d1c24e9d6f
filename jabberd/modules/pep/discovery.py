"""
Service discovery of the account's PEP service (XEP-0163 §5, XEP-0060 §5).

Through the disco module's account events (which already answer only the
account itself and contacts allowed to see its presence):

- disco#info of the bare JID: the C{pubsub/pep} identity (the features come
  from the module's C{accountFeatures});
- disco#info of a node: C{pubsub/leaf} and the pubsub feature;
- disco#items of the bare JID: the nodes the requester may retrieve items
  from (§5: "MUST return only those nodes to which the contact is allowed
  to subscribe or from which [it] is allowed to retrieve items");
- disco#items of a node: its item ids (XEP-0060 §5.5).

A node the requester may not see is answered like one that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer

from jabberd.modules.disco import DiscoRequest
from jabberd.modules.pep.access import accessError
from jabberd.modules.pep.ns import NS_PUBSUB
from jabberd.store.pep import StoredItem, item_ids_txn

if TYPE_CHECKING:
    from jabberd.modules.pep.module import PepModule


class DiscoveryMixin:
    """disco#info and disco#items of the PEP service; part of L{PepModule}."""

    @defer.inlineCallbacks
    def visibleNodes(self: PepModule, owner: str, requester: str | None):
        """The service of C{owner} and the names of the nodes C{requester} may see."""
        service = yield self.services.get(owner)
        if requester == owner:
            return service, sorted(service.nodes)
        if requester is None:
            return service, []
        contact = yield self.rosterItem(owner, requester)
        names = sorted(name for name, node in service.nodes.items() if accessError(node, owner, requester, contact) is None)
        return service, names

    def _requester(self, request: DiscoRequest) -> str | None:
        return request.fromJID.userhost() if request.fromJID is not None else None

    def discoInfo(self: PepModule, request: DiscoRequest) -> None:
        if request.node is None:
            request.addIdentity("pubsub", "pep")
            return
        d = self.visibleNodes(request.toJID.userhost(), self._requester(request))

        def answer(found) -> None:
            _, names = found
            if request.node in names:
                request.addIdentity("pubsub", "leaf")
                request.addFeature(NS_PUBSUB)
                request.found = True

        request.wait(d.addCallback(answer))

    def discoItems(self: PepModule, request: DiscoRequest) -> None:
        owner = request.toJID.userhost()
        d = self.visibleNodes(owner, self._requester(request))

        @defer.inlineCallbacks
        def answer(found):
            service, names = found
            if request.node is None:
                for name in names:
                    request.addItem(owner, name)
                return
            if request.node not in names:
                return
            node = service.nodes[request.node]
            if node.config.persist_items:
                ids = yield self.services.run(service, "pep_item_ids", item_ids_txn, service.host, service.username, node.name)
            else:
                ids = [node.last.id] if isinstance(node.last, StoredItem) else []
            for itemId in ids:
                request.addItem(owner, name=itemId)
            request.found = True

        request.wait(d.addCallback(answer))
