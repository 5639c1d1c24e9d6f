"""
PEP notifications (XEP-0163 §4): who receives them — the owner's
resources and contacts with a presence subscription whose caps ask for
the node, local and remote — the last published item on coming online
and when caps first show interest, retract/delete/purge notifications,
and the hot path (no store I/O per notification, one payload for all).

Alice's roster: Bob (local, 'both'), Carol (local, 'both'), Dave (local,
'to': he does not see her presence), Zoe (remote, 'both'), Yan (remote,
'to').  Remote stanzas go to a captured domain.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.store.roster import RosterItem
from tests.modules.test_pep import (
    ALICE,
    BOB,
    CAROL,
    NS_DISCO_INFO,
    OTHER_SONG,
    SONG,
    TUNE,
    PepTestMixin,
    capsElement,
    capsVer,
    discoQuery,
    event,
    form,
    itemEvent,
    publish,
    pubsub,
    published,
)
from tests.modules.test_roster import REMOTE

DAVE = "dave@localhost"
ZOE, YAN = f"zoe@{REMOTE}", f"yan@{REMOTE}"
MOOD = "http://jabber.org/protocol/mood"


class NotifyTestMixin(PepTestMixin):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB, CAROL, DAVE)
        yield self.seed(ALICE, [
            RosterItem(BOB, None, "both"),
            RosterItem(CAROL, None, "both"),
            RosterItem(DAVE, None, "to"),
            RosterItem(ZOE, None, "both"),
            RosterItem(YAN, None, "to"),
        ])
        yield self.seed(BOB, [RosterItem(ALICE, None, "both")])
        yield self.seed(CAROL, [RosterItem(ALICE, None, "both")])
        yield self.seed(DAVE, [RosterItem(ALICE, None, "from")])

    @defer.inlineCallbacks
    def remoteOnline(self, full: str, *nodes: str, to: str = ALICE):
        """A remote contact's resource sends available presence with caps (already verified) to C{to}."""
        caps = yield self.knownCaps(*nodes)
        self.route(f"<presence from='{full}' to='{to}'>{caps}</presence>")
        yield self.settle()


