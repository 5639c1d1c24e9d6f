"""
Explicit subscriptions (XEP-0060 §6.1-6.2, §5.6), which XEP-0163 §8
requires besides the implicit ones a presence subscription gives: how an
entity without one — a stranger following an open node — gets
notifications.

- Subscribe: the 'jid' must be the requester's own (bare or full,
  C{<invalid-jid/>} otherwise); the node's access model decides as for
  retrieving items; the subscription is stored, answered with
  C{subscription='subscribed'}, and the last item follows
  (C{send_last_published_item} C{on_sub} or C{on_sub_and_presence}).
  A node has at most C{[limits] max_roster_size} explicit subscribers.
- Unsubscribe: C{<not-subscribed/>} when there is nothing to cancel.
- Subscriptions: the requester's own, for every node or one.

Notifications go to the subscribed JID itself (a bare JID then follows the
usual message rules), once: not to an entity already notified through its
presence subscription, and only while the access model still admits it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd import jid as J
from jabberd.modules.pep.access import visibleNode
from jabberd.modules.pep.errors import PubsubError, noSuchNode
from jabberd.modules.pep.ns import NS_PUBSUB
from jabberd.modules.pep.publish import checkName
from jabberd.store.pep import set_subscription_txn
from jabberd.xmlstream import iqResult

if TYPE_CHECKING:
    from jabberd.modules.pep.module import PepModule


class SubscribeMixin:
    """subscribe, unsubscribe and subscriptions; part of L{PepModule}."""

    def _subscriber(self, action: domish.Element, fromJID: Any) -> str:
        raw = action.getAttribute("jid")
        if not raw:
            raise PubsubError("bad-request", "jid-required")
        try:
            subscriber = J.parse(raw)
        except J.InvalidJID:
            raise PubsubError("bad-request", "invalid-jid") from None
        if fromJID is None or subscriber.userhost() != fromJID.userhost():
            raise PubsubError("bad-request", "invalid-jid", "subscribe your own JID")
        return subscriber.full()

    def _subscriptionReply(self, iq: domish.Element, node: str, jid: str) -> domish.Element:
        reply = iqResult(iq)
        e = reply.addElement((NS_PUBSUB, "pubsub")).addElement("subscription")
        e["node"] = node
        e["jid"] = jid
        e["subscription"] = "subscribed"
        return reply

    @defer.inlineCallbacks
    def subscribe(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        name = checkName(action.getAttribute("node"))
        jid = self._subscriber(action, fromJID)
        owner, requester = toJID.userhost(), fromJID.userhost()
        service, node = yield visibleNode(self, owner, requester, name)
        if jid not in node.subscriptions:
            limit = self.server.config.limits.max_roster_size
            if len(node.subscriptions) >= limit:
                raise PubsubError("policy-violation", None, f"a node has at most {limit} subscribers")
            node.subscriptions.add(jid)
            yield self.services.run(service, "pep_subscribe", set_subscription_txn, service.host, service.username, name, jid, True)
        self.server.router.route(self._subscriptionReply(iq, name, jid))
        if node.config.send_last_published_item in ("on_sub", "on_sub_and_presence"):
            self.sendLast(service, node, jid)

    @defer.inlineCallbacks
    def unsubscribe(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        name = checkName(action.getAttribute("node"))
        jid = self._subscriber(action, fromJID)
        service = yield self.services.get(toJID.userhost())
        node = service.nodes.get(name)
        if node is None:
            raise noSuchNode()
        if jid not in node.subscriptions:
            raise PubsubError("unexpected-request", "not-subscribed")
        node.subscriptions.discard(jid)
        yield self.services.run(service, "pep_unsubscribe", set_subscription_txn, service.host, service.username, name, jid, False)
        self.server.router.route(iqResult(iq))

    @defer.inlineCallbacks
    def subscriptions(self: PepModule, iq: domish.Element, pubsub: domish.Element, action: domish.Element, fromJID: Any, toJID: Any):
        if fromJID is None:
            raise PubsubError("forbidden")
        requester = fromJID.userhost()
        only = action.getAttribute("node")
        service = yield self.services.get(toJID.userhost())
        if not service.exists:
            raise PubsubError("service-unavailable")
        reply = iqResult(iq)
        listed = reply.addElement((NS_PUBSUB, "pubsub")).addElement("subscriptions")
        if only:
            listed["node"] = only
        for name in sorted(service.nodes):
            if only and name != only:
                continue
            for jid in sorted(service.nodes[name].subscriptions):
                if jid.partition("/")[0] == requester:
                    e = listed.addElement("subscription")
                    e["node"] = name
                    e["jid"] = jid
                    e["subscription"] = "subscribed"
        self.server.router.route(reply)
