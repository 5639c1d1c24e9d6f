"""
Personal eventing (XEP-0163) through real sessions: every owner operation
and its errors — publish (auto-create, with and without an item id),
retract, items (all, max_items, by id), create, delete, purge, node
configuration, the default configuration, affiliations — limits and
persistence across a restart.

Also home of L{PepTestMixin}, which the other PEP test modules share:
sessions with verified entity capabilities, exact stanza assertions
('*' matches a generated id) and waiting until the store is idle.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.modules.caps import NS_CAPS, verificationString
from jabberd.modules.pep.config import NodeConfig
from jabberd.store.caps import set_caps_txn
from jabberd.store.pep import get_items_txn, load_services_txn
from jabberd.store.roster import RosterItem
from tests.fakes import element
from tests.modules.test_roster import RosterTestMixin

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
TUNE = "http://jabber.org/protocol/tune"

ALICE, BOB, CAROL = "alice@localhost", "bob@localhost", "carol@localhost"
SONG = f"<tune xmlns='{TUNE}'><artist>Gerald Finzi</artist><title>Introduction</title></tune>"
OTHER_SONG = f"<tune xmlns='{TUNE}'><artist>Purcell</artist></tune>"
CLIENT_NODE = "https://example.org/client"


def discoQuery(features: tuple[str, ...], node: str | None = None) -> domish.Element:
    """A client's disco#info <query/>: identity client/pc and C{features}."""
    query = domish.Element((NS_DISCO_INFO, "query"))
    if node:
        query["node"] = node
    identity = query.addElement("identity")
    identity["category"], identity["type"], identity["name"] = "client", "pc", "Test"
    for feature in features:
        query.addElement("feature")["var"] = feature
    return query


def capsVer(features: tuple[str, ...]) -> str:
    """The sha-1 verification string of a client with C{features}."""
    return verificationString(discoQuery(features), "sha-1")


def capsElement(ver: str, hash_: str = "sha-1") -> str:
    return f"<c xmlns='{NS_CAPS}' hash='{hash_}' node='{CLIENT_NODE}' ver='{ver}'/>"


def pubsub(body: str, id_: str = "p", type_: str = "set", to: str | None = None, owner: bool = False) -> str:
    """An iq with a pubsub (or pubsub#owner) payload."""
    ns = NS_OWNER if owner else NS_PUBSUB
    address = f" to='{to}'" if to else ""
    return f"<iq type='{type_}' id='{id_}'{address}><pubsub xmlns='{ns}'>{body}</pubsub></iq>"


def publish(node: str, payload: str = SONG, item: str | None = "current", options: dict[str, str] | None = None, id_: str = "p") -> str:
    """A publish request (with publish-options when C{options} is given)."""
    itemId = f" id='{item}'" if item is not None else ""
    extra = ""
    if options is not None:
        extra = f"<publish-options>{form(options, 'http://jabber.org/protocol/pubsub#publish-options')}</publish-options>"
    return pubsub(f"<publish node='{node}'><item{itemId}>{payload}</item></publish>{extra}", id_)


def form(values: dict[str, Any], formType: str = "http://jabber.org/protocol/pubsub#node_config", type_: str = "submit") -> str:
    """A submitted data form."""
    fields = f"<field var='FORM_TYPE' type='hidden'><value>{formType}</value></field>"
    for var, value in values.items():
        vals = value if isinstance(value, (list, tuple)) else [value]
        fields += f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in vals) + "</field>"
    return f"<x xmlns='{NS_DATA}' type='{type_}'>{fields}</x>"


def result(id_: str, body: str = "", frm: str = ALICE, to: str = f"{ALICE}/a") -> str:
    return f"<iq type='result' id='{id_}' from='{frm}' to='{to}'>{body}</iq>"


def error(id_: str, condition: str, type_: str, pubsub_: str | None = None, text: str | None = None, frm: str = ALICE, to: str = f"{ALICE}/a", feature: str | None = None) -> str:
    """The expected error reply (RFC 6120 condition, pubsub condition, text)."""
    app = ""
    if pubsub_:
        attr = f" feature='{feature}'" if feature else ""
        app = f"<{pubsub_} xmlns='{NS_ERRORS}'{attr}/>"
    txt = f"<text xmlns='{STANZAS}' xml:lang='en'>{text}</text>" if text else ""
    return f"<iq type='error' id='{id_}' from='{frm}' to='{to}'><error type='{type_}'><{condition} xmlns='{STANZAS}'/>{txt}{app}</error></iq>"


