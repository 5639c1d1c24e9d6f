"""
Access models (XEP-0060 §4.5, XEP-0163 §3): who may retrieve a node's
items, see it in disco#items and receive its notifications.

- the owner always may;
- an outcast never may;
- C{open}: anyone;
- C{presence} (the PEP default): whoever the owner's roster lets see the
  owner's presence ('from' or 'both');
- C{roster}: those, if in one of C{pubsub#roster_groups_allowed};
- C{whitelist}: the bare JIDs the owner made members (XEP-0223 private
  storage: nobody but the owner).

Notifications go to contacts implicitly subscribed through their presence
subscription (XEP-0163 §4.2 "auto-subscribe"), so a contact without one
gets none even from an open node.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from jabberd.modules.pep.errors import PubsubError, noSuchNode
from jabberd.modules.pep.nodes import Node
from jabberd.store.roster import RosterItem

#: Affiliations that are on a whitelist.
WHITELISTED = ("owner", "publisher", "member")


def accessError(node: Node, owner: str, requester: str, item: RosterItem | None) -> PubsubError | None:
    """
    Why the bare JID C{requester} may not retrieve C{node}'s items
    (XEP-0060 §6.5.9), or None when it may; C{item} is the owner's roster
    item for it.
    """
    if requester == owner:
        return None
    affiliation = node.affiliation(owner, requester)
    if affiliation == "outcast":
        return PubsubError("forbidden")
    model = node.config.access_model
    if model == "open":
        return None
    if model == "whitelist":
        return None if affiliation in WHITELISTED else PubsubError("not-allowed", "closed-node")
    subscribed = item is not None and item.hasFrom
    if model == "presence":
        return None if subscribed else PubsubError("not-authorized", "presence-subscription-required")
    if model == "roster":
        allowed = node.config.roster_groups_allowed
        if subscribed and item is not None and any(g in allowed for g in item.groups):
            return None
        return PubsubError("not-authorized", "not-in-roster-group")
    return PubsubError("forbidden")


def mayReceive(node: Node, owner: str, contact: str, item: RosterItem | None) -> bool:
    """Whether C{contact} (a bare JID) gets C{node}'s notifications through its presence subscription."""
    if contact == owner:
        return True
    if item is None or not item.hasFrom:
        return False
    return accessError(node, owner, contact, item) is None


@defer.inlineCallbacks
def visibleNode(pep: Any, owner: str, requester: str, name: str):
    """
    C{(service, node)}: C{owner}'s service and its node C{name}, if
    C{requester} may see it, for the requests that read a node (items,
    subscribe).

    @raise PubsubError: no such service or node, or the access model
        refuses the requester (checked against its roster item, which may
        need the store: the node is looked up again afterwards in case it
        was deleted meanwhile).
    """
    service = yield pep.services.get(owner)
    if not service.exists:
        raise PubsubError("service-unavailable")
    node = service.nodes.get(name)
    if node is None:
        raise noSuchNode()
    if requester != owner:
        contact = yield pep.rosterItem(owner, requester)
        error = accessError(node, owner, requester, contact)
        if error is not None:
            raise error
        if service.nodes.get(name) is not node:
            raise noSuchNode()
    return service, node
