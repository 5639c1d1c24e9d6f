"""
Service discovery (XEP-0030, XEP-0128, XEP-0157) through real sessions: the
server's info generated from the loaded modules, its items from the
router's component domains, and accounts answered for only to themselves
and to contacts allowed to see their presence (XEP-0030 §8).

Also home of L{ServiceTestMixin}, the helpers the other small-service test
modules share (exact stanza assertions, waiting for store-backed replies,
roster seeding, restarts).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.module import availableModules
from jabberd.modules.disco import ACCOUNT, HOST, DiscoRequest, discoInfo, discoItems
from jabberd.service import XMPPServer
from jabberd.store.roster import RosterItem, set_item_txn
from tests.fakes import ModuleTestMixin, TestSession, element

NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def canonical(e: Any) -> Any:
    """A comparable form of an element: namespace, name, attributes, children (blank text dropped)."""
    if isinstance(e, str):
        return e
    children = [canonical(c) for c in e.children if not (isinstance(c, str) and not c.strip())]
    return (e.uri, e.name, dict(e.attributes), children)


def error(condition: str, type_: str, text: str | None = None) -> str:
    """The XML of an RFC 6120 stanza error, for expected stanzas."""
    extra = f"<text xmlns='{STANZAS}' xml:lang='en'>{text}</text>" if text else ""
    return f"<error type='{type_}'><{condition} xmlns='{STANZAS}'/>{extra}</error>"


class ServiceTestMixin(ModuleTestMixin):
    """Server, sessions and assertions for the small-service tests."""

    @defer.inlineCallbacks
    def startWith(self, modules: list[str], users: tuple[str, ...] = ("alice@localhost", "bob@localhost"), **overrides: Any):
        """Start the server with C{modules} and create C{users}."""
        yield self.startModules(modules=modules, **overrides)
        for user in users:
            yield self.addUser(user)

    @defer.inlineCallbacks
    def restart(self):
        """Stop the server and start a new one on the same configuration, data folder and reactor."""
        config, clock = self.server.config, self.server.reactor
        yield self.server.stopService()
        self.server = XMPPServer(config, reactor=clock)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready

    def seedSubscription(self, owner: str, contact: str, subscription: str) -> defer.Deferred:
        """Give C{owner}'s roster an item for C{contact} with C{subscription}, in the store."""
        user, _, host = owner.partition("@")
        item = RosterItem(jid=contact, subscription=subscription)
        return self.server.store.runInteraction("seed", set_item_txn, host, user, item, 1)

    @defer.inlineCallbacks
    def received(self, session: TestSession, count: int = 1, timeout: float = 5.0):
        """Wait until C{session} has received C{count} elements (replies may wait for the store); pop them."""
        waited = 0.0
        while len(session.link.elements) < count and waited < timeout:
            yield task.deferLater(reactor, 0.005, lambda: None)
            waited += 0.005
        got = session.link.pop()
        if len(got) != count:
            self.fail(f"expected {count} stanzas, got {[e.toXml() for e in got]}")
        return got

    def assertStanza(self, got: domish.Element, expected: str) -> None:
        """C{got} is exactly the stanza written in C{expected} (attribute order aside)."""
        self.assertEqual(canonical(got), canonical(element(expected)), f"\n got: {got.toXml()}\nwant: {expected}")

    @defer.inlineCallbacks
    def ask(self, session: TestSession, xml: str):
        """Send C{xml} from C{session} and return the one stanza it gets back."""
        session.receive(xml)
        got = yield self.received(session)
        return got[0]

    @defer.inlineCallbacks
    def assertReply(self, session: TestSession, request: str, reply: str):
        """C{session} sends C{request} and gets exactly C{reply}."""
        got = yield self.ask(session, request)
        self.assertStanza(got, reply)


def featuresOf(names: list[str]) -> list[str]:
    """The union of the server features the module classes C{names} declare, sorted."""
    found = availableModules()
    return sorted({f for n in names for f in found[n].features})


def accountFeaturesOf(names: list[str]) -> list[str]:
    """The union of the account features the module classes C{names} declare, sorted."""
    found = availableModules()
    return sorted({f for n in names for f in found[n].accountFeatures})