class RecipientTests(NotifyTestMixin, unittest.TestCase):
    """Who gets a notification when Alice publishes."""

    @defer.inlineCallbacks
    def test_ownResourcesThatWantIt(self):
        """The owner's available resources whose caps ask for the node are notified; one without the interest and one without presence are not."""
        a = yield self.login(f"{ALICE}/a", TUNE)
        b = yield self.login(f"{ALICE}/b", MOOD)
        c = yield self.login(f"{ALICE}/c", TUNE, available=False)
        yield self.assertExchange(a, publish(TUNE), published("p", TUNE, "current"), itemEvent(f"{ALICE}/a", TUNE))
        self.assertReceived(b)
        self.assertReceived(c)

    @defer.inlineCallbacks
    def test_contactsThatWantIt(self):
        """A contact with a presence subscription whose caps ask for the node gets it at each interested resource; one whose caps do not, does not."""
        alice = yield self.login(f"{ALICE}/a")
        bob1 = yield self.login(f"{BOB}/one", TUNE)
        bob2 = yield self.login(f"{BOB}/two")
        carol = yield self.login(f"{CAROL}/c", MOOD)
        alice.link.pop()  # their presence
        yield self.assertExchange(alice, publish(TUNE), published("p", TUNE, "current"))
        self.assertReceived(bob1, itemEvent(f"{BOB}/one", TUNE))
        self.assertReceived(bob2)
        self.assertReceived(carol)

    @defer.inlineCallbacks
    def test_noSubscriptionNoNotification(self):
        """A contact who does not see the owner's presence ('to' in her roster) gets nothing, whatever its caps say."""
        alice = yield self.login(f"{ALICE}/a")
        dave = yield self.login(f"{DAVE}/d", TUNE)
        alice.link.pop()  # his presence
        yield self.assertExchange(alice, publish(TUNE), published("p", TUNE, "current"))
        self.assertReceived(dave)

    @defer.inlineCallbacks
    def test_subscriptionRemovedStopsNotifications(self):
        """Once the owner cancels a contact's subscription, its notifications stop (XEP-0163 §7.1)."""
        alice = yield self.login(f"{ALICE}/a")
        bob = yield self.login(f"{BOB}/b", TUNE)
        yield self.send(alice, f"<presence to='{BOB}' type='unsubscribed'/>")
        bob.link.pop()
        yield self.send(alice, publish(TUNE))
        self.assertReceived(bob)

    @defer.inlineCallbacks
    def test_remoteContacts(self):
        """A remote contact's resource that sent presence with caps asking for the node is notified at its full JID; not after it goes unavailable."""
        alice = yield self.login(f"{ALICE}/a")
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)
        yield self.remoteOnline(f"{ZOE}/desk", MOOD)
        self.captured[:] = []
        yield self.send(alice, publish(TUNE))
        self.assertRouted(itemEvent(f"{ZOE}/phone", TUNE))
        self.route(f"<presence from='{ZOE}/phone' to='{ALICE}' type='unavailable'/>")
        yield self.send(alice, publish(TUNE, OTHER_SONG, id_="p2"))
        self.assertRouted()

    @defer.inlineCallbacks
    def test_remoteWithoutSubscription(self):
        """Presence from a remote entity that may not see the owner's presence is not tracked: no notifications."""
        alice = yield self.login(f"{ALICE}/a")
        yield self.remoteOnline(f"{YAN}/x", TUNE)
        yield self.remoteOnline("stranger@remote.example/x", TUNE)
        self.captured[:] = []
        yield self.send(alice, publish(TUNE))
        self.assertRouted()

    @defer.inlineCallbacks
    def test_oneStanzaBuiltOnce(self):
        """Every recipient's copy shares the one serialized payload; only 'to' differs."""
        alice = yield self.login(f"{ALICE}/a")
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)
        yield self.remoteOnline(f"{ZOE}/desk", TUNE)
        self.captured[:] = []
        yield self.send(alice, publish(TUNE))
        one, two = self.captured
        self.assertIs(one.children[0], two.children[0])
        self.assertEqual(one["id"], two["id"])
        self.assertEqual(sorted([one["to"], two["to"]]), [f"{ZOE}/desk", f"{ZOE}/phone"])

    @defer.inlineCallbacks
    def test_noStoreReadPerNotification(self):
        """Publishing writes the item once and reads nothing from the store, whatever the number of recipients."""
        alice = yield self.login(f"{ALICE}/a", TUNE)
        yield self.login(f"{BOB}/b", TUNE)
        yield self.login(f"{CAROL}/c", TUNE)
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)
        yield self.send(alice, publish(TUNE))  # creates the node
        calls = []
        original = self.server.store.runInteraction
        self.server.store.runInteraction = lambda desc, *a, **k: calls.append(desc) or original(desc, *a, **k)
        self.addCleanup(setattr, self.server.store, "runInteraction", original)
        self.captured[:] = []
        yield self.send(alice, publish(TUNE, OTHER_SONG))
        self.assertEqual(calls, ["pep_publish"])
        self.assertEqual(len(self.captured), 1)

    @defer.inlineCallbacks
    def test_withoutPayloads(self):
        """pubsub#deliver_payloads off: the notification names the item without its payload."""
        alice = yield self.login(f"{ALICE}/a", TUNE)
        yield self.assertExchange(
            alice,
            publish(TUNE, options={"pubsub#deliver_payloads": "0"}),
            published("p", TUNE, "current"),
            event(f"{ALICE}/a", TUNE, f"<items node='{TUNE}'><item id='current'/></items>"),
        )

    @defer.inlineCallbacks
    def test_withoutNotifications(self):
        """pubsub#deliver_notifications off: nobody is notified."""
        alice = yield self.login(f"{ALICE}/a", TUNE)
        yield self.assertExchange(alice, publish(TUNE, options={"pubsub#deliver_notifications": "0"}), published("p", TUNE, "current"))

    @defer.inlineCallbacks
    def test_normalMessages(self):
        """pubsub#notification_type normal: notifications are normal messages."""
        alice = yield self.login(f"{ALICE}/a", TUNE)
        yield self.assertExchange(alice, publish(TUNE, options={"pubsub#notification_type": "normal"}), published("p", TUNE, "current"), itemEvent(f"{ALICE}/a", TUNE, type_="normal"))