def published(id_: str, node: str, item: str, frm: str = ALICE, to: str = f"{ALICE}/a") -> str:
    return result(id_, f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'><item id='{item}'/></publish></pubsub>", frm, to)


def items(id_: str, node: str, *entries: tuple[str, str], frm: str = ALICE, to: str = f"{ALICE}/a") -> str:
    body = "".join(f"<item id='{i}'>{p}</item>" for i, p in entries)
    return result(id_, f"<pubsub xmlns='{NS_PUBSUB}'><items node='{node}'>{body}</items></pubsub>", frm, to)


def event(to: str, node: str, body: str, frm: str = ALICE, type_: str = "headline", delay: str | None = None) -> str:
    """The expected notification message (its id generated: '*')."""
    extra = f"<delay xmlns='urn:xmpp:delay' stamp='{delay}'/>" if delay else ""
    return f"<message from='{frm}' to='{to}' type='{type_}' id='*'><event xmlns='{NS_EVENT}'>{body}</event>{extra}</message>"


def itemEvent(to: str, node: str, item: str = "current", payload: str = SONG, **kw: Any) -> str:
    return event(to, node, f"<items node='{node}'><item id='{item}'>{payload}</item></items>", **kw)


class PepTestMixin(RosterTestMixin):
    """The server with roster, presence, messages, disco, caps and PEP; sessions with caps."""

    modules = ("roster", "presence", "messages", "disco", "caps", "pep")

    @property
    def pep(self) -> Any:
        return self.server.modules.modules["pep"]

    @property
    def caps(self) -> Any:
        return self.server.modules.modules["caps"]

    @defer.inlineCallbacks
    def settle(self):
        """Wait until rosters, PEP services and the store are idle and delivery is done."""
        for _ in range(4):
            yield self.roster.whenIdle()
            yield self.caps.whenIdle()
            yield self.pep.services.whenIdle()
            yield task.deferLater(reactor, 0.005, lambda: None)

    @defer.inlineCallbacks
    def knownCaps(self, *nodes: str, features: tuple[str, ...] = ()):
        """A <c/> for a client asking for C{nodes}' notifications, already verified in the store."""
        allFeatures = tuple(features) + tuple(f"{n}+notify" for n in nodes)
        ver = capsVer(allFeatures)
        yield self.server.store.runInteraction(
            "seed caps", set_caps_txn, "sha-1", ver, discoQuery(allFeatures).toXml(), datetime.now(timezone.utc)
        )
        return capsElement(ver)

    @defer.inlineCallbacks
    def login(self, full: str, *nodes: str, available: bool = True):
        """Bind, get the roster, send initial presence with caps asking for C{nodes}; drop what arrived."""
        caps = yield self.knownCaps(*nodes)
        session = yield self.online(full, available=available, presence=f"<presence>{caps}</presence>")
        yield self.settle()
        session.link.pop()
        return session

    def assertReceived(self, session: Any, *expected: str) -> None:
        """The session received exactly C{expected} since the last check, presence aside (not what these tests are about)."""
        self.assertStanzas([e for e in session.link.pop() if e.name != "presence"], *expected)

    def assertRouted(self, *expected: str) -> None:
        """Exactly C{expected} went to the captured remote domain since the last check (parsed back from the bytes they become)."""
        got, self.captured[:] = [element(e.toXml()) for e in self.captured], []
        self.assertStanzas(got, *expected)

    def route(self, xml: str) -> None:
        """Hand the Router a stanza as another server would."""
        self.server.router.route(element(xml))

    @defer.inlineCallbacks
    def send(self, session: Any, xml: str):
        """C{session} sends C{xml}; everything is processed."""
        session.receive(xml)
        yield self.settle()

    @defer.inlineCallbacks
    def assertExchange(self, session: Any, request: str, *expected: str):
        """C{session} sends C{request} and receives exactly C{expected}."""
        yield self.send(session, request)
        self.assertReceived(session, *expected)

    def seedBoth(self, a: str, b: str, groupsOfB: tuple[str, ...] = ()) -> defer.Deferred:
        """Mutual 'both' subscriptions between local accounts (b in a's groups C{groupsOfB})."""
        d = self.seed(a, [RosterItem(b, None, "both", groups=groupsOfB)])
        d.addCallback(lambda _: self.seed(b, [RosterItem(a, None, "both")]))
        return d

    @defer.inlineCallbacks
    def storedItems(self, owner: str, node: str):
        """The ids of the node's items as the store has them, oldest first."""
        yield self.settle()
        user, _, host = owner.partition("@")
        found = yield self.server.store.runInteraction("items", get_items_txn, host, user, node)
        return [i.id for i in found]

    @defer.inlineCallbacks
    def storedNodes(self, owner: str):
        yield self.settle()
        user, _, host = owner.partition("@")
        found = yield self.server.store.runInteraction("load", load_services_txn, [(host, user)])
        return found[(host, user)]


class PublishTests(PepTestMixin, unittest.TestCase):
    """Publishing and auto-creation (XEP-0060 §7.1, XEP-0163 §3)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB)
        self.alice = yield self.login(f"{ALICE}/a", TUNE)

    @defer.inlineCallbacks
    def test_publishAutoCreates(self):
        """Publishing to a node that does not exist creates it with the default configuration, and the owner's interested resource is notified."""
        yield self.assertExchange(self.alice, publish(TUNE), published("p", TUNE, "current"), itemEvent(f"{ALICE}/a", TUNE))
        nodes = yield self.storedNodes(ALICE)
        self.assertEqual(list(nodes), [TUNE])
        self.assertEqual(nodes[TUNE].config, NodeConfig().toDict())
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["current"])

    @defer.inlineCallbacks
    def test_publishWithoutItemId(self):
        """An item without an id gets a generated one, named in the result and the notification."""
        yield self.send(self.alice, publish(TUNE, item=None))
        got = self.alice.link.pop()
        self.assertStanzas(got, published("p", TUNE, "*"), itemEvent(f"{ALICE}/a", TUNE, "*"))
        generated = got[0].pubsub.publish.item["id"]
        self.assertEqual(len(generated), 32)
        self.assertEqual(got[1].event.items.item["id"], generated)
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), [generated])

    @defer.inlineCallbacks
    def test_republishReplaces(self):
        """Publishing an existing item id overwrites the item and notifies again (§7.1.2)."""
        yield self.send(self.alice, publish(TUNE))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, publish(TUNE, OTHER_SONG, id_="p2"), published("p2", TUNE, "current"), itemEvent(f"{ALICE}/a", TUNE, payload=OTHER_SONG))
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}'/>", "g", "get"), items("g", TUNE, ("current", OTHER_SONG)))

    @defer.inlineCallbacks
    def test_publishToOwnBareJID(self):
        """A publish addressed to the account's own bare JID is the same as one without 'to'."""
        request = pubsub(f"<publish node='{TUNE}'><item id='x'>{SONG}</item></publish>", to=ALICE)
        yield self.assertExchange(self.alice, request, published("p", TUNE, "x"), itemEvent(f"{ALICE}/a", TUNE, "x"))

    @defer.inlineCallbacks
    def test_maxItemsKeepsNewest(self):
        """A node keeps at most pubsub#max_items items: publishing more drops the oldest."""
        yield self.send(self.alice, publish(TUNE, item="1", options={"pubsub#max_items": "2"}))
        yield self.send(self.alice, publish(TUNE, item="2"))
        yield self.send(self.alice, publish(TUNE, item="3"))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["2", "3"])

    @defer.inlineCallbacks
    def test_itemRequired(self):
        """A publish without an item is bad-request with <item-required/> (§7.1.3.6)."""
        yield self.assertExchange(self.alice, pubsub(f"<publish node='{TUNE}'/>"), error("p", "bad-request", "modify", "item-required"))

    @defer.inlineCallbacks
    def test_payloadRequired(self):
        """An item without a payload is bad-request with <payload-required/>."""
        yield self.assertExchange(self.alice, pubsub(f"<publish node='{TUNE}'><item id='1'/></publish>"), error("p", "bad-request", "modify", "payload-required"))

    @defer.inlineCallbacks
    def test_twoPayloads(self):
        """An item with two payloads is bad-request with <invalid-payload/> (§7.1.3.5)."""
        body = f"<publish node='{TUNE}'><item id='1'>{SONG}{SONG}</item></publish>"
        yield self.assertExchange(self.alice, pubsub(body), error("p", "bad-request", "modify", "invalid-payload", "an item carries exactly one payload"))

    @defer.inlineCallbacks
    def test_twoItems(self):
        """Publishing two items at once is bad-request with <invalid-payload/> (batches were removed in XEP-0060 1.13)."""
        body = f"<publish node='{TUNE}'><item id='1'>{SONG}</item><item id='2'>{SONG}</item></publish>"
        yield self.assertExchange(self.alice, pubsub(body), error("p", "bad-request", "modify", "invalid-payload", "publish one item at a time"))

    @defer.inlineCallbacks
    def test_nodeRequired(self):
        """A publish without a node is bad-request with <nodeid-required/>."""
        yield self.assertExchange(self.alice, pubsub(f"<publish><item>{SONG}</item></publish>"), error("p", "bad-request", "modify", "nodeid-required"))

    @defer.inlineCallbacks
    def test_notTheOwner(self):
        """Publishing to another account's node is forbidden: only the account publishes (XEP-0163 §3.2)."""
        bob = yield self.login(f"{BOB}/b")
        request = pubsub(f"<publish node='{TUNE}'><item>{SONG}</item></publish>", to=ALICE)
        yield self.assertExchange(bob, request, error("p", "forbidden", "auth", text="only the account publishes to its nodes", to=f"{BOB}/b"))
        for body in (f"<retract node='{TUNE}'><item id='1'/></retract>", f"<create node='{TUNE}'/>"):
            yield self.assertExchange(bob, pubsub(body, to=ALICE), error("p", "forbidden", "auth", text="only the account publishes to its nodes", to=f"{BOB}/b"))

    @defer.inlineCallbacks
    def test_unknownAction(self):
        """A pubsub request the service does not offer is feature-not-implemented with <unsupported/> naming it."""
        yield self.assertExchange(
            self.alice,
            pubsub(f"<subscriptions node='{TUNE}'/>", "s", "get", owner=True),
            error("s", "feature-not-implemented", "cancel", "unsupported", "subscriptions is not supported here", feature="manage-subscriptions"),
        )
        yield self.assertExchange(self.alice, pubsub(""), error("p", "bad-request", "modify", text="no pubsub action in the request"))