def infoXML(features: list[str], identity: str, frm: str, to: str = "alice@localhost/a", id_: str = "i", extra: str = "") -> str:
    """The expected disco#info result."""
    feats = "".join(f"<feature var='{f}'/>" for f in features)
    return f"<iq type='result' id='{id_}' from='{frm}' to='{to}'><query xmlns='{NS_INFO}'>{identity}{feats}{extra}</query></iq>"


SERVER_IDENTITY = "<identity category='server' type='im' name='jabberd'/>"
ACCOUNT_IDENTITY = "<identity category='account' type='registered'/>"


class HostDiscoTests(ServiceTestMixin, unittest.TestCase):
    """disco#info and disco#items of a hosted domain."""

    MODULES = ["disco", "ping", "vcard", "version"]

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(self.MODULES)
        self.alice = self.bind("alice@localhost/a")

    @defer.inlineCallbacks
    def test_infoListsExactlyTheLoadedFeatures(self):
        """The domain's disco#info is identity server/im plus exactly the features of the loaded modules."""
        expected = featuresOf(self.MODULES)
        self.assertEqual(expected, sorted([NS_INFO, NS_ITEMS, "urn:xmpp:ping", "vcard-temp", "jabber:iq:version"]))
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='i' to='localhost'><query xmlns='{NS_INFO}'/></iq>",
            infoXML(expected, SERVER_IDENTITY, "localhost"),
        )

    @defer.inlineCallbacks
    def test_noContactAddressesNoForm(self):
        """Without configured contact addresses the answer carries no XEP-0157 form."""
        got = yield self.ask(self.alice, f"<iq type='get' id='i' to='localhost'><query xmlns='{NS_INFO}'/></iq>")
        self.assertEqual([c.name for c in got.query.elements()].count("x"), 0)

    @defer.inlineCallbacks
    def test_unknownNode(self):
        """disco#info for a node nobody knows is item-not-found."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='n' to='localhost'><query xmlns='{NS_INFO}' node='urn:example#nothing'/></iq>",
            f"<iq type='error' id='n' from='localhost' to='alice@localhost/a'>{error('item-not-found', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_nodeKnownByAModule(self):
        """A module that knows a node answers disco#info for it through the disco-info event."""

        def handler(request: DiscoRequest) -> None:
            if request.node == "urn:example#commands":
                request.found = True
                request.addIdentity("automation", "command-list")
                request.addFeature("urn:example:feature")

        self.addCleanup(self.server.bus.on(discoInfo(HOST), handler))
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='n' to='localhost'><query xmlns='{NS_INFO}' node='urn:example#commands'/></iq>",
            f"<iq type='result' id='n' from='localhost' to='alice@localhost/a'><query xmlns='{NS_INFO}' node='urn:example#commands'>"
            "<identity category='automation' type='command-list'/><feature var='urn:example:feature'/></query></iq>",
        )

    @defer.inlineCallbacks
    def test_moduleAddsToInfo(self):
        """A module can add a form to the domain's disco#info (XEP-0128), also after waiting for the store."""

        def handler(request: DiscoRequest) -> None:
            d = self.server.store.runInteraction("noop", lambda conn: None)
            d.addCallback(lambda _: request.query.addChild(element("<x xmlns='jabber:x:data' type='result'/>")))
            request.wait(d)

        self.addCleanup(self.server.bus.on(discoInfo(HOST), handler))
        got = yield self.ask(self.alice, f"<iq type='get' id='i' to='localhost'><query xmlns='{NS_INFO}'/></iq>")
        self.assertEqual(canonical(list(got.query.elements())[-1]), ("jabber:x:data", "x", {"type": "result"}, []))

    @defer.inlineCallbacks
    def test_setIsNotHandled(self):
        """disco#info is get-only: a set gets service-unavailable."""
        yield self.assertReply(
            self.alice,
            f"<iq type='set' id='s' to='localhost'><query xmlns='{NS_INFO}'/></iq>",
            f"<iq type='error' id='s' from='localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_itemsListComponentsUnderTheDomain(self):
        """disco#items of the domain lists the component domains registered under it, sorted, and nothing else."""
        for domain in ("pubsub.localhost", "muc.localhost", "elsewhere.example", "xlocalhost"):
            self.server.router.registerDomain(domain, lambda s: None)
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='it' to='localhost'><query xmlns='{NS_ITEMS}'/></iq>",
            f"<iq type='result' id='it' from='localhost' to='alice@localhost/a'><query xmlns='{NS_ITEMS}'>"
            "<item jid='muc.localhost'/><item jid='pubsub.localhost'/></query></iq>",
        )

    @defer.inlineCallbacks
    def test_itemsEmpty(self):
        """Without components the domain's disco#items is an empty result, not an error."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='it' to='localhost'><query xmlns='{NS_ITEMS}'/></iq>",
            f"<iq type='result' id='it' from='localhost' to='alice@localhost/a'><query xmlns='{NS_ITEMS}'/></iq>",
        )

    @defer.inlineCallbacks
    def test_itemsFromAModule(self):
        """A module adds items to the domain's disco#items through the disco-items event."""
        self.addCleanup(self.server.bus.on(discoItems(HOST), lambda r: r.addItem("localhost", node="announce", name="News")))
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='it' to='localhost'><query xmlns='{NS_ITEMS}'/></iq>",
            f"<iq type='result' id='it' from='localhost' to='alice@localhost/a'><query xmlns='{NS_ITEMS}'>"
            "<item jid='localhost' node='announce' name='News'/></query></iq>",
        )

    @defer.inlineCallbacks
    def test_itemsUnknownNode(self):
        """disco#items for a node nobody knows is item-not-found."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='n' to='localhost'><query xmlns='{NS_ITEMS}' node='nothing'/></iq>",
            f"<iq type='error' id='n' from='localhost' to='alice@localhost/a'>{error('item-not-found', 'cancel')}</iq>",
        )


class FeatureListTests(ServiceTestMixin, unittest.TestCase):
    """The feature list follows the loaded modules, whichever they are."""

    @defer.inlineCallbacks
    def test_discoAlone(self):
        """With disco alone the domain offers just disco#info and disco#items."""
        yield self.startWith(["disco"], users=())
        alice = self.bind("alice@localhost/a")
        yield self.assertReply(
            alice,
            f"<iq type='get' id='i' to='localhost'><query xmlns='{NS_INFO}'/></iq>",
            infoXML([NS_INFO, NS_ITEMS], SERVER_IDENTITY, "localhost"),
        )

    @defer.inlineCallbacks
    def test_everyModule(self):
        """With every module loaded the features are the union of all their declarations, each once."""
        yield self.startWith([], users=())
        names = sorted(availableModules())
        self.assertEqual(sorted(self.server.modules.modules), names)
        alice = self.bind("alice@localhost/a")
        got = yield self.ask(alice, f"<iq type='get' id='i' to='localhost'><query xmlns='{NS_INFO}'/></iq>")
        self.assertEqual([f["var"] for f in got.query.elements(NS_INFO, "feature")], featuresOf(names))
        for feature in ["jabber:iq:last", "jabber:iq:private", "jabber:iq:version", "urn:xmpp:ping", "urn:xmpp:time", "vcard-temp"]:
            self.assertIn(feature, featuresOf(names))


