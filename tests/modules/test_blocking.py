"""
The blocking command (XEP-0191): blocklist retrieval, block, unblock,
unblock all, pushes, the blocked JID appearing offline, the <blocked/>
error on the user's own stanzas, presence on block and unblock, and the
blocklist as the default privacy list (§5) seen from both protocols.

Same cast as the privacy tests: Alice's roster has Bob (local, 'both'),
Carol (remote, 'from'), Dave (remote, 'to'); the remote domain is captured.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.modules.test_privacy import ALICE, BLOCKED, BOB, CAROL, DAVE, EVE, NS, SU, PrivacyTestMixin, error

NSB = "urn:xmpp:blocking"


def blockIQ(id_: str, *jids: str) -> str:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return f"<iq type='set' id='{id_}'><block xmlns='{NSB}'>{items}</block></iq>"


def unblockIQ(id_: str, *jids: str) -> str:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return f"<iq type='set' id='{id_}'><unblock xmlns='{NSB}'>{items}</unblock></iq>"


def push(to: str, command: str, *jids: str) -> str:
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return f"<iq type='set' id='*' to='{to}'><{command} xmlns='{NSB}'>{items}</{command}></iq>"


def privacyPush(to: str, name: str = "blocklist") -> str:
    return f"<iq type='set' id='*' to='{to}'><query xmlns='{NS}'><list name='{name}'/></query></iq>"


class BlockingTestMixin(PrivacyTestMixin):
    @defer.inlineCallbacks
    def client(self, full: str, **kw):
        """A session that logged in, sent presence and asked for its blocklist (so it gets pushes)."""
        session = yield self.online(full, **kw)
        got = yield self.request(session, f"<iq type='get' id='bl'><blocklist xmlns='{NSB}'/></iq>")
        assert got[0]["type"] == "result", got[0].toXml()
        self.captured[:] = []
        return session


class BlocklistTests(BlockingTestMixin, unittest.TestCase):
    """§3.2-§3.5: the requests, their answers and the pushes."""

    @defer.inlineCallbacks
    def test_emptyBlocklist(self):
        """Without blocked JIDs the blocklist is an empty element."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='get' id='blocklist1'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='blocklist1' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'/></iq>")

    @defer.inlineCallbacks
    def test_blockPushesToResourcesThatAskedForTheList(self):
        """Block: a result, then a push to every resource that retrieved the blocklist; every resource gets the privacy push of the default list."""
        alice = yield self.client(f"{ALICE}/chamber")
        balcony = yield self.client(f"{ALICE}/balcony")
        other = yield self.online(f"{ALICE}/other")
        for session in (alice, balcony, other):
            session.link.pop()
        got = yield self.request(alice, blockIQ("block1", "romeo@montague.net"))
        self.assertStanzas(got,
                           f"<iq type='result' id='block1' from='{ALICE}' to='{ALICE}/chamber'/>",
                           privacyPush(f"{ALICE}/chamber"),
                           push(f"{ALICE}/chamber", "block", "romeo@montague.net"))
        self.assertReceived(balcony, privacyPush(f"{ALICE}/balcony"), push(f"{ALICE}/balcony", "block", "romeo@montague.net"))
        self.assertReceived(other, privacyPush(f"{ALICE}/other"))

    @defer.inlineCallbacks
    def test_blocklistListsBlockedJIDs(self):
        """The blocklist holds every blocked JID, prepared, most recently blocked first, each once."""
        alice = yield self.client(f"{ALICE}/a")
        yield self.request(alice, blockIQ("b1", "romeo@montague.net"))
        yield self.request(alice, blockIQ("b2", "Iago@Shakespeare.LIT", "romeo@montague.net", "iago@shakespeare.lit"))
        got = yield self.request(alice, f"<iq type='get' id='blocklist1'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='blocklist1' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'>"
                           "<item jid='iago@shakespeare.lit'/><item jid='romeo@montague.net'/></blocklist></iq>")

    @defer.inlineCallbacks
    def test_blockWithoutItems(self):
        """A block without items is bad-request."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, blockIQ("b1"))
        self.assertStanzas(got, f"<iq type='error' id='b1' from='{ALICE}' to='{ALICE}/a'>{error('bad-request', 'modify')}"
                           "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>block at least one JID</text></error></iq>")

    @defer.inlineCallbacks
    def test_blockMalformedJID(self):
        """An item whose jid is not a JID gets jid-malformed, and nothing is blocked."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, blockIQ("b1", "romeo@montague.net", "@@"))
        self.assertEqual((got[0]["type"], got[0].error.firstChildElement().name), ("error", "jid-malformed"))
        got = yield self.request(alice, f"<iq type='get' id='l'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='l' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'/></iq>")

    @defer.inlineCallbacks
    def test_blockItemWithoutJID(self):
        """An item without a jid is bad-request."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='set' id='b1'><block xmlns='{NSB}'><item/></block></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "bad-request")

    @defer.inlineCallbacks
    def test_unblockPushesItems(self):
        """Unblocking some JIDs answers, pushes those items, and leaves the others blocked."""
        alice = yield self.client(f"{ALICE}/a")
        yield self.request(alice, blockIQ("b1", "romeo@montague.net", "iago@shakespeare.lit"))
        got = yield self.request(alice, unblockIQ("unblock1", "romeo@montague.net"))
        self.assertStanzas(got,
                           f"<iq type='result' id='unblock1' from='{ALICE}' to='{ALICE}/a'/>",
                           privacyPush(f"{ALICE}/a"),
                           push(f"{ALICE}/a", "unblock", "romeo@montague.net"))
        got = yield self.request(alice, f"<iq type='get' id='l'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='l' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'><item jid='iago@shakespeare.lit'/></blocklist></iq>")

    @defer.inlineCallbacks
    def test_unblockAll(self):
        """An empty unblock unblocks everyone and is pushed as an empty unblock."""
        alice = yield self.client(f"{ALICE}/a")
        other = yield self.client(f"{ALICE}/b")
        yield self.request(alice, blockIQ("b1", "romeo@montague.net", "iago@shakespeare.lit"))
        other.link.pop()
        got = yield self.request(alice, unblockIQ("unblock2"))
        self.assertStanzas(got,
                           f"<iq type='result' id='unblock2' from='{ALICE}' to='{ALICE}/a'/>",
                           privacyPush(f"{ALICE}/a"),
                           f"<iq type='set' id='*' to='{ALICE}/a'><unblock xmlns='{NSB}'/></iq>")
        self.assertReceived(other, privacyPush(f"{ALICE}/b"), f"<iq type='set' id='*' to='{ALICE}/b'><unblock xmlns='{NSB}'/></iq>")
        got = yield self.request(alice, f"<iq type='get' id='l'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='l' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'/></iq>")

    @defer.inlineCallbacks
    def test_unblockWithNothingBlocked(self):
        """Unblocking when nothing is blocked succeeds and creates no list."""
        alice = yield self.client(f"{ALICE}/a")
        got = yield self.request(alice, unblockIQ("u1", "romeo@montague.net"))
        self.assertStanzas(got,
                           f"<iq type='result' id='u1' from='{ALICE}' to='{ALICE}/a'/>",
                           push(f"{ALICE}/a", "unblock", "romeo@montague.net"))
        self.assertEqual(self.rules.account(ALICE).lists, {})

    @defer.inlineCallbacks
    def test_forbiddenForOthers(self):
        """Another account's blocklist cannot be read or changed."""
        bob = yield self.online(f"{BOB}/b")
        got = yield self.request(bob, f"<iq type='get' id='x' to='{ALICE}'><blocklist xmlns='{NSB}'/></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "forbidden")

    @defer.inlineCallbacks
    def test_blocklistSurvivesRestart(self):
        """The blocklist is stored: after a restart it is still there and still applies."""
        alice = yield self.client(f"{ALICE}/a")
        yield self.request(alice, blockIQ("b1", EVE))
        yield self.restart()
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>hello?</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>hello?</body>{SU}</message>")
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='get' id='l'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='l' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'><item jid='{EVE}'/></blocklist></iq>")


class BlockingLimitTests(BlockingTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, limits={"max_privacy_items": 2})

    @defer.inlineCallbacks
    def test_tooManyBlocked(self):
        """Blocking beyond max_privacy_items is not-allowed and blocks nothing more."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.request(alice, blockIQ("b1", "a@x", "b@x"))
        got = yield self.request(alice, blockIQ("b2", "c@x"))
        self.assertEqual(got[0].error.firstChildElement().name, "not-allowed")
        self.assertEqual(self.rules.account(ALICE).blocklist(), ["a@x", "b@x"])


class EnforcementTests(BlockingTestMixin, unittest.TestCase):
    """§3.3: a blocked JID cannot reach the user, the user cannot reach it, presence on block and unblock."""

    @defer.inlineCallbacks
    def setUp(self):
        yield BlockingTestMixin.setUp(self)
        self.alice = yield self.client(f"{ALICE}/a", presence="<presence><status>reading</status></presence>")
        self.bob = yield self.online(f"{BOB}/b")
        self.alice.link.pop()
        self.captured[:] = []

    @defer.inlineCallbacks
    def block(self, *jids: str):
        yield self.request(self.alice, blockIQ("blk", *jids))
        self.alice.link.pop()
        self.captured[:] = []

    @defer.inlineCallbacks
    def test_blockSendsUnavailableToContact(self):
        """Blocking a contact that sees Alice's presence sends it unavailable presence; Alice sees it go offline too."""
        got = yield self.request(self.alice, blockIQ("b1", BOB))
        self.assertStanzas(got,
                           f"<iq type='result' id='b1' from='{ALICE}' to='{ALICE}/a'/>",
                           privacyPush(f"{ALICE}/a"),
                           f"<presence type='unavailable' from='{BOB}/b' to='{ALICE}/a'/>",
                           push(f"{ALICE}/a", "block", BOB))
        self.assertReceived(self.bob, f"<presence type='unavailable' from='{ALICE}/a' to='{BOB}'/>")

    @defer.inlineCallbacks
    def test_blockRemoteContactWithFromSubscription(self):
        """Blocking Carol ('from') sends her unavailable presence; blocking Dave ('to', not allowed to see Alice) sends him none."""
        yield self.request(self.alice, blockIQ("b1", CAROL, DAVE))
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")

    @defer.inlineCallbacks
    def test_unblockSendsCurrentPresence(self):
        """Unblocking a contact sends it Alice's current presence, and Alice gets the contact's again."""
        yield self.block(BOB)
        self.bob.link.pop()
        got = yield self.request(self.alice, unblockIQ("u1", BOB))
        self.assertStanzas(got,
                           f"<iq type='result' id='u1' from='{ALICE}' to='{ALICE}/a'/>",
                           privacyPush(f"{ALICE}/a"),
                           f"<presence from='{BOB}/b' to='{ALICE}'/>",
                           push(f"{ALICE}/a", "unblock", BOB))
        self.assertReceived(self.bob, f"<presence from='{ALICE}/a' to='{BOB}'><status>reading</status></presence>")

    @defer.inlineCallbacks
    def test_blockedContactCannotReachUser(self):
        """A blocked JID's messages and iqs get service-unavailable; its presence, subscriptions and probes vanish."""
        yield self.block(BOB)
        self.bob.link.pop()
        self.bob.receive(f"<message to='{ALICE}' id='m1' type='chat'><body>Can you hear me?</body></message>")
        self.bob.receive(f"<iq to='{ALICE}/a' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
        self.bob.receive(f"<iq to='{ALICE}' id='v2' type='get'><query xmlns='jabber:iq:version'/></iq>")
        self.bob.receive("<presence><show>chat</show></presence>")
        self.bob.receive(f"<presence to='{ALICE}/a'/>")
        self.bob.receive(f"<presence to='{ALICE}' type='probe'/>")
        self.bob.receive(f"<presence to='{ALICE}' type='unsubscribe'/>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertReceived(self.bob,
                            f"<message from='{ALICE}' to='{BOB}/b' id='m1' type='error'><body>Can you hear me?</body>{SU}</message>",
                            f"<iq from='{ALICE}/a' to='{BOB}/b' id='v1' type='error'>{SU}</iq>",
                            f"<iq from='{ALICE}' to='{BOB}/b' id='v2' type='error'>{SU}</iq>",
                            f"<presence from='{BOB}/b' to='{BOB}/b'><show>chat</show></presence>",
                            # Bob's own side of his unsubscribe; Alice's side never hears of it.
                            f"<iq type='set' id='*' to='{BOB}/b'><query xmlns='jabber:iq:roster'><item jid='{ALICE}' name='Alice' subscription='from'/></query></iq>")
        self.assertEqual(self.item(ALICE, BOB).subscription, "both")

    @defer.inlineCallbacks
    def test_userCannotReachBlockedContact(self):
        """Alice's own message and iq to a blocked JID come back not-acceptable with <blocked/>; her presence to it is dropped."""
        yield self.block(BOB)
        self.bob.link.pop()
        self.alice.receive(f"<message to='{BOB}' id='m1'><body>Can you hear me now?</body></message>")
        self.alice.receive(f"<iq to='{BOB}/b' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
        self.alice.receive(f"<presence to='{BOB}/b'/>")
        self.alice.receive(f"<presence to='{BOB}' type='subscribe'/>")
        yield self.settle()
        self.assertReceived(self.bob)
        self.assertReceived(self.alice,
                            f"<message from='{BOB}' to='{ALICE}/a' id='m1' type='error'><body>Can you hear me now?</body>{BLOCKED}</message>",
                            f"<iq from='{BOB}/b' to='{ALICE}/a' id='v1' type='error'>{BLOCKED}</iq>")
        self.assertFalse(self.item(ALICE, BOB).ask)

    @defer.inlineCallbacks
    def test_blockedRemoteContact(self):
        """Remote traffic from a blocked JID is refused the same way, and nothing goes to it."""
        yield self.block(EVE)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>spam</body></message>")
        self.route(f"<presence from='{EVE}' to='{ALICE}' type='subscribe'/>")
        self.alice.receive(f"<message to='{EVE}/x' id='m2'><body>reply</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}/x' id='m1' type='error'><body>spam</body>{SU}</message>")
        self.assertReceived(self.alice, f"<message from='{EVE}/x' to='{ALICE}/a' id='m2' type='error'><body>reply</body>{BLOCKED}</message>")

    @defer.inlineCallbacks
    def test_blockedDomain(self):
        """Blocking a domain blocks every JID at it."""
        yield self.block("remote.example")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m1'><body>1</body></message>")
        self.route(f"<message from='{EVE}' to='{ALICE}/a' id='m2'><body>2</body></message>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertRouted(
            f"<message from='{ALICE}/a' to='{DAVE}/x' id='m1' type='error'><body>1</body>{SU}</message>",
            f"<message from='{ALICE}/a' to='{EVE}' id='m2' type='error'><body>2</body>{SU}</message>",
        )

    @defer.inlineCallbacks
    def test_blockedFullJID(self):
        """Blocking a full JID blocks that resource only."""
        yield self.block(f"{EVE}/spam")
        self.route(f"<message from='{EVE}/spam' to='{ALICE}/a' id='m1'><body>1</body></message>")
        self.route(f"<message from='{EVE}/home' to='{ALICE}/a' id='m2'><body>2</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message from='{EVE}/home' to='{ALICE}/a' id='m2'><body>2</body></message>")

    @defer.inlineCallbacks
    def test_unblockedContactReachesUserAgain(self):
        """After unblocking, the JID's stanzas are delivered again."""
        yield self.block(EVE)
        yield self.request(self.alice, unblockIQ("u", EVE))
        self.alice.link.pop()
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>back</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>back</body></message>")

    @defer.inlineCallbacks
    def test_offlineUserStillBlocks(self):
        """The block lasts across sessions: with Alice offline, a blocked JID's message is refused, not stored."""
        yield self.block(EVE)
        self.alice.disconnect()
        yield self.settle()
        self.captured[:] = []
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>later</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>later</body>{SU}</message>")
        count = yield self.server.modules.modules["offline"].messages.count("localhost", "alice")
        self.assertEqual(count, 0)

    @defer.inlineCallbacks
    def test_ownResourcesNeverBlocked(self):
        """Blocking one's own JID or server does not cut the account off from itself or its server."""
        other = yield self.online(f"{ALICE}/b")
        yield self.block(ALICE, "localhost")
        other.receive(f"<message to='{ALICE}/a' id='m1'><body>self</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message to='{ALICE}/a' from='{ALICE}/b' id='m1'><body>self</body></message>")


class PrivacyListViewTests(BlockingTestMixin, unittest.TestCase):
    """§5: the blocklist is the default privacy list, and the other way round."""

    @defer.inlineCallbacks
    def setUp(self):
        yield BlockingTestMixin.setUp(self)
        self.alice = yield self.client(f"{ALICE}/a")

    @defer.inlineCallbacks
    def test_blockCreatesDefaultList(self):
        """The first block creates a default privacy list holding a jid/deny item per blocked JID."""
        yield self.request(self.alice, blockIQ("b1", "romeo@montague.net", "iago@shakespeare.lit"))
        got = yield self.request(self.alice, f"<iq type='get' id='g'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'><default name='blocklist'/><list name='blocklist'/></query></iq>")
        got = yield self.request(self.alice, f"<iq type='get' id='g2'><query xmlns='{NS}'><list name='blocklist'/></query></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g2' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'><list name='blocklist'>"
                           "<item type='jid' value='romeo@montague.net' action='deny' order='1'/>"
                           "<item type='jid' value='iago@shakespeare.lit' action='deny' order='2'/></list></query></iq>")

    @defer.inlineCallbacks
    def test_blockPrependsToExistingDefault(self):
        """With a default list already there, blocked JIDs are put before its items, which stay as they were."""
        yield self.setList(self.alice, "public", "<item type='group' value='Friends' action='allow' order='10'/><item action='allow' order='20'><message/></item>", default=True)
        yield self.request(self.alice, blockIQ("b1", "romeo@montague.net"))
        got = yield self.request(self.alice, f"<iq type='get' id='g'><query xmlns='{NS}'><list name='public'/></query></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'><list name='public'>"
                           "<item type='jid' value='romeo@montague.net' action='deny' order='9'/>"
                           "<item type='group' value='Friends' action='allow' order='10'/>"
                           "<item action='allow' order='20'><message/></item></list></query></iq>")

    @defer.inlineCallbacks
    def test_newListNameAvoidsExistingList(self):
        """When a non-default list is called 'blocklist', the new default gets another name."""
        yield self.setList(self.alice, "blocklist", "<item action='deny' order='1'/>")
        yield self.request(self.alice, blockIQ("b1", "romeo@montague.net"))
        self.assertEqual(self.rules.account(ALICE).defaultName, "blocklist-2")
        self.assertEqual(self.rules.account(ALICE).lists["blocklist"][0].type, None)

    @defer.inlineCallbacks
    def test_privacyEditShowsInBlocklist(self):
        """A jid/deny item added to the default list through XEP-0016 is a blocked JID, pushed as a block."""
        yield self.setList(self.alice, "public", "<item type='jid' value='romeo@montague.net' action='deny' order='1'/>", default=True)
        got = yield self.request(self.alice, f"<iq type='get' id='l'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='l' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'><item jid='romeo@montague.net'/></blocklist></iq>")
        got = yield self.request(self.alice, f"<iq type='set' id='e'><query xmlns='{NS}'><list name='public'>"
                                 "<item type='jid' value='iago@shakespeare.lit' action='deny' order='1'/>"
                                 "<item type='jid' value='tybalt@example.com' action='deny' order='2'><message/></item>"
                                 "</list></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='e' from='{ALICE}' to='{ALICE}/a'/>",
                           privacyPush(f"{ALICE}/a", "public"),
                           push(f"{ALICE}/a", "unblock", "romeo@montague.net"),
                           push(f"{ALICE}/a", "block", "iago@shakespeare.lit"))

    @defer.inlineCallbacks
    def test_newDefaultListIsNewBlocklist(self):
        """Making another list the default makes its blocked JIDs the blocklist (§5 item 4)."""
        yield self.request(self.alice, blockIQ("b1", "romeo@montague.net"))
        yield self.setList(self.alice, "other", "<item type='jid' value='iago@shakespeare.lit' action='deny' order='5'/>")
        got = yield self.request(self.alice, f"<iq type='set' id='d'><query xmlns='{NS}'><default name='other'/></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='d' from='{ALICE}' to='{ALICE}/a'/>",
                           push(f"{ALICE}/a", "unblock", "romeo@montague.net"),
                           push(f"{ALICE}/a", "block", "iago@shakespeare.lit"))

    @defer.inlineCallbacks
    def test_removingDefaultUnblocksAll(self):
        """Removing the default list leaves nothing blocked: pushed as unblock-all."""
        yield self.request(self.alice, blockIQ("b1", "romeo@montague.net"))
        got = yield self.request(self.alice, f"<iq type='set' id='r'><query xmlns='{NS}'><list name='blocklist'/></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='r' from='{ALICE}' to='{ALICE}/a'/>",
                           privacyPush(f"{ALICE}/a"),
                           f"<iq type='set' id='*' to='{ALICE}/a'><unblock xmlns='{NSB}'/></iq>")

    @defer.inlineCallbacks
    def test_otherItemsAreNotBlocked(self):
        """Items that are not jid/deny/everything (a kind-limited deny, an allow, a group) are not in the blocklist."""
        yield self.setList(self.alice, "public",
                           "<item type='jid' value='romeo@montague.net' action='deny' order='1'><message/></item>"
                           "<item type='jid' value='iago@shakespeare.lit' action='allow' order='2'/>"
                           "<item type='group' value='Enemies' action='deny' order='3'/>", default=True)
        got = yield self.request(self.alice, f"<iq type='get' id='l'><blocklist xmlns='{NSB}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='l' from='{ALICE}' to='{ALICE}/a'><blocklist xmlns='{NSB}'/></iq>")

    @defer.inlineCallbacks
    def test_activeListOverridesBlocklist(self):
        """A session with another active list receives from JIDs the default list blocks (§5 item 5)."""
        other = yield self.online(f"{ALICE}/b")
        yield self.request(self.alice, blockIQ("b1", EVE))
        yield self.setList(other, "open", "<item action='allow' order='1'/>", active=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/b' id='m1'><body>1</body></message>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m2'><body>2</body></message>")
        yield self.settle()
        self.assertReceived(other, f"<message from='{EVE}/x' to='{ALICE}/b' id='m1'><body>1</body></message>")
        self.assertReceived(self.alice)


class BlockingAloneTests(BlockingTestMixin, unittest.TestCase):
    """The blocking module runs without the privacy-lists module: same store and enforcement, no privacy pushes."""

    modules = ("roster", "presence", "messages", "offline", "blocking", "disco")

    @defer.inlineCallbacks
    def test_blockWithoutPrivacyModule(self):
        """Blocking works and is enforced with XEP-0016 disabled; only the blocking push is sent."""
        alice = yield self.client(f"{ALICE}/a")
        got = yield self.request(alice, blockIQ("b1", EVE))
        self.assertStanzas(got, f"<iq type='result' id='b1' from='{ALICE}' to='{ALICE}/a'/>", push(f"{ALICE}/a", "block", EVE))
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>spam</body></message>")
        yield self.settle()
        self.assertReceived(alice)
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}/x' id='m1' type='error'><body>spam</body>{SU}</message>")
        got = yield self.request(alice, f"<iq type='get' id='p'><query xmlns='{NS}'/></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "service-unavailable")

    @property
    def rules(self):
        return self.server.modules.modules["blocking"].rules