class LimitTests(PepTestMixin, unittest.TestCase):
    """The [limits] options: payload size, nodes per account, items per node."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, limits={"max_pep_payload_size": 200, "max_pep_nodes": 2, "max_pep_items": 3})
        self.alice = yield self.login(f"{ALICE}/a")

    @defer.inlineCallbacks
    def test_payloadTooBig(self):
        """A payload over max_pep_payload_size is not-acceptable with <payload-too-big/> and nothing is stored."""
        big = f"<tune xmlns='{TUNE}'><title>{'x' * 200}</title></tune>"
        yield self.assertExchange(self.alice, publish(TUNE, big), error("p", "not-acceptable", "modify", "payload-too-big", "a payload is limited to 200 bytes"))
        self.assertEqual((yield self.storedNodes(ALICE)), {})

    @defer.inlineCallbacks
    def test_tooManyNodes(self):
        """An account may not have more than max_pep_nodes nodes: policy-violation."""
        yield self.send(self.alice, publish("urn:a"))
        yield self.send(self.alice, pubsub("<create node='urn:b'/>", "c"))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, publish("urn:c"), error("p", "policy-violation", "modify", text="an account may have at most 2 nodes"))
        yield self.assertExchange(self.alice, pubsub("<create node='urn:d'/>", "c"), error("c", "policy-violation", "modify", text="an account may have at most 2 nodes"))

    @defer.inlineCallbacks
    def test_maxMeansTheLimit(self):
        """pubsub#max_items "max" keeps max_pep_items items."""
        for i in range(5):
            yield self.send(self.alice, publish(TUNE, item=str(i), options={"pubsub#max_items": "max"}))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["2", "3", "4"])

    @defer.inlineCallbacks
    def test_maxItemsOverTheLimit(self):
        """A pubsub#max_items above max_pep_items cannot be configured: not-acceptable."""
        yield self.send(self.alice, publish(TUNE))
        self.alice.link.pop()
        yield self.assertExchange(
            self.alice,
            pubsub(f"<configure node='{TUNE}'>{form({'pubsub#max_items': '4'})}</configure>", "c", owner=True),
            error("c", "not-acceptable", "modify", text='pubsub#max_items may be at most 3 (or "max")'),
        )


