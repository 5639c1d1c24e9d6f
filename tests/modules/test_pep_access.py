"""
PEP access models (XEP-0060 §4.5, XEP-0163): presence (the default), open,
roster and whitelist, and outcasts — for retrieving items, for service
discovery of the bare JID and its nodes, and for notifications.

Alice's roster: Bob ('both', group Friends), Carol ('both', group Work),
Dave ('to': he does not see her presence), Zoe (remote, 'both').  Erin is
not in it.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.modules.pep import FEATURES
from jabberd.store.roster import RosterItem
from tests.modules.test_pep import (
    ALICE,
    BOB,
    CAROL,
    NS_DISCO_INFO,
    NS_PUBSUB,
    SONG,
    TUNE,
    PepTestMixin,
    error,
    form,
    itemEvent,
    items,
    publish,
    pubsub,
)
from tests.modules.test_roster import REMOTE

DAVE, ERIN = "dave@localhost", "erin@localhost"
ZOE = f"zoe@{REMOTE}"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NODES = {"presence": "urn:presence", "open": "urn:open", "roster": "urn:roster", "whitelist": "urn:whitelist"}


class AccessTestMixin(PepTestMixin):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB, CAROL, DAVE, ERIN)
        yield self.seed(ALICE, [
            RosterItem(BOB, None, "both", groups=("Friends",)),
            RosterItem(CAROL, None, "both", groups=("Work",)),
            RosterItem(DAVE, None, "to"),
            RosterItem(ZOE, None, "both"),
        ])
        for contact in (BOB, CAROL):
            yield self.seed(contact, [RosterItem(ALICE, None, "both")])
        yield self.seed(DAVE, [RosterItem(ALICE, None, "from")])
        self.alice = yield self.login(f"{ALICE}/a")
        for model, node in NODES.items():
            options = {"pubsub#access_model": model}
            if model == "roster":
                options["pubsub#roster_groups_allowed"] = "Friends"
            yield self.send(self.alice, publish(node, SONG, options=options))
        self.alice.link.pop()

    @defer.inlineCallbacks
    def getItems(self, who: str, node: str, *expected: str):
        """C{who} (a bare JID, logged in as /r) asks for the items of Alice's C{node} and gets C{expected}."""
        session = yield self.login(f"{who}/r")
        yield self.assertExchange(session, pubsub(f"<items node='{node}'/>", "g", "get", to=ALICE), *expected)

    def ok(self, who: str, node: str) -> str:
        return items("g", node, ("current", SONG), to=f"{who}/r")

    def denied(self, who: str, condition: str, type_: str, pubsub_: str | None = None) -> str:
        return error("g", condition, type_, pubsub_, to=f"{who}/r")

    def affiliate(self, node: str, jid: str, affiliation: str) -> defer.Deferred:
        return self.send(self.alice, pubsub(f"<affiliations node='{node}'><affiliation jid='{jid}' affiliation='{affiliation}'/></affiliations>", "a", owner=True))