class ContactAddressTests(ServiceTestMixin, unittest.TestCase):
    """XEP-0157 contact addresses in the domain's disco#info (XEP-0128)."""

    @defer.inlineCallbacks
    def test_form(self):
        """Configured addresses appear as the serverinfo form, FORM_TYPE first, fields sorted, values in order."""
        addresses = {
            "support-addresses": ["https://example.org/help", "xmpp:help@localhost"],
            "abuse-addresses": ["mailto:abuse@example.org"],
        }
        yield self.startWith(["disco"], users=(), host={"localhost": {"contact_addresses": addresses}})
        alice = self.bind("alice@localhost/a")
        form = (
            "<x xmlns='jabber:x:data' type='result'>"
            "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>"
            "<field var='abuse-addresses' type='list-multi'><value>mailto:abuse@example.org</value></field>"
            "<field var='support-addresses' type='list-multi'><value>https://example.org/help</value><value>xmpp:help@localhost</value></field>"
            "</x>"
        )
        yield self.assertReply(
            alice,
            f"<iq type='get' id='i' to='localhost'><query xmlns='{NS_INFO}'/></iq>",
            infoXML([NS_INFO, NS_ITEMS], SERVER_IDENTITY, "localhost", extra=form),
        )

    @defer.inlineCallbacks
    def test_perHost(self):
        """Each domain publishes its own addresses; a domain without any publishes no form."""
        yield self.startWith(
            ["disco"],
            users=(),
            hosts=["localhost", "example.org"],
            host={"example.org": {"contact_addresses": {"admin-addresses": ["xmpp:admin@example.org"]}}},
        )
        alice = self.bind("alice@localhost/a")
        got = yield self.ask(alice, f"<iq type='get' id='e' to='example.org'><query xmlns='{NS_INFO}'/></iq>")
        form = got.query.x
        self.assertEqual([(f["var"], [str(v) for v in f.elements()]) for f in form.elements()], [("FORM_TYPE", ["http://jabber.org/network/serverinfo"]), ("admin-addresses", ["xmpp:admin@example.org"])])
        got = yield self.ask(alice, f"<iq type='get' id='l' to='localhost'><query xmlns='{NS_INFO}'/></iq>")
        self.assertIsNone(got.query.x)