class RetractTests(PepTestMixin, unittest.TestCase):
    """Deleting an item (XEP-0060 §7.2)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE)
        self.alice = yield self.login(f"{ALICE}/a", TUNE)
        yield self.send(self.alice, publish(TUNE, item="1", options={"pubsub#max_items": "10"}))
        yield self.send(self.alice, publish(TUNE, item="2"))
        self.alice.link.pop()

    def retract(self, item: str = "2", node: str = TUNE, notify: str | None = None) -> str:
        flag = f" notify='{notify}'" if notify is not None else ""
        return pubsub(f"<retract node='{node}'{flag}><item id='{item}'/></retract>", "r")

    @defer.inlineCallbacks
    def test_retractNotifies(self):
        """Retracting an item deletes it and notifies with <retract/> (pubsub#notify_retract is on by default)."""
        yield self.assertExchange(self.alice, self.retract(), result("r"), event(f"{ALICE}/a", TUNE, f"<items node='{TUNE}'><retract id='2'/></items>"))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["1"])

    @defer.inlineCallbacks
    def test_retractNotifyFalse(self):
        """notify='false' retracts without notifications."""
        yield self.assertExchange(self.alice, self.retract(notify="false"), result("r"))

    @defer.inlineCallbacks
    def test_retractNotifyTrueOverridesConfig(self):
        """notify='1' notifies even when pubsub#notify_retract is off (§7.2.2.1)."""
        yield self.send(self.alice, pubsub(f"<configure node='{TUNE}'>{form({'pubsub#notify_retract': '0'})}</configure>", "c", owner=True))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, self.retract(notify=None), result("r"))
        yield self.assertExchange(self.alice, self.retract("1", notify="1"), result("r"), event(f"{ALICE}/a", TUNE, f"<items node='{TUNE}'><retract id='1'/></items>"))

    @defer.inlineCallbacks
    def test_retractingTheLastItemMakesThePreviousOneLast(self):
        """After the newest item is retracted, the one before it is what a request for the newest returns."""
        yield self.send(self.alice, self.retract())
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}' max_items='1'/>", "g", "get"), items("g", TUNE, ("1", SONG)))

    @defer.inlineCallbacks
    def test_noSuchItem(self):
        """Retracting an item that does not exist is item-not-found."""
        yield self.assertExchange(self.alice, self.retract("nope"), error("r", "item-not-found", "cancel"))

    @defer.inlineCallbacks
    def test_noSuchNode(self):
        """Retracting from a node that does not exist is item-not-found."""
        yield self.assertExchange(self.alice, self.retract(node="urn:nope"), error("r", "item-not-found", "cancel"))

    @defer.inlineCallbacks
    def test_itemRequired(self):
        """A retract without an item id is bad-request with <item-required/>."""
        yield self.assertExchange(self.alice, pubsub(f"<retract node='{TUNE}'><item/></retract>", "r"), error("r", "bad-request", "modify", "item-required"))

    @defer.inlineCallbacks
    def test_nodeRequired(self):
        """A retract without a node is bad-request with <nodeid-required/>."""
        yield self.assertExchange(self.alice, pubsub("<retract><item id='1'/></retract>", "r"), error("r", "bad-request", "modify", "nodeid-required"))


