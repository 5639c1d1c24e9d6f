"""
Personal eventing via pubsub (XEP-0163): every account's bare JID is a
pubsub service whose nodes only the account publishes to, and whose
notifications reach the account's resources and its contacts according to
their presence subscription, the node's access model and the interests
their entity capabilities (XEP-0115, the caps module) advertise.

One feature per file:

- L{module}: the module class, hooks and dispatch;
- L{publish}: publish (auto-create, publish-options), retract, create;
- L{retrieve}: items and the requester's affiliations;
- L{subscribe}: explicit subscriptions (subscribe, unsubscribe, subscriptions);
- L{owner}: configure, default configuration, delete, purge, affiliations;
- L{discovery}: disco#info and disco#items of the bare JID and its nodes;
- L{notify}: recipients, notifications, the last item on presence;
- L{access}: the access models;
- L{config}: node configuration forms and publish-options preconditions;
- L{nodes}: the services in memory and their ordered store work;
- L{errors}, L{ns}: pubsub errors and namespaces.

The tables are in L{jabberd.store.pep}.
"""

from jabberd.modules.pep.module import FEATURES, PepModule

__all__ = ["FEATURES", "PepModule"]