class AccountDiscoTests(ServiceTestMixin, unittest.TestCase):
    """disco#info and disco#items of an account's bare JID (XEP-0030 §3.2, §4.2, §8)."""

    MODULES = ["disco", "ping", "private", "vcard", "version"]

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startWith(self.MODULES, users=("alice@localhost", "bob@localhost", "carol@localhost"))
        self.alice = self.bind("alice@localhost/a")
        self.bob = self.bind("bob@localhost/b")

    def infoFrom(self, frm: str, id_: str = "i") -> str:
        return infoXML(accountFeaturesOf(self.MODULES), ACCOUNT_IDENTITY, frm, id_=id_)

    @defer.inlineCallbacks
    def test_ownInfo(self):
        """An account's disco#info to itself (no 'to') is identity account/registered plus the modules' account features."""
        self.assertEqual(
            accountFeaturesOf(self.MODULES),
            sorted([NS_INFO, NS_ITEMS, "jabber:iq:private", "urn:xmpp:ping", "vcard-temp"]),
        )
        yield self.assertReply(self.alice, f"<iq type='get' id='i'><query xmlns='{NS_INFO}'/></iq>", self.infoFrom("alice@localhost"))

    @defer.inlineCallbacks
    def test_ownInfoToBareJID(self):
        """The same answer when the account addresses its own bare JID."""
        yield self.assertReply(
            self.alice, f"<iq type='get' id='i' to='alice@localhost'><query xmlns='{NS_INFO}'/></iq>", self.infoFrom("alice@localhost")
        )

    @defer.inlineCallbacks
    def test_contactWithPresenceSubscription(self):
        """A contact the account lets see its presence ('from' or 'both') gets its disco#info."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        yield self.assertReply(
            self.alice, f"<iq type='get' id='i' to='bob@localhost'><query xmlns='{NS_INFO}'/></iq>", self.infoFrom("bob@localhost")
        )
        yield self.seedSubscription("bob@localhost", "alice@localhost", "both")
        yield self.assertReply(
            self.alice, f"<iq type='get' id='j' to='bob@localhost'><query xmlns='{NS_INFO}'/></iq>", self.infoFrom("bob@localhost", "j")
        )

    @defer.inlineCallbacks
    def test_strangerGetsServiceUnavailable(self):
        """Without a presence subscription ('none' or only 'to') the answer is service-unavailable."""
        unavailable = f"<iq type='error' id='i' from='bob@localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>"
        request = f"<iq type='get' id='i' to='bob@localhost'><query xmlns='{NS_INFO}'/></iq>"
        yield self.assertReply(self.alice, request, unavailable)
        yield self.seedSubscription("bob@localhost", "alice@localhost", "to")
        yield self.assertReply(self.alice, request, unavailable)

    @defer.inlineCallbacks
    def test_nonexistentAccountLooksLikeStranger(self):
        """A bare JID with no account gets the same service-unavailable as an unauthorized request."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='i' to='nobody@localhost'><query xmlns='{NS_INFO}'/></iq>",
            f"<iq type='error' id='i' from='nobody@localhost' to='alice@localhost/a'>{error('service-unavailable', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_unknownAccountNode(self):
        """disco#info for an unknown node of one's own account is item-not-found."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='n'><query xmlns='{NS_INFO}' node='urn:example#x'/></iq>",
            f"<iq type='error' id='n' from='alice@localhost' to='alice@localhost/a'>{error('item-not-found', 'cancel')}</iq>",
        )

    @defer.inlineCallbacks
    def test_accountInfoFromAModule(self):
        """A module (PEP) adds its identity to an account's disco#info through the disco-info event."""
        self.addCleanup(self.server.bus.on(discoInfo(ACCOUNT), lambda r: r.addIdentity("pubsub", "pep")))
        got = yield self.ask(self.alice, f"<iq type='get' id='i'><query xmlns='{NS_INFO}'/></iq>")
        self.assertEqual(
            [dict(i.attributes) for i in got.query.elements(NS_INFO, "identity")],
            [{"category": "account", "type": "registered"}, {"category": "pubsub", "type": "pep"}],
        )

    @defer.inlineCallbacks
    def test_ownItemsEmpty(self):
        """An account's disco#items is empty while no module adds items."""
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='it'><query xmlns='{NS_ITEMS}'/></iq>",
            f"<iq type='result' id='it' from='alice@localhost' to='alice@localhost/a'><query xmlns='{NS_ITEMS}'/></iq>",
        )

    @defer.inlineCallbacks
    def test_itemsFromAModuleForContacts(self):
        """Items a module adds (PEP nodes) reach the account and its authorized contacts, with the requester known."""
        seen = []

        def handler(request: DiscoRequest) -> None:
            seen.append(request.fromJID.full())
            request.addItem(request.toJID.userhost(), node="urn:xmpp:avatar:metadata")

        self.addCleanup(self.server.bus.on(discoItems(ACCOUNT), handler))
        yield self.seedSubscription("bob@localhost", "alice@localhost", "both")
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='it' to='bob@localhost'><query xmlns='{NS_ITEMS}'/></iq>",
            f"<iq type='result' id='it' from='bob@localhost' to='alice@localhost/a'><query xmlns='{NS_ITEMS}'>"
            "<item jid='bob@localhost' node='urn:xmpp:avatar:metadata'/></query></iq>",
        )
        self.assertEqual(seen, ["alice@localhost/a"])

    @defer.inlineCallbacks
    def test_strangerGetsEmptyItems(self):
        """Without a presence subscription disco#items is an empty result and no module is asked (§8)."""
        seen = []
        self.addCleanup(self.server.bus.on(discoItems(ACCOUNT), seen.append))
        for to in ("bob@localhost", "nobody@localhost"):
            yield self.assertReply(
                self.alice,
                f"<iq type='get' id='it' to='{to}'><query xmlns='{NS_ITEMS}'/></iq>",
                f"<iq type='result' id='it' from='{to}' to='alice@localhost/a'><query xmlns='{NS_ITEMS}'/></iq>",
            )
        self.assertEqual(seen, [])

    @defer.inlineCallbacks
    def test_fullJIDIsRelayed(self):
        """disco#info to a full JID reaches that client unchanged, and its answer comes back."""
        self.alice.receive(f"<iq type='get' id='f' to='bob@localhost/b'><query xmlns='{NS_INFO}'/></iq>")
        (got,) = yield self.received(self.bob)
        self.assertStanza(got, f"<iq type='get' id='f' from='alice@localhost/a' to='bob@localhost/b'><query xmlns='{NS_INFO}'/></iq>")
        self.bob.receive(
            f"<iq type='result' id='f' to='alice@localhost/a'><query xmlns='{NS_INFO}'><identity category='client' type='pc'/></query></iq>"
        )
        (answer,) = yield self.received(self.alice)
        self.assertStanza(
            answer,
            f"<iq type='result' id='f' from='bob@localhost/b' to='alice@localhost/a'><query xmlns='{NS_INFO}'><identity category='client' type='pc'/></query></iq>",
        )