class ItemsTests(PepTestMixin, unittest.TestCase):
    """Retrieving items (XEP-0060 §6.5) as the owner."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE)
        self.alice = yield self.login(f"{ALICE}/a")
        for i in range(1, 4):
            yield self.send(self.alice, publish(TUNE, f"<tune xmlns='{TUNE}'><track>{i}</track></tune>", item=str(i), options={"pubsub#max_items": "10"}))
        self.alice.link.pop()

    def track(self, i: int) -> tuple[str, str]:
        return (str(i), f"<tune xmlns='{TUNE}'><track>{i}</track></tune>")

    @defer.inlineCallbacks
    def test_all(self):
        """All items, oldest first."""
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}'/>", "g", "get"), items("g", TUNE, self.track(1), self.track(2), self.track(3)))

    @defer.inlineCallbacks
    def test_maxItems(self):
        """max_items='2' returns the two newest (§6.5.7)."""
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}' max_items='2'/>", "g", "get"), items("g", TUNE, self.track(2), self.track(3)))

    @defer.inlineCallbacks
    def test_newestFromMemory(self):
        """max_items='1' is answered from memory, without the store."""
        calls = []
        original = self.server.store.runInteraction
        self.server.store.runInteraction = lambda desc, *a, **k: calls.append(desc) or original(desc, *a, **k)
        self.addCleanup(setattr, self.server.store, "runInteraction", original)
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}' max_items='1'/>", "g", "get"), items("g", TUNE, self.track(3)))
        self.assertEqual(calls, [])

    @defer.inlineCallbacks
    def test_byIds(self):
        """Items asked for by id, including one that does not exist (§6.5.8)."""
        body = f"<items node='{TUNE}'><item id='3'/><item id='1'/><item id='9'/></items>"
        yield self.assertExchange(self.alice, pubsub(body, "g", "get"), items("g", TUNE, self.track(1), self.track(3)))

    @defer.inlineCallbacks
    def test_emptyNode(self):
        """A node without items returns an empty <items/> (§6.5.9.11)."""
        yield self.send(self.alice, pubsub("<create node='urn:empty'/>", "c"))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub("<items node='urn:empty'/>", "g", "get"), items("g", "urn:empty"))

    @defer.inlineCallbacks
    def test_noSuchNode(self):
        """Items of a node that does not exist: item-not-found."""
        yield self.assertExchange(self.alice, pubsub("<items node='urn:nope'/>", "g", "get"), error("g", "item-not-found", "cancel"))

    @defer.inlineCallbacks
    def test_badMaxItems(self):
        """A max_items that is not a positive number is bad-request."""
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}' max_items='0'/>", "g", "get"), error("g", "bad-request", "modify", text="max_items must be a positive number"))

    @defer.inlineCallbacks
    def test_nodeRequired(self):
        """Items without a node: bad-request with <nodeid-required/>."""
        yield self.assertExchange(self.alice, pubsub("<items/>", "g", "get"), error("g", "bad-request", "modify", "nodeid-required"))

    @defer.inlineCallbacks
    def test_ownAffiliations(self):
        """The account is the owner of every one of its nodes (§5.7)."""
        yield self.send(self.alice, pubsub("<create node='urn:b'/>", "c"))
        self.alice.link.pop()
        yield self.assertExchange(
            self.alice,
            pubsub("<affiliations/>", "a", "get"),
            result("a", f"<pubsub xmlns='{NS_PUBSUB}'><affiliations><affiliation node='{TUNE}' affiliation='owner'/><affiliation node='urn:b' affiliation='owner'/></affiliations></pubsub>"),
        )


class CreateDeletePurgeTests(PepTestMixin, unittest.TestCase):
    """Node creation (§8.1), deletion (§8.4) and purge (§8.5)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE)
        self.alice = yield self.login(f"{ALICE}/a", TUNE)

    @defer.inlineCallbacks
    def test_create(self):
        """Creating a node stores it empty, with the default configuration."""
        yield self.assertExchange(self.alice, pubsub(f"<create node='{TUNE}'/>", "c"), result("c"))
        nodes = yield self.storedNodes(ALICE)
        self.assertEqual((list(nodes), nodes[TUNE].last), ([TUNE], None))

    @defer.inlineCallbacks
    def test_createAndConfigure(self):
        """A <configure/> form beside <create/> configures the new node (§8.1.3)."""
        request = pubsub(f"<create node='{TUNE}'/><configure>{form({'pubsub#access_model': 'open', 'pubsub#max_items': '5'})}</configure>", "c")
        yield self.assertExchange(self.alice, request, result("c"))
        nodes = yield self.storedNodes(ALICE)
        self.assertEqual((nodes[TUNE].config["access_model"], nodes[TUNE].config["max_items"]), ("open", 5))

    @defer.inlineCallbacks
    def test_createExisting(self):
        """Creating a node that exists is conflict."""
        yield self.send(self.alice, pubsub(f"<create node='{TUNE}'/>", "c"))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<create node='{TUNE}'/>", "c"), error("c", "conflict", "cancel", text="the node exists"))

    @defer.inlineCallbacks
    def test_instantNode(self):
        """A create without a node (an instant node) is not-acceptable with <nodeid-required/>."""
        yield self.assertExchange(self.alice, pubsub("<create/>", "c"), error("c", "not-acceptable", "modify", "nodeid-required"))

    @defer.inlineCallbacks
    def test_createWithBadConfiguration(self):
        """A create whose form has a bad value is not-acceptable and creates nothing."""
        request = pubsub(f"<create node='{TUNE}'/><configure>{form({'pubsub#access_model': 'authorize'})}</configure>", "c")
        yield self.assertExchange(self.alice, request, error("c", "not-acceptable", "modify", text="pubsub#access_model must be one of open, presence, roster, whitelist"))
        self.assertEqual((yield self.storedNodes(ALICE)), {})

    @defer.inlineCallbacks
    def test_delete(self):
        """Deleting a node removes it and its items and notifies with <delete/>."""
        yield self.send(self.alice, publish(TUNE))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<delete node='{TUNE}'/>", "d", owner=True), result("d"), event(f"{ALICE}/a", TUNE, f"<delete node='{TUNE}'/>"))
        self.assertEqual((yield self.storedNodes(ALICE)), {})
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}'/>", "g", "get"), error("g", "item-not-found", "cancel"))

    @defer.inlineCallbacks
    def test_deleteWithoutNotification(self):
        """pubsub#notify_delete off: the node is deleted silently."""
        yield self.send(self.alice, publish(TUNE, options={"pubsub#notify_delete": "false"}))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<delete node='{TUNE}'/>", "d", owner=True), result("d"))

    @defer.inlineCallbacks
    def test_deleteMissing(self):
        """Deleting a node that does not exist is item-not-found."""
        yield self.assertExchange(self.alice, pubsub(f"<delete node='{TUNE}'/>", "d", owner=True), error("d", "item-not-found", "cancel"))

    @defer.inlineCallbacks
    def test_purge(self):
        """Purging removes every item and sends one <purge/> notification (§8.5.2)."""
        yield self.send(self.alice, publish(TUNE, item="1", options={"pubsub#max_items": "5"}))
        yield self.send(self.alice, publish(TUNE, item="2"))
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<purge node='{TUNE}'/>", "x", owner=True), result("x"), event(f"{ALICE}/a", TUNE, f"<purge node='{TUNE}'/>"))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), [])
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}'/>", "g", "get"), items("g", TUNE))

    @defer.inlineCallbacks
    def test_purgeMissing(self):
        """Purging a node that does not exist is item-not-found."""
        yield self.assertExchange(self.alice, pubsub(f"<purge node='{TUNE}'/>", "x", owner=True), error("x", "item-not-found", "cancel"))

    @defer.inlineCallbacks
    def test_ownerRequestsFromOthers(self):
        """pubsub#owner requests to another account's bare JID are forbidden."""
        yield self.addUser(BOB)
        bob = yield self.login(f"{BOB}/b")
        yield self.assertExchange(bob, pubsub(f"<delete node='{TUNE}'/>", "d", to=ALICE, owner=True), error("d", "forbidden", "auth", text="only the account owns its nodes", to=f"{BOB}/b"))