class RemovalNotificationTests(NotifyTestMixin, unittest.TestCase):
    """Retract, delete and purge notifications reach the same recipients as items."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.alice = yield self.login(f"{ALICE}/a")
        self.bob = yield self.login(f"{BOB}/b", TUNE)
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)
        yield self.send(self.alice, publish(TUNE, options={"pubsub#max_items": "5"}))
        self.alice.link.pop()
        self.bob.link.pop()
        self.captured[:] = []

    @defer.inlineCallbacks
    def check(self, request: str, body: str):
        yield self.send(self.alice, request)
        self.assertReceived(self.bob, event(f"{BOB}/b", TUNE, body))
        self.assertRouted(event(f"{ZOE}/phone", TUNE, body))

    def test_retract(self):
        """A retract notification names the item."""
        return self.check(pubsub(f"<retract node='{TUNE}'><item id='current'/></retract>", "r"), f"<items node='{TUNE}'><retract id='current'/></items>")

    def test_delete(self):
        """A delete notification names the node."""
        return self.check(pubsub(f"<delete node='{TUNE}'/>", "d", owner=True), f"<delete node='{TUNE}'/>")

    def test_purge(self):
        """A purge notification names the node."""
        return self.check(pubsub(f"<purge node='{TUNE}'/>", "x", owner=True), f"<purge node='{TUNE}'/>")


class LastItemTests(NotifyTestMixin, unittest.TestCase):
    """The last published item on coming online and on new interest (XEP-0163 §4.3.4)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.alice = yield self.login(f"{ALICE}/a")
        yield self.send(self.alice, publish(TUNE))
        self.alice.link.pop()

    @defer.inlineCallbacks
    def test_contactComesOnline(self):
        """A contact coming online with caps asking for the node gets its last item, stamped with its publication time."""
        caps = yield self.knownCaps(TUNE, MOOD)
        bob = self.bind(f"{BOB}/b")
        yield self.send(bob, f"<presence>{caps}</presence>")
        got = [e for e in bob.link.pop() if e.name == "message"]
        self.assertStanzas(got, itemEvent(f"{BOB}/b", TUNE, delay="*"))
        stamp = got[0].delay["stamp"]
        self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")

    @defer.inlineCallbacks
    def test_ownNewResource(self):
        """The owner's new resource asking for the node gets its last item too."""
        caps = yield self.knownCaps(TUNE)
        session = self.bind(f"{ALICE}/new")
        yield self.send(session, f"<presence>{caps}</presence>")
        messages = [e for e in session.link.pop() if e.name == "message"]
        self.assertStanzas(messages, itemEvent(f"{ALICE}/new", TUNE, delay="*"))

    @defer.inlineCallbacks
    def test_notWithoutInterest(self):
        """A contact whose caps do not ask for the node gets no last item."""
        caps = yield self.knownCaps(MOOD)
        bob = self.bind(f"{BOB}/b")
        yield self.send(bob, f"<presence>{caps}</presence>")
        self.assertEqual([e for e in bob.link.pop() if e.name == "message"], [])

    @defer.inlineCallbacks
    def test_notWhenNever(self):
        """pubsub#send_last_published_item never: no last item on coming online."""
        yield self.send(self.alice, pubsub(f"<configure node='{TUNE}'>{form({'pubsub#send_last_published_item': 'never'})}</configure>", "c", owner=True))
        caps = yield self.knownCaps(TUNE)
        bob = self.bind(f"{BOB}/b")
        yield self.send(bob, f"<presence>{caps}</presence>")
        self.assertEqual([e for e in bob.link.pop() if e.name == "message"], [])

    @defer.inlineCallbacks
    def test_notWithoutSubscription(self):
        """Dave, who does not see Alice's presence, gets no last item."""
        caps = yield self.knownCaps(TUNE)
        dave = self.bind(f"{DAVE}/d")
        yield self.send(dave, f"<presence>{caps}</presence>")
        self.assertEqual([e for e in dave.link.pop() if e.name == "message"], [])

    @defer.inlineCallbacks
    def test_onlyOncePerSession(self):
        """A presence update with the same caps sends nothing again (§4.3.2: only initial presence)."""
        bob = yield self.login(f"{BOB}/b", TUNE)
        caps = yield self.knownCaps(TUNE)
        yield self.send(bob, f"<presence><show>away</show>{caps}</presence>")
        self.assertEqual([e for e in bob.link.pop() if e.name == "message"], [])

    @defer.inlineCallbacks
    def test_whenCapsFirstShowInterest(self):
        """Caps still unknown at initial presence: once the client's disco#info answer verifies them, the last item follows."""
        features = (f"{TUNE}+notify",)
        ver = capsVer(features)
        bob = self.bind(f"{BOB}/b")
        yield self.send(bob, f"<presence>{capsElement(ver)}</presence>")
        query = [e for e in bob.link.pop() if e.name == "iq"]
        self.assertStanzas(query, f"<iq type='get' id='*' from='localhost' to='{BOB}/b'><query xmlns='{NS_DISCO_INFO}' node='https://example.org/client#{ver}'/></iq>")
        answer = discoQuery(features, f"https://example.org/client#{ver}").toXml()
        yield self.send(bob, f"<iq type='result' id='{query[0]['id']}' to='localhost'>{answer}</iq>")
        self.assertReceived(bob, itemEvent(f"{BOB}/b", TUNE, delay="*"))

    @defer.inlineCallbacks
    def test_capsUpdateAddsInterest(self):
        """A resource whose new caps add an interest gets that node's last item, and not again those it had."""
        yield self.send(self.alice, publish(MOOD, f"<mood xmlns='{MOOD}'><happy/></mood>", id_="m"))
        bob = yield self.login(f"{BOB}/b", TUNE)
        caps = yield self.knownCaps(TUNE, MOOD)
        yield self.send(bob, f"<presence>{caps}</presence>")
        messages = [e for e in bob.link.pop() if e.name == "message"]
        self.assertStanzas(messages, itemEvent(f"{BOB}/b", MOOD, payload=f"<mood xmlns='{MOOD}'><happy/></mood>", delay="*"))

    @defer.inlineCallbacks
    def test_remoteContactComesOnline(self):
        """A remote contact's resource sending available presence with caps asking for the node gets its last item."""
        self.captured[:] = []
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)
        self.assertRouted(itemEvent(f"{ZOE}/phone", TUNE, delay="*"))
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)  # the same caps again: nothing
        self.assertRouted()

    @defer.inlineCallbacks
    def test_remoteContactOfOfflineOwner(self):
        """Alice offline: a remote contact coming online still gets her last item."""
        self.alice.receive("<presence type='unavailable'/>")
        self.alice.disconnect()
        yield self.settle()
        self.captured[:] = []
        yield self.remoteOnline(f"{ZOE}/phone", TUNE)
        self.assertRouted(itemEvent(f"{ZOE}/phone", TUNE, delay="*"))

    @defer.inlineCallbacks
    def test_afterRetractTheNewLastItem(self):
        """After the newest item is retracted, a contact coming online gets the one before it."""
        yield self.send(self.alice, pubsub(f"<configure node='{TUNE}'>{form({'pubsub#max_items': '3'})}</configure>", "c", owner=True))
        yield self.send(self.alice, publish(TUNE, OTHER_SONG, item="newer"))
        yield self.send(self.alice, pubsub(f"<retract node='{TUNE}'><item id='newer'/></retract>", "r"))
        caps = yield self.knownCaps(TUNE)
        bob = self.bind(f"{BOB}/b")
        yield self.send(bob, f"<presence>{caps}</presence>")
        self.assertStanzas([e for e in bob.link.pop() if e.name == "message"], itemEvent(f"{BOB}/b", TUNE, payload=SONG, delay="*"))

    @defer.inlineCallbacks
    def test_emptyNodeSendsNothing(self):
        """A node without items has no last item to send."""
        yield self.send(self.alice, pubsub(f"<purge node='{TUNE}'/>", "x", owner=True))
        caps = yield self.knownCaps(TUNE)
        bob = self.bind(f"{BOB}/b")
        yield self.send(bob, f"<presence>{caps}</presence>")
        self.assertEqual([e for e in bob.link.pop() if e.name == "message"], [])

