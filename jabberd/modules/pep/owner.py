"""
The owner's use cases (XEP-0060 §8): configure a node (get the form, submit
it, cancel), the default configuration, delete a node (with delete
notifications, C{pubsub#notify_delete}), purge its items (one C{<purge/>}
notification, C{pubsub#notify_retract}) and manage affiliations.

Affiliations are how the owner fills a whitelist (§4.5: "member") or bans
someone from any access model ("outcast"); the account itself is always
the owner and only publisher (XEP-0163 §3.2), so "owner", "publisher" and
"publish-only" cannot be given to anyone else.  As §8.9.2.4 asks, the
valid changes of a request are applied and the invalid ones are returned,
with their affiliation unchanged, in a not-acceptable error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd import jid as J
from jabberd.modules.pep.config import NS_NODE_CONFIG, ConfigError, NodeConfig, applyForm, checkFormType, configForm, formOf, formValues
from jabberd.modules.pep.errors import PubsubError, noSuchNode, unsupported
from jabberd.modules.pep.notify import nodeEvent
from jabberd.modules.pep.ns import NS_PUBSUB_OWNER
from jabberd.modules.pep.publish import checkName
from jabberd.store.pep import StoredItem, delete_node_txn, purge_node_txn, set_affiliations_txn, set_node_config_txn
from jabberd.xmlstream import errorReply, iqResult

if TYPE_CHECKING:
    from jabberd.modules.pep.module import PepModule

#: Affiliations an owner may give (and "none" takes them away).
SETTABLE = ("none", "member", "outcast")


class OwnerMixin:
    """pubsub#owner requests of the account; part of L{PepModule}."""

    @defer.inlineCallbacks
    def _node(self: PepModule, action: domish.Element, toJID: Any):
        name = checkName(action.getAttribute("node"))
        service = yield self.services.get(toJID.userhost())
        node = service.nodes.get(name)
        if node is None:
            raise noSuchNode()
        return service, node

    def _ownerReply(self, iq: domish.Element, name: str, node: str | None = None) -> tuple[domish.Element, domish.Element]:
        reply = iqResult(iq)
        child = reply.addElement((NS_PUBSUB_OWNER, "pubsub")).addElement(name)
        if node is not None:
            child["node"] = node
        return reply, child

    # -- configuration ----------------------------------------------------------------

    @defer.inlineCallbacks
    def configureGet(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        service, node = yield self._node(action, toJID)
        groups = yield self.rosterGroups(service.bare)
        reply, configure = self._ownerReply(iq, "configure", node.name)
        configure.addChild(configForm(node.config, "form", groups))
        self.server.router.route(reply)

    @defer.inlineCallbacks
    def configureSet(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        form = formOf(action)
        if form is None:
            raise PubsubError("bad-request", None, "submit a pubsub#node_config form")
        service, node = yield self._node(action, toJID)
        if form.getAttribute("type") == "cancel":
            self.server.router.route(iqResult(iq))
            return
        values = formValues(form)
        try:
            checkFormType(values, NS_NODE_CONFIG)
            config = applyForm(node.config, values, self.maxItems)
        except ConfigError as e:
            raise PubsubError("not-acceptable", None, str(e)) from None
        old, node.config = node.config, config
        # Items kept only in memory while the node did not persist them are
        # stored when it starts to; stored ones go when it stops.
        last = node.last if config.persist_items and not old.persist_items and isinstance(node.last, StoredItem) else None
        keep = config.keep(self.maxItems) if config.persist_items else 0
        yield self.services.run(
            service, "pep_configure", set_node_config_txn, service.host, service.username, node.name, config.toDict(), keep, last
        )
        self.server.router.route(iqResult(iq))

    def default(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any) -> None:
        reply, default = self._ownerReply(iq, "default")
        default.addChild(configForm(NodeConfig(), "form"))
        self.server.router.route(reply)

    # -- deleting and purging -----------------------------------------------------------

    @defer.inlineCallbacks
    def delete(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        service, node = yield self._node(action, toJID)
        del service.nodes[node.name]
        yield self.services.run(service, "pep_delete", delete_node_txn, service.host, service.username, node.name)
        self.server.router.route(iqResult(iq))
        if node.config.notify_delete:
            self.broadcast(service, node, nodeEvent("delete", node.name))

    @defer.inlineCallbacks
    def purge(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        service, node = yield self._node(action, toJID)
        node.last = None
        yield self.services.run(service, "pep_purge", purge_node_txn, service.host, service.username, node.name)
        self.server.router.route(iqResult(iq))
        if node.config.notify_retract and service.nodes.get(node.name) is node:
            self.broadcast(service, node, nodeEvent("purge", node.name))

    # -- affiliations -----------------------------------------------------------------------

    @defer.inlineCallbacks
    def affiliationsGet(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        service, node = yield self._node(action, toJID)
        reply, affiliations = self._ownerReply(iq, "affiliations", node.name)
        listed = {service.bare: "owner", **node.affiliations}
        for jid in sorted(listed):
            e = affiliations.addElement("affiliation")
            e["jid"] = jid
            e["affiliation"] = listed[jid]
        self.server.router.route(reply)

    @defer.inlineCallbacks
    def affiliationsSet(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        entries: list[tuple[str, str | None]] = []
        for e in action.elements(NS_PUBSUB_OWNER, "affiliation"):
            try:
                jid = J.parse(e.getAttribute("jid") or "").userhost()
            except J.InvalidJID:
                raise PubsubError("jid-malformed", None, "an affiliation names a malformed JID") from None
            if any(jid == seen for seen, _ in entries):
                raise PubsubError("bad-request", None, f"{jid} is listed twice")
            wanted = e.getAttribute("affiliation")
            if wanted is not None and wanted not in SETTABLE + ("owner", "publisher", "publish-only"):
                raise PubsubError("bad-request", None, f"{wanted!r} is not an affiliation")
            if wanted in ("publisher", "publish-only"):
                raise unsupported(f"{wanted}-affiliation", "only the account publishes to its nodes")
            entries.append((jid, wanted))
        service, node = yield self._node(action, toJID)
        owner = service.bare
        changes: dict[str, str | None] = {}
        refused: list[str] = []
        for jid, wanted in entries:
            if wanted is None:
                continue  # §8.9.2.1: no 'affiliation', no change
            if (jid == owner) != (wanted == "owner"):
                refused.append(jid)  # the account stays the one owner
            elif jid != owner:
                changes[jid] = None if wanted == "none" else wanted
        for jid, wanted in changes.items():
            if wanted is None:
                node.affiliations.pop(jid, None)
            else:
                node.affiliations[jid] = wanted
        if changes:
            yield self.services.run(service, "pep_affiliations", set_affiliations_txn, service.host, service.username, node.name, changes)
        if not refused:
            self.server.router.route(iqResult(iq))
            return
        error = errorReply(iq, "not-acceptable", "the account is the one owner of its nodes")
        affiliations = domish.Element((NS_PUBSUB_OWNER, "pubsub")).addElement("affiliations")
        affiliations["node"] = node.name
        for jid in refused:
            e = affiliations.addElement("affiliation")
            e["jid"] = jid
            e["affiliation"] = node.affiliation(owner, jid)
        error.children.insert(0, affiliations.parent)
        self.server.router.route(error)