class ConfigureTests(PepTestMixin, unittest.TestCase):
    """Node configuration (§8.2) and the default configuration (§8.3)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE)
        yield self.seed(ALICE, [RosterItem(BOB, None, "both", groups=("Friends",)), RosterItem(CAROL, None, "from", groups=("Work", "Friends"))])
        self.alice = yield self.login(f"{ALICE}/a")
        yield self.send(self.alice, publish(TUNE))
        self.alice.link.pop()

    def configure(self, values: dict[str, Any], type_: str = "submit") -> str:
        return pubsub(f"<configure node='{TUNE}'>{form(values, type_=type_)}</configure>", "c", owner=True)

    @defer.inlineCallbacks
    def test_getForm(self):
        """The configuration form lists every option with its current value; the roster groups are the options of roster_groups_allowed."""
        yield self.send(self.alice, pubsub(f"<configure node='{TUNE}'/>", "c", "get", owner=True))
        reply = self.alice.link.popOne()
        x = reply.pubsub.configure.x
        self.assertEqual((x["type"], reply.pubsub.configure["node"]), ("form", TUNE))
        fields = {f["var"]: f for f in x.elements(NS_DATA, "field")}
        self.assertEqual(
            sorted(fields),
            sorted(["FORM_TYPE", "pubsub#title", "pubsub#type", "pubsub#access_model", "pubsub#roster_groups_allowed", "pubsub#publish_model",
                    "pubsub#persist_items", "pubsub#max_items", "pubsub#send_last_published_item", "pubsub#deliver_notifications",
                    "pubsub#deliver_payloads", "pubsub#notify_retract", "pubsub#notify_delete", "pubsub#notification_type"]),
        )

        def values(var: str) -> list[str]:
            return [str(v) for v in fields[var].elements(NS_DATA, "value")]

        def options(var: str) -> list[str]:
            return [str(o.value) for o in fields[var].elements(NS_DATA, "option")]

        self.assertEqual(values("FORM_TYPE"), ["http://jabber.org/protocol/pubsub#node_config"])
        self.assertEqual((values("pubsub#access_model"), options("pubsub#access_model")), (["presence"], ["open", "presence", "roster", "whitelist"]))
        self.assertEqual((values("pubsub#max_items"), values("pubsub#persist_items")), (["1"], ["1"]))
        self.assertEqual(values("pubsub#send_last_published_item"), ["on_sub_and_presence"])
        self.assertEqual(options("pubsub#roster_groups_allowed"), ["Friends", "Work"])
        self.assertEqual(fields["pubsub#persist_items"]["type"], "boolean")

    @defer.inlineCallbacks
    def test_setAndGet(self):
        """A submitted form changes the options it names and keeps the others; the change is stored."""
        yield self.assertExchange(self.alice, self.configure({"pubsub#access_model": "roster", "pubsub#roster_groups_allowed": ["Friends"], "pubsub#max_items": "max", "pubsub#title": "My tunes"}), result("c"))
        nodes = yield self.storedNodes(ALICE)
        config = nodes[TUNE].config
        self.assertEqual((config["access_model"], config["roster_groups_allowed"], config["max_items"], config["title"], config["persist_items"]), ("roster", ["Friends"], -1, "My tunes", True))
        yield self.send(self.alice, pubsub(f"<configure node='{TUNE}'/>", "c", "get", owner=True))
        x = self.alice.link.popOne().pubsub.configure.x
        shown = {f["var"]: [str(v) for v in f.elements(NS_DATA, "value")] for f in x.elements(NS_DATA, "field")}
        self.assertEqual((shown["pubsub#max_items"], shown["pubsub#title"]), (["max"], ["My tunes"]))

    @defer.inlineCallbacks
    def test_cancel(self):
        """A cancelled form changes nothing (§8.2.5)."""
        yield self.assertExchange(self.alice, self.configure({"pubsub#access_model": "open"}, type_="cancel"), result("c"))
        self.assertEqual((yield self.storedNodes(ALICE))[TUNE].config["access_model"], "presence")

    @defer.inlineCallbacks
    def test_badValues(self):
        """Values a field does not take are not-acceptable, naming the field, and change nothing."""
        cases = [
            ({"pubsub#access_model": "authorize"}, "pubsub#access_model must be one of open, presence, roster, whitelist"),
            ({"pubsub#persist_items": "maybe"}, "pubsub#persist_items must be a boolean (true, false, 1 or 0)"),
            ({"pubsub#max_items": "0"}, 'pubsub#max_items must be a positive number or "max"'),
            ({"pubsub#send_last_published_item": "always"}, "pubsub#send_last_published_item must be one of never, on_sub, on_sub_and_presence"),
            ({"pubsub#publish_model": "open"}, "pubsub#publish_model must be one of publishers"),
            ({"pubsub#access_model": "roster"}, "the roster access model needs pubsub#roster_groups_allowed"),
            ({"pubsub#frobnicate": "1"}, "pubsub#frobnicate is not a supported option"),
        ]
        for values, text in cases:
            yield self.assertExchange(self.alice, self.configure(values), error("c", "not-acceptable", "modify", text=text))
        self.assertEqual((yield self.storedNodes(ALICE))[TUNE].config, NodeConfig().toDict())

    @defer.inlineCallbacks
    def test_wrongFormType(self):
        """A form of another FORM_TYPE is not-acceptable."""
        request = pubsub(f"<configure node='{TUNE}'>{form({'pubsub#title': 'x'}, formType='urn:other')}</configure>", "c", owner=True)
        yield self.assertExchange(self.alice, request, error("c", "not-acceptable", "modify", text="FORM_TYPE must be http://jabber.org/protocol/pubsub#node_config"))

    @defer.inlineCallbacks
    def test_noForm(self):
        """A configure set without a form is bad-request."""
        yield self.assertExchange(self.alice, pubsub(f"<configure node='{TUNE}'/>", "c", owner=True), error("c", "bad-request", "modify", text="submit a pubsub#node_config form"))

    @defer.inlineCallbacks
    def test_noSuchNode(self):
        """Configuring a node that does not exist is item-not-found; without a node, bad-request with <nodeid-required/>."""
        yield self.assertExchange(self.alice, pubsub("<configure node='urn:nope'/>", "c", "get", owner=True), error("c", "item-not-found", "cancel"))
        yield self.assertExchange(self.alice, pubsub("<configure/>", "c", "get", owner=True), error("c", "bad-request", "modify", "nodeid-required"))

    @defer.inlineCallbacks
    def test_loweringMaxItemsTrims(self):
        """Lowering pubsub#max_items drops the oldest items beyond it at once."""
        yield self.send(self.alice, self.configure({"pubsub#max_items": "5"}))
        for i in range(3):
            yield self.send(self.alice, publish(TUNE, item=str(i)))
        yield self.send(self.alice, self.configure({"pubsub#max_items": "2"}))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["1", "2"])

    @defer.inlineCallbacks
    def test_persistItemsOff(self):
        """A node that stops persisting items drops the stored ones but still answers with its last item, from memory."""
        yield self.send(self.alice, self.configure({"pubsub#persist_items": "0"}))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), [])
        yield self.send(self.alice, publish(TUNE, OTHER_SONG, item="new"))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), [])
        self.alice.link.pop()
        yield self.assertExchange(self.alice, pubsub(f"<items node='{TUNE}'/>", "g", "get"), items("g", TUNE, ("new", OTHER_SONG)))
        yield self.send(self.alice, self.configure({"pubsub#persist_items": "1"}))
        self.assertEqual((yield self.storedItems(ALICE, TUNE)), ["new"])

    @defer.inlineCallbacks
    def test_default(self):
        """The default configuration form is what a new node gets."""
        yield self.send(self.alice, pubsub("<default/>", "d", "get", owner=True))
        x = self.alice.link.popOne().pubsub.default.x
        shown = {f["var"]: [str(v) for v in f.elements(NS_DATA, "value")] for f in x.elements(NS_DATA, "field")}
        self.assertEqual(
            (shown["pubsub#access_model"], shown["pubsub#max_items"], shown["pubsub#send_last_published_item"], shown["pubsub#notification_type"]),
            (["presence"], ["1"], ["on_sub_and_presence"], ["headline"]),
        )


