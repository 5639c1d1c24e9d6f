"""
The PEP module: every account's bare JID is a pubsub service (XEP-0163).

This file holds the module class, its hooks and the dispatch of pubsub
iqs; each feature lives in its own file and is mixed in:

- L{publish<jabberd.modules.pep.publish>}: publish (auto-create,
  publish-options), retract, create;
- L{retrieve<jabberd.modules.pep.retrieve>}: items, the requester's affiliations;
- L{subscribe<jabberd.modules.pep.subscribe>}: explicit subscriptions;
- L{owner<jabberd.modules.pep.owner>}: configure, default, delete, purge, affiliations;
- L{discovery<jabberd.modules.pep.discovery>}: disco#info and disco#items of the bare JID;
- L{notify<jabberd.modules.pep.notify>}: recipients, notifications, last items.

The account (its own resources, iqs without 'to' or to its own bare JID)
is the owner of every node and the only publisher (§3.2).  Anyone else may
retrieve items, subscribe and discover nodes as the access model allows;
publishing, retracting and owner operations are forbidden to them.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Callable

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd.module import Module
from jabberd.modules.caps import CAPS_CHANGED
from jabberd.modules.disco import ACCOUNT, discoInfo, discoItems
from jabberd.modules.pep.discovery import DiscoveryMixin
from jabberd.modules.pep.errors import PubsubError, unsupported
from jabberd.modules.pep.nodes import Services
from jabberd.modules.pep.ns import NS_PUBSUB, NS_PUBSUB_OWNER
from jabberd.modules.pep.notify import NotifyMixin
from jabberd.modules.pep.owner import OwnerMixin
from jabberd.modules.pep.publish import PublishMixin
from jabberd.modules.pep.retrieve import RetrieveMixin
from jabberd.modules.pep.subscribe import SubscribeMixin

#: The XEP-0060 features the bare JID advertises (§10 of XEP-0060, XEP-0163 §6).
FEATURES = (NS_PUBSUB,) + tuple(
    f"{NS_PUBSUB}#{name}"
    for name in (
        "access-open",
        "access-presence",
        "access-roster",
        "access-whitelist",
        "auto-create",
        "auto-subscribe",
        "config-node",
        "config-node-max",
        "create-and-configure",
        "create-nodes",
        "delete-items",
        "delete-nodes",
        "filtered-notifications",
        "item-ids",
        "last-published",
        "member-affiliation",
        "modify-affiliations",
        "multi-items",
        "outcast-affiliation",
        "persistent-items",
        "presence-notifications",
        "presence-subscribe",
        "publish",
        "publish-options",
        "purge-nodes",
        "retract-items",
        "retrieve-affiliations",
        "retrieve-default",
        "retrieve-items",
        "retrieve-subscriptions",
        "subscribe",
    )
)

#: XEP-0060 feature names of requests the service does not offer, by element.
UNSUPPORTED = {"subscriptions": "manage-subscriptions", "options": "subscription-options"}

Action = Callable[[domish.Element, domish.Element, domish.Element, Any, Any], Any]


class _NoCaps:
    """Stands in when the caps module is not loaded: nobody asks for anything."""

    @staticmethod
    def interests(session: Any) -> frozenset[str]:
        return frozenset()

    @staticmethod
    def lookup(key: Any, entity: str, askFrom: str) -> defer.Deferred:
        return defer.succeed(None)


class PepModule(NotifyMixin, PublishMixin, RetrieveMixin, SubscribeMixin, OwnerMixin, DiscoveryMixin, Module):
    """XEP-0163 personal eventing on every account's bare JID."""

    name = "pep"
    accountFeatures = FEATURES

    def __init__(self, server) -> None:
        super().__init__(server)
        self.services = Services(server.store)
        self._remote = OrderedDict()

    def hooks(self):
        return [
            (B.iq("set", B.SELF, NS_PUBSUB, "pubsub"), self.pubsubSet, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_PUBSUB, "pubsub"), self.pubsubGet, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_PUBSUB, "pubsub"), self.pubsubSetOther, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_PUBSUB, "pubsub"), self.pubsubGet, B.PRIORITY_NORMAL),
            (B.iq("get", B.SELF, NS_PUBSUB_OWNER, "pubsub"), self.ownerGet, B.PRIORITY_NORMAL),
            (B.iq("set", B.SELF, NS_PUBSUB_OWNER, "pubsub"), self.ownerSet, B.PRIORITY_NORMAL),
            (B.iq("get", B.BARE, NS_PUBSUB_OWNER, "pubsub"), self.forbidden, B.PRIORITY_NORMAL),
            (B.iq("set", B.BARE, NS_PUBSUB_OWNER, "pubsub"), self.forbidden, B.PRIORITY_NORMAL),
            (B.PRESENCE_AVAILABLE, self.presenceAvailable, B.PRIORITY_NORMAL),
            (CAPS_CHANGED, self.capsChanged, B.PRIORITY_NORMAL),
            # High: track remote contacts' caps before the presence module
            # delivers the stanza (never claims it).
            (B.presence("inbound"), self.inboundPresence, B.PRIORITY_HIGH),
            (B.ACCOUNT_DELETED, self.accountDeleted, B.PRIORITY_NORMAL),
            (discoInfo(ACCOUNT), self.discoInfo, B.PRIORITY_NORMAL),
            (discoItems(ACCOUNT), self.discoItems, B.PRIORITY_NORMAL),
        ]

    def stop(self):
        return self.services.whenIdle()

    # -- what the module needs from the others and the config ----------------------

    @property
    def caps(self) -> Any:
        return self.server.modules.modules.get("caps") or _NoCaps()

    @property
    def roster(self) -> Any:
        return self.server.modules.modules.get("roster")

    @property
    def maxItems(self) -> int:
        return self.server.config.limits.max_pep_items

    @property
    def maxNodes(self) -> int:
        return self.server.config.limits.max_pep_nodes

    @property
    def maxPayload(self) -> int:
        return self.server.config.limits.max_pep_payload_size

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.server.reactor.seconds(), timezone.utc)

    def rosterOf(self, owner: str) -> defer.Deferred:
        """The owner's roster items by JID (None without a roster): from memory when it is loaded."""
        roster = self.roster
        if roster is None:
            return defer.succeed(None)
        cached = roster.cachedRoster(owner)
        if cached is not None:
            return defer.succeed(cached)
        return roster.run(owner, lambda acct: acct.state.items if acct.exists else None)

    def rosterItem(self, owner: str, contact: str) -> defer.Deferred:
        """The owner's roster item for C{contact} (a bare JID), or None."""
        return self.rosterOf(owner).addCallback(lambda items: items.get(contact) if items else None)

    def rosterGroups(self, owner: str) -> defer.Deferred:
        """Every group of the owner's roster (the options of pubsub#roster_groups_allowed)."""
        return self.rosterOf(owner).addCallback(
            lambda items: sorted({g for item in (items or {}).values() for g in item.groups})
        )

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, iq: domish.Element, fromJID: Any, toJID: Any, actions: dict[str, Action]) -> bool:
        pubsub = next(iq.elements())
        action = None
        for child in pubsub.elements():
            if child.uri == pubsub.uri and child.name in actions:
                action = child
                break
        if action is None:
            names = [c.name for c in pubsub.elements() if c.uri == pubsub.uri and c.name not in ("publish-options", "configure")]
            if names:
                error = unsupported(UNSUPPORTED.get(names[0], names[0]), f"{names[0]} is not supported here")
            else:
                error = PubsubError("bad-request", None, "no pubsub action in the request")
            self.server.router.route(error.reply(iq))
            return True
        d = defer.maybeDeferred(actions[action.name], iq, pubsub, action, fromJID, toJID)
        d.addErrback(self._failed, iq)
        return True

    def _failed(self, failure: Failure, iq: domish.Element) -> None:
        if failure.check(PubsubError):
            self.server.router.route(failure.value.reply(iq))
            return
        self.storeFailed(failure, iq, "a PEP request")

    def pubsubSet(self, iq, fromJID, toJID) -> bool:
        return self._dispatch(
            iq,
            fromJID,
            toJID,
            {
                "publish": self.publish,
                "retract": self.retract,
                "create": self.create,
                "subscribe": self.subscribe,
                "unsubscribe": self.unsubscribe,
            },
        )

    def pubsubSetOther(self, iq, fromJID, toJID) -> bool:
        # Only the account publishes to its nodes (XEP-0163 §3.2).
        return self._dispatch(
            iq,
            fromJID,
            toJID,
            {
                "publish": self.notOwner,
                "retract": self.notOwner,
                "create": self.notOwner,
                "subscribe": self.subscribe,
                "unsubscribe": self.unsubscribe,
            },
        )

    def pubsubGet(self, iq, fromJID, toJID) -> bool:
        return self._dispatch(
            iq, fromJID, toJID, {"items": self.items, "affiliations": self.ownAffiliations, "subscriptions": self.subscriptions}
        )

    def ownerGet(self, iq, fromJID, toJID) -> bool:
        return self._dispatch(
            iq, fromJID, toJID, {"configure": self.configureGet, "default": self.default, "affiliations": self.affiliationsGet}
        )

    def ownerSet(self, iq, fromJID, toJID) -> bool:
        return self._dispatch(
            iq,
            fromJID,
            toJID,
            {"configure": self.configureSet, "delete": self.delete, "purge": self.purge, "affiliations": self.affiliationsSet},
        )

    def forbidden(self, iq, fromJID, toJID) -> bool:
        self.server.router.bounce(iq, "forbidden", "only the account owns its nodes")
        return True

    def notOwner(self, iq, pubsub, action, fromJID, toJID) -> None:
        raise PubsubError("forbidden", None, "only the account publishes to its nodes")

    # -- lifecycle ------------------------------------------------------------------------

    def accountDeleted(self, host: str, username: str) -> None:
        bare = f"{username}@{host}"
        self.services.drop(bare)
        self._remote.pop(bare, None)


__all__ = ["FEATURES", "PepModule"]