class RetrieveAccessTests(AccessTestMixin, unittest.TestCase):
    """Who may retrieve items."""

    @defer.inlineCallbacks
    def test_presence(self):
        """presence: contacts that see Alice's presence may; Dave ('to') and Erin get not-authorized with <presence-subscription-required/>."""
        yield self.getItems(BOB, NODES["presence"], self.ok(BOB, NODES["presence"]))
        yield self.getItems(CAROL, NODES["presence"], self.ok(CAROL, NODES["presence"]))
        for who in (DAVE, ERIN):
            yield self.getItems(who, NODES["presence"], self.denied(who, "not-authorized", "auth", "presence-subscription-required"))

    @defer.inlineCallbacks
    def test_open(self):
        """open: anyone may, in the roster or not."""
        for who in (BOB, DAVE, ERIN):
            yield self.getItems(who, NODES["open"], self.ok(who, NODES["open"]))

    @defer.inlineCallbacks
    def test_roster(self):
        """roster: only contacts in an allowed group; the others get not-authorized with <not-in-roster-group/>."""
        yield self.getItems(BOB, NODES["roster"], self.ok(BOB, NODES["roster"]))
        for who in (CAROL, DAVE):
            yield self.getItems(who, NODES["roster"], self.denied(who, "not-authorized", "auth", "not-in-roster-group"))

    @defer.inlineCallbacks
    def test_whitelist(self):
        """whitelist: nobody but the owner, until made a member; the others get not-allowed with <closed-node/>."""
        yield self.getItems(BOB, NODES["whitelist"], self.denied(BOB, "not-allowed", "cancel", "closed-node"))
        yield self.affiliate(NODES["whitelist"], BOB, "member")
        yield self.getItems(BOB, NODES["whitelist"], self.ok(BOB, NODES["whitelist"]))
        yield self.getItems(CAROL, NODES["whitelist"], self.denied(CAROL, "not-allowed", "cancel", "closed-node"))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<items node='{NODES['whitelist']}'/>", "g", "get"), items("g", NODES["whitelist"], ("current", SONG)))

    @defer.inlineCallbacks
    def test_outcast(self):
        """An outcast is forbidden whatever the access model."""
        for node in (NODES["presence"], NODES["open"]):
            yield self.affiliate(node, BOB, "outcast")
            yield self.getItems(BOB, node, self.denied(BOB, "forbidden", "auth"))

    @defer.inlineCallbacks
    def test_remoteRequester(self):
        """A remote contact with a presence subscription may retrieve items of a presence node; its answer is routed back."""
        self.captured[:] = []
        self.route(f"<iq type='get' id='g' from='{ZOE}/phone' to='{ALICE}'><pubsub xmlns='{NS_PUBSUB}'><items node='{NODES['presence']}'/></pubsub></iq>")
        yield self.settle()
        self.assertRouted(items("g", NODES["presence"], ("current", SONG), to=f"{ZOE}/phone"))

    @defer.inlineCallbacks
    def test_noSuchAccount(self):
        """Items of an account that does not exist: service-unavailable (RFC 6121 §8.5.1)."""
        bob = yield self.login(f"{BOB}/r")
        yield self.assertExchange(bob, pubsub(f"<items node='{TUNE}'/>", "g", "get", to="nobody@localhost"), error("g", "service-unavailable", "cancel", frm="nobody@localhost", to=f"{BOB}/r"))


class NotificationAccessTests(AccessTestMixin, unittest.TestCase):
    """Who is notified, by access model."""

    @defer.inlineCallbacks
    def notified(self, node: str) -> list[str]:
        """Bob and Carol online, interested in C{node}: who gets Alice's next publish."""
        bob = yield self.login(f"{BOB}/r", node)
        carol = yield self.login(f"{CAROL}/r", node)
        yield self.send(self.alice, publish(node, SONG, id_="again"))
        got = []
        for who, session in ((BOB, bob), (CAROL, carol)):
            messages = [e for e in session.link.pop() if e.name == "message"]
            if messages:
                self.assertStanzas(messages, itemEvent(f"{who}/r", node))
                got.append(who)
        return got

    @defer.inlineCallbacks
    def test_presence(self):
        """presence: both contacts are notified."""
        self.assertEqual((yield self.notified(NODES["presence"])), [BOB, CAROL])

    @defer.inlineCallbacks
    def test_roster(self):
        """roster: only the contact in the allowed group."""
        self.assertEqual((yield self.notified(NODES["roster"])), [BOB])

    @defer.inlineCallbacks
    def test_whitelist(self):
        """whitelist: only members."""
        yield self.affiliate(NODES["whitelist"], CAROL, "member")
        self.assertEqual((yield self.notified(NODES["whitelist"])), [CAROL])

    @defer.inlineCallbacks
    def test_outcast(self):
        """An outcast is not notified."""
        yield self.affiliate(NODES["open"], BOB, "outcast")
        self.assertEqual((yield self.notified(NODES["open"])), [CAROL])

    @defer.inlineCallbacks
    def test_lastItemOnRosterNode(self):
        """The last item of a roster node reaches a contact of an allowed group coming online, and not one of another group."""
        bob = yield self.login(f"{BOB}/x", available=False)
        carol = yield self.login(f"{CAROL}/x", available=False)
        caps = yield self.knownCaps(NODES["roster"])
        yield self.send(bob, f"<presence>{caps}</presence>")
        yield self.send(carol, f"<presence>{caps}</presence>")
        self.assertStanzas([e for e in bob.link.pop() if e.name == "message"], itemEvent(f"{BOB}/x", NODES["roster"], delay="*"))
        self.assertEqual([e for e in carol.link.pop() if e.name == "message"], [])