class AffiliationTests(PepTestMixin, unittest.TestCase):
    """Owner affiliation management (§8.9): the whitelist's members and outcasts."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB)
        self.alice = yield self.login(f"{ALICE}/a")
        yield self.send(self.alice, publish(TUNE, options={"pubsub#access_model": "whitelist"}))
        self.alice.link.pop()

    def affiliations(self, body: str = "", type_: str = "set") -> str:
        return pubsub(f"<affiliations node='{TUNE}'>{body}</affiliations>", "a", type_, owner=True)

    @defer.inlineCallbacks
    def test_listHasTheOwner(self):
        """A node's affiliations always list the account as owner."""
        yield self.assertExchange(self.alice, self.affiliations(type_="get"), result("a", f"<pubsub xmlns='{NS_OWNER}'><affiliations node='{TUNE}'><affiliation jid='{ALICE}' affiliation='owner'/></affiliations></pubsub>"))

    @defer.inlineCallbacks
    def test_setMemberAndOutcast(self):
        """Members and outcasts are set by bare JID, listed, stored, and 'none' removes them."""
        body = f"<affiliation jid='{BOB}/phone' affiliation='member'/><affiliation jid='eve@remote.example' affiliation='outcast'/>"
        yield self.assertExchange(self.alice, self.affiliations(body), result("a"))
        yield self.assertExchange(
            self.alice,
            self.affiliations(type_="get"),
            result("a", f"<pubsub xmlns='{NS_OWNER}'><affiliations node='{TUNE}'><affiliation jid='{ALICE}' affiliation='owner'/><affiliation jid='{BOB}' affiliation='member'/><affiliation jid='eve@remote.example' affiliation='outcast'/></affiliations></pubsub>"),
        )
        self.assertEqual((yield self.storedNodes(ALICE))[TUNE].affiliations, {BOB: "member", "eve@remote.example": "outcast"})
        yield self.assertExchange(self.alice, self.affiliations(f"<affiliation jid='{BOB}' affiliation='none'/>"), result("a"))
        self.assertEqual((yield self.storedNodes(ALICE))[TUNE].affiliations, {"eve@remote.example": "outcast"})

    @defer.inlineCallbacks
    def test_ownerCannotBeChanged(self):
        """Changing the account's own affiliation is refused (returned unchanged in a not-acceptable error) while the other changes apply (§8.9.2.4)."""
        body = f"<affiliation jid='{ALICE}' affiliation='none'/><affiliation jid='{BOB}' affiliation='member'/>"
        yield self.assertExchange(
            self.alice,
            self.affiliations(body),
            f"<iq type='error' id='a' from='{ALICE}' to='{ALICE}/a'><pubsub xmlns='{NS_OWNER}'><affiliations node='{TUNE}'><affiliation jid='{ALICE}' affiliation='owner'/></affiliations></pubsub>"
            f"<error type='modify'><not-acceptable xmlns='{STANZAS}'/><text xmlns='{STANZAS}' xml:lang='en'>the account is the one owner of its nodes</text></error></iq>",
        )
        self.assertEqual((yield self.storedNodes(ALICE))[TUNE].affiliations, {BOB: "member"})

    @defer.inlineCallbacks
    def test_nobodyElseOwnsOrPublishes(self):
        """'owner' for someone else is refused; 'publisher' is feature-not-implemented (PEP has one publisher)."""
        yield self.assertExchange(
            self.alice,
            self.affiliations(f"<affiliation jid='{BOB}' affiliation='owner'/>"),
            f"<iq type='error' id='a' from='{ALICE}' to='{ALICE}/a'><pubsub xmlns='{NS_OWNER}'><affiliations node='{TUNE}'><affiliation jid='{BOB}' affiliation='none'/></affiliations></pubsub>"
            f"<error type='modify'><not-acceptable xmlns='{STANZAS}'/><text xmlns='{STANZAS}' xml:lang='en'>the account is the one owner of its nodes</text></error></iq>",
        )
        yield self.assertExchange(
            self.alice,
            self.affiliations(f"<affiliation jid='{BOB}' affiliation='publisher'/>"),
            error("a", "feature-not-implemented", "cancel", "unsupported", "only the account publishes to its nodes", feature="publisher-affiliation"),
        )

    @defer.inlineCallbacks
    def test_badRequests(self):
        """A JID listed twice is bad-request, a malformed one jid-malformed, an unknown affiliation bad-request."""
        twice = f"<affiliation jid='{BOB}' affiliation='member'/><affiliation jid='{BOB}/x' affiliation='none'/>"
        yield self.assertExchange(self.alice, self.affiliations(twice), error("a", "bad-request", "modify", text=f"{BOB} is listed twice"))
        yield self.assertExchange(self.alice, self.affiliations("<affiliation jid='@@' affiliation='member'/>"), error("a", "jid-malformed", "modify", text="an affiliation names a malformed JID"))
        yield self.assertExchange(self.alice, self.affiliations(f"<affiliation jid='{BOB}' affiliation='king'/>"), error("a", "bad-request", "modify", text="'king' is not an affiliation"))


