"""
Explicit PEP subscriptions (XEP-0060 §6.1-6.2, §5.6; XEP-0163 §8): how
someone without a presence subscription follows an open node — subscribe,
the last item, notifications (once per entity), unsubscribe, the
requester's subscriptions, the errors, persistence.

Alice's roster: Bob ('both').  Erin is not in it; Zoe is remote.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.modules.test_pep import (
    ALICE,
    BOB,
    NS_PUBSUB,
    OTHER_SONG,
    SONG,
    TUNE,
    PepTestMixin,
    error,
    event,
    itemEvent,
    publish,
    pubsub,
    result,
)
from tests.modules.test_roster import REMOTE

ERIN = "erin@localhost"
ZOE = f"zoe@{REMOTE}"
OPEN = "urn:xmpp:microblog:0"


def subscribed(node: str, jid: str, to: str, id_: str = "s") -> str:
    return result(id_, f"<pubsub xmlns='{NS_PUBSUB}'><subscription node='{node}' jid='{jid}' subscription='subscribed'/></pubsub>", to=to)


class SubscribeTests(PepTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB, ERIN)
        yield self.seedBoth(ALICE, BOB)
        self.alice = yield self.login(f"{ALICE}/a")
        yield self.send(self.alice, publish(OPEN, SONG, options={"pubsub#access_model": "open"}))
        yield self.send(self.alice, publish(TUNE, SONG))
        self.alice.link.pop()
        self.erin = yield self.login(f"{ERIN}/e")

    def subscribe(self, node: str = OPEN, jid: str = ERIN, verb: str = "subscribe", to: str = ALICE) -> str:
        return pubsub(f"<{verb} node='{node}' jid='{jid}'/>", "s", to=to)

    @defer.inlineCallbacks
    def test_subscribeGetsLastItemThenNotifications(self):
        """A stranger subscribes to an open node: subscribed, the last item at once, then every notification."""
        yield self.assertExchange(self.erin, self.subscribe(), subscribed(OPEN, ERIN, f"{ERIN}/e"), itemEvent(f"{ERIN}", OPEN, payload=SONG, delay="*"))
        yield self.send(self.alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertReceived(self.erin, itemEvent(ERIN, OPEN, payload=OTHER_SONG))

    @defer.inlineCallbacks
    def test_fullJIDSubscription(self):
        """A full JID subscription is notified at that full JID."""
        yield self.send(self.erin, self.subscribe(jid=f"{ERIN}/e"))
        self.erin.link.pop()
        yield self.send(self.alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertReceived(self.erin, itemEvent(f"{ERIN}/e", OPEN, payload=OTHER_SONG))

    @defer.inlineCallbacks
    def test_accessModelApplies(self):
        """Subscribing to a presence node without a presence subscription is not-authorized with <presence-subscription-required/>."""
        yield self.assertExchange(self.erin, self.subscribe(TUNE), error("s", "not-authorized", "auth", "presence-subscription-required", to=f"{ERIN}/e"))

    @defer.inlineCallbacks
    def test_ownJIDOnly(self):
        """The JID subscribed must be the requester's own (<invalid-jid/>); a subscribe without one is <jid-required/>."""
        yield self.assertExchange(self.erin, self.subscribe(jid=BOB), error("s", "bad-request", "modify", "invalid-jid", "subscribe your own JID", to=f"{ERIN}/e"))
        yield self.assertExchange(self.erin, pubsub(f"<subscribe node='{OPEN}'/>", "s", to=ALICE), error("s", "bad-request", "modify", "jid-required", to=f"{ERIN}/e"))

    @defer.inlineCallbacks
    def test_noSuchNode(self):
        """Subscribing to a node that does not exist is item-not-found."""
        yield self.assertExchange(self.erin, self.subscribe("urn:nope"), error("s", "item-not-found", "cancel", to=f"{ERIN}/e"))

    @defer.inlineCallbacks
    def test_unsubscribe(self):
        """Unsubscribing stops notifications; unsubscribing again is unexpected-request with <not-subscribed/>."""
        yield self.send(self.erin, self.subscribe())
        self.erin.link.pop()
        yield self.assertExchange(self.erin, self.subscribe(verb="unsubscribe"), result("s", to=f"{ERIN}/e"))
        yield self.send(self.alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertReceived(self.erin)
        yield self.assertExchange(self.erin, self.subscribe(verb="unsubscribe"), error("s", "unexpected-request", "wait", "not-subscribed", to=f"{ERIN}/e"))

    @defer.inlineCallbacks
    def test_subscriptionsList(self):
        """The requester sees its own subscriptions, and only those."""
        yield self.send(self.erin, self.subscribe())
        yield self.send(self.erin, self.subscribe(jid=f"{ERIN}/e"))
        self.erin.link.pop()
        expected = (
            f"<pubsub xmlns='{NS_PUBSUB}'><subscriptions>"
            f"<subscription node='{OPEN}' jid='{ERIN}' subscription='subscribed'/>"
            f"<subscription node='{OPEN}' jid='{ERIN}/e' subscription='subscribed'/></subscriptions></pubsub>"
        )
        yield self.assertExchange(self.erin, pubsub("<subscriptions/>", "l", "get", to=ALICE), result("l", expected, to=f"{ERIN}/e"))
        bob = yield self.login(f"{BOB}/b")
        yield self.assertExchange(bob, pubsub("<subscriptions/>", "l", "get", to=ALICE), result("l", f"<pubsub xmlns='{NS_PUBSUB}'><subscriptions/></pubsub>", to=f"{BOB}/b"))

    @defer.inlineCallbacks
    def test_onceEvenWithBothKinds(self):
        """A contact notified through its presence subscription gets no second copy for its explicit subscription."""
        bob = yield self.login(f"{BOB}/b", OPEN)
        yield self.send(bob, self.subscribe(jid=BOB))
        bob.link.pop()
        yield self.send(self.alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertReceived(bob, itemEvent(f"{BOB}/b", OPEN, payload=OTHER_SONG))

    @defer.inlineCallbacks
    def test_outcastLosesIt(self):
        """Once the owner makes a subscriber an outcast, its notifications stop."""
        yield self.send(self.erin, self.subscribe())
        self.erin.link.pop()
        yield self.send(self.alice, pubsub(f"<affiliations node='{OPEN}'><affiliation jid='{ERIN}' affiliation='outcast'/></affiliations>", "a", owner=True))
        yield self.send(self.alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertReceived(self.erin)

    @defer.inlineCallbacks
    def test_deleteNotifiesSubscribers(self):
        """Deleting the node notifies explicit subscribers too."""
        yield self.send(self.erin, self.subscribe())
        self.erin.link.pop()
        yield self.send(self.alice, pubsub(f"<delete node='{OPEN}'/>", "d", owner=True))
        self.assertReceived(self.erin, event(ERIN, OPEN, f"<delete node='{OPEN}'/>"))

    @defer.inlineCallbacks
    def test_remoteSubscriber(self):
        """A remote entity may subscribe to an open node; its notifications go out to it."""
        self.captured[:] = []
        self.route(f"<iq type='set' id='s' from='{ZOE}/x' to='{ALICE}'><pubsub xmlns='{NS_PUBSUB}'><subscribe node='{OPEN}' jid='{ZOE}/x'/></pubsub></iq>")
        yield self.settle()
        self.assertRouted(subscribed(OPEN, f"{ZOE}/x", f"{ZOE}/x"), itemEvent(f"{ZOE}/x", OPEN, payload=SONG, delay="*"))
        yield self.send(self.alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertRouted(itemEvent(f"{ZOE}/x", OPEN, payload=OTHER_SONG))

    @defer.inlineCallbacks
    def test_persistent(self):
        """Subscriptions survive a restart."""
        yield self.send(self.erin, self.subscribe())
        self.assertEqual((yield self.storedNodes(ALICE))[OPEN].subscriptions, (ERIN,))
        yield self.restart()
        alice = yield self.login(f"{ALICE}/a")
        erin = yield self.login(f"{ERIN}/e")
        yield self.send(alice, publish(OPEN, OTHER_SONG, id_="p2"))
        self.assertReceived(erin, itemEvent(ERIN, OPEN, payload=OTHER_SONG))