class DiscoveryTests(AccessTestMixin, unittest.TestCase):
    """disco#info and disco#items of the bare JID and its nodes (XEP-0163 §5)."""

    def discoItems(self, node: str | None = None, to: str = ALICE) -> str:
        attr = f" node='{node}'" if node else ""
        return f"<iq type='get' id='d' to='{to}'><query xmlns='{NS_DISCO_ITEMS}'{attr}/></iq>"

    def discoInfo(self, node: str | None = None, to: str = ALICE) -> str:
        attr = f" node='{node}'" if node else ""
        return f"<iq type='get' id='d' to='{to}'><query xmlns='{NS_DISCO_INFO}'{attr}/></iq>"

    @defer.inlineCallbacks
    def test_infoHasPepIdentityAndFeatures(self):
        """disco#info of the bare JID has the pubsub/pep identity and every pubsub feature the service offers."""
        yield self.send(self.alice, self.discoInfo())
        query = self.alice.link.popOne().query
        identities = sorted((i["category"], i["type"]) for i in query.elements(NS_DISCO_INFO, "identity"))
        self.assertEqual(identities, [("account", "registered"), ("pubsub", "pep")])
        features = [f["var"] for f in query.elements(NS_DISCO_INFO, "feature")]
        for feature in FEATURES:
            self.assertIn(feature, features)
        for needed in ("publish-options", "auto-create", "filtered-notifications", "access-whitelist", "config-node-max", "persistent-items"):
            self.assertIn(f"{NS_PUBSUB}#{needed}", features)

    @defer.inlineCallbacks
    def test_itemsListsWhatTheRequesterMaySee(self):
        """disco#items lists every node to the owner, and to a contact only those it may retrieve from."""
        mine = "".join(f"<item jid='{ALICE}' node='{n}'/>" for n in sorted(NODES.values()))
        yield self.assertExchange(self.alice, self.discoItems(), f"<iq type='result' id='d' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS_DISCO_ITEMS}'>{mine}</query></iq>")
        carol = yield self.login(f"{CAROL}/r")
        seen = "".join(f"<item jid='{ALICE}' node='{n}'/>" for n in sorted([NODES["open"], NODES["presence"]]))
        yield self.assertExchange(carol, self.discoItems(), f"<iq type='result' id='d' from='{ALICE}' to='{CAROL}/r'><query xmlns='{NS_DISCO_ITEMS}'>{seen}</query></iq>")

    @defer.inlineCallbacks
    def test_nodeInfo(self):
        """disco#info of a visible node is pubsub/leaf with the pubsub feature; of a hidden or missing one, item-not-found."""
        carol = yield self.login(f"{CAROL}/r")
        yield self.assertExchange(
            carol,
            self.discoInfo(NODES["presence"]),
            f"<iq type='result' id='d' from='{ALICE}' to='{CAROL}/r'><query xmlns='{NS_DISCO_INFO}' node='{NODES['presence']}'><identity category='pubsub' type='leaf'/><feature var='{NS_PUBSUB}'/></query></iq>",
        )
        for node in (NODES["whitelist"], "urn:missing"):
            yield self.assertExchange(carol, self.discoInfo(node), error("d", "item-not-found", "cancel", to=f"{CAROL}/r"))

    @defer.inlineCallbacks
    def test_nodeItems(self):
        """disco#items of a node lists its item ids (XEP-0060 §5.5)."""
        yield self.send(self.alice, pubsub(f"<configure node='{NODES['open']}'>{form({'pubsub#max_items': '5'})}</configure>", "c", owner=True))
        yield self.send(self.alice, publish(NODES["open"], SONG, item="second"))
        self.alice.link.pop()
        yield self.send(self.alice, publish(NODES["open"], SONG, item="third"))
        self.alice.link.pop()
        yield self.assertExchange(
            self.alice,
            self.discoItems(NODES["open"]),
            f"<iq type='result' id='d' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS_DISCO_ITEMS}' node='{NODES['open']}'>"
            f"<item jid='{ALICE}' name='current'/><item jid='{ALICE}' name='second'/><item jid='{ALICE}' name='third'/></query></iq>",
        )