class PersistenceTests(PepTestMixin, unittest.TestCase):
    """Nodes, configuration, affiliations and items survive a restart."""

    @defer.inlineCallbacks
    def test_restart(self):
        """After a restart the node, its configuration, affiliations and items are there, and the newest is known without a store read per request."""
        yield self.startRoster(ALICE, BOB)
        alice = yield self.login(f"{ALICE}/a")
        yield self.send(alice, publish(TUNE, item="1", options={"pubsub#max_items": "3", "pubsub#access_model": "whitelist"}))
        yield self.send(alice, publish(TUNE, OTHER_SONG, item="2"))
        yield self.send(alice, pubsub(f"<affiliations node='{TUNE}'><affiliation jid='{BOB}' affiliation='member'/></affiliations>", "a", owner=True))
        yield self.settle()
        yield self.restart()
        bob = yield self.login(f"{BOB}/b")
        yield self.assertExchange(bob, pubsub(f"<items node='{TUNE}'/>", "g", "get", to=ALICE), items("g", TUNE, ("1", SONG), ("2", OTHER_SONG), to=f"{BOB}/b"))
        service = self.pep.services.cached(ALICE)
        self.assertEqual((service.nodes[TUNE].last.id, service.nodes[TUNE].config.max_items, service.nodes[TUNE].affiliations), ("2", 3, {BOB: "member"}))
