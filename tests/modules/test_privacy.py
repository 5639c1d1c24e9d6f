"""
Privacy lists (XEP-0016): the jabber:iq:privacy protocol (§2.3-§2.8 and
the business rules of §2.2) and the enforcement on both edges (§2.9-§2.14)
for local, remote and component traffic, as exact stanzas.

Alice's roster: Bob (local, 'both', group Friends), Carol (remote, 'from',
group Enemies), Dave (remote, 'to'); Eve (remote) and Zed (local) are
strangers.  The remote domain is captured so what the server sends there
can be checked exactly; what comes from there is handed to the Router as
another server would.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd import bus as B
from jabberd.modules.privacyrules import PrivacyRules
from jabberd.privacy import PrivacyItem
from jabberd.store.privacy import apply_privacy_changes_txn
from jabberd.store.roster import RosterItem
from tests.fakes import element
from tests.modules.test_roster import RosterTestMixin

ALICE, BOB, ZED = "alice@localhost", "bob@localhost", "zed@localhost"
CAROL, DAVE, EVE = "carol@remote.example", "dave@remote.example", "eve@remote.example"
COMPONENT = "muc.localhost"

NS = "jabber:iq:privacy"
SU = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
NA = "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
BLOCKED = "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><blocked xmlns='urn:xmpp:blocking:errors'/></error>"


def error(condition: str, type_: str = "cancel") -> str:
    """An <error/> with a condition, matching any text the server adds."""
    return f"<error type='{type_}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"


class PrivacyTestMixin(RosterTestMixin):
    """A server with IM, privacy lists and blocking; Alice's roster seeded."""

    modules = ("roster", "presence", "messages", "offline", "privacy", "blocking", "disco", "version")

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB, ZED)
        yield self.seed(ALICE, [
            RosterItem(BOB, "Bob", "both", groups=("Friends",)),
            RosterItem(CAROL, None, "from", groups=("Enemies",)),
            RosterItem(DAVE, None, "to"),
        ])
        yield self.seed(BOB, [RosterItem(ALICE, "Alice", "both")])
        self.component: list = []
        self.server.router.registerDomain(COMPONENT, self.component.append)

    @property
    def rules(self) -> PrivacyRules:
        return self.server.modules.modules["privacy"].rules

    @defer.inlineCallbacks
    def settle(self):
        """Wait until rosters, privacy lists and offline storage are idle."""
        for _ in range(3):
            yield self.idle()
            yield self.rules.whenIdle()
            offline = self.server.modules.modules.get("offline")
            if offline is not None:
                yield offline.idle()

    def route(self, xml: str) -> None:
        """Hand the Router a stanza as another server or a component would."""
        self.server.router.route(element(xml))

    @defer.inlineCallbacks
    def request(self, session, xml: str):
        """Send an iq from C{session}, wait, and return everything the session got."""
        session.receive(xml)
        yield self.settle()
        return session.link.pop()

    @defer.inlineCallbacks
    def setList(self, session, name: str, items: str, default: bool = False, active: bool = False):
        """Create a list (and make it default or active), dropping the replies and pushes."""
        yield self.request(session, f"<iq type='set' id='set-{name}'><query xmlns='{NS}'><list name='{name}'>{items}</list></query></iq>")
        if default:
            got = yield self.request(session, f"<iq type='set' id='def-{name}'><query xmlns='{NS}'><default name='{name}'/></query></iq>")
            assert got[0]["type"] == "result", got[0].toXml()
        if active:
            got = yield self.request(session, f"<iq type='set' id='act-{name}'><query xmlns='{NS}'><active name='{name}'/></query></iq>")
            assert got[0]["type"] == "result", got[0].toXml()
        for other in self.server.sessions.resources(session.bareJID).values():
            other.link.pop()
        self.captured[:] = []

    def assertComponent(self, *expected: str) -> None:
        """Exactly C{expected} went to the component since the last check."""
        got, self.component[:] = list(self.component), []
        self.assertStanzas(got, *expected)


# -- the protocol ------------------------------------------------------------------------


class ManagingListsTests(PrivacyTestMixin, unittest.TestCase):
    """§2.3 retrieving, §2.6-§2.8 editing, adding and removing lists, and their pushes."""

    @defer.inlineCallbacks
    def test_noLists(self):
        """An account without lists gets an empty query."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'/></iq>")

    @defer.inlineCallbacks
    def test_createGetAndPushToAllResources(self):
        """A new list is answered with a result, pushed by name to every connected resource and read back item by item in order."""
        alice = yield self.online(f"{ALICE}/a")
        other = yield self.online(f"{ALICE}/b", getRoster=False, available=False)
        got = yield self.request(alice, f"<iq type='set' id='s1'><query xmlns='{NS}'><list name='public'>"
                                 "<item action='allow' order='68'/>"
                                 "<item type='jid' value='paris@example.org' action='deny' order='5'><message/><presence-in/></item>"
                                 "<item type='jid' value='Tybalt@Example.COM' action='deny' order='3'/>"
                                 "</list></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='s1' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<iq type='set' id='*' to='{ALICE}/a'><query xmlns='{NS}'><list name='public'/></query></iq>")
        self.assertReceived(other, f"<iq type='set' id='*' to='{ALICE}/b'><query xmlns='{NS}'><list name='public'/></query></iq>")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'><list name='public'/></query></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'><list name='public'>"
                           "<item type='jid' value='tybalt@example.com' action='deny' order='3'/>"
                           "<item type='jid' value='paris@example.org' action='deny' order='5'><message/><presence-in/></item>"
                           "<item action='allow' order='68'/>"
                           "</list></query></iq>")

    @defer.inlineCallbacks
    def test_namesWithActiveAndDefault(self):
        """The names reply starts with this session's active list and the default list, then every list."""
        alice = yield self.online(f"{ALICE}/a")
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "public", "<item type='jid' value='tybalt@example.com' action='deny' order='1'/>", default=True)
        yield self.setList(alice, "private", "<item type='subscription' value='both' action='allow' order='10'/><item action='deny' order='15'/>", active=True)
        yield self.setList(alice, "special", "<item action='deny' order='666'/>")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'>"
                           "<active name='private'/><default name='public'/>"
                           "<list name='private'/><list name='public'/><list name='special'/></query></iq>")
        got = yield self.request(other, f"<iq type='get' id='g2'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g2' from='{ALICE}' to='{ALICE}/b'><query xmlns='{NS}'>"
                           "<default name='public'/><list name='private'/><list name='public'/><list name='special'/></query></iq>")

    @defer.inlineCallbacks
    def test_getUnknownList(self):
        """Asking for a list that does not exist gets item-not-found."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='get' id='g5'><query xmlns='{NS}'><list name='The Empty Set'/></query></iq>")
        self.assertStanzas(got, f"<iq type='error' id='g5' from='{ALICE}' to='{ALICE}/a'>{error('item-not-found')}"
                           "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>there is no list by that name</text></error></iq>")

    @defer.inlineCallbacks
    def test_getMoreThanOneList(self):
        """Asking for more than one list at once gets bad-request."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", "<item action='deny' order='1'/>")
        got = yield self.request(alice, f"<iq type='get' id='g6'><query xmlns='{NS}'><list name='public'/><list name='private'/></query></iq>")
        self.assertEqual((got[0]["type"], got[0].error.firstChildElement().name), ("error", "bad-request"))

    @defer.inlineCallbacks
    def test_editReplacesWholeList(self):
        """Editing sends the whole list, not a delta: items left out are gone; the change is pushed."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", "<item type='jid' value='tybalt@example.com' action='deny' order='1'/><item action='allow' order='2'/>")
        got = yield self.request(alice, f"<iq type='set' id='e1'><query xmlns='{NS}'><list name='public'>"
                                 "<item type='jid' value='paris@example.org' action='deny' order='5'/></list></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='e1' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<iq type='set' id='*' to='{ALICE}/a'><query xmlns='{NS}'><list name='public'/></query></iq>")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'><list name='public'/></query></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'><list name='public'>"
                           "<item type='jid' value='paris@example.org' action='deny' order='5'/></list></query></iq>")

    @defer.inlineCallbacks
    def test_setSameListAgainIsNotPushed(self):
        """Setting a list to exactly what it is gets a result and no push."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", "<item action='deny' order='1'/>")
        got = yield self.request(alice, f"<iq type='set' id='e1'><query xmlns='{NS}'><list name='public'><item action='deny' order='1'/></list></query></iq>")
        self.assertStanzas(got, f"<iq type='result' id='e1' from='{ALICE}' to='{ALICE}/a'/>")

    @defer.inlineCallbacks
    def test_removeList(self):
        """An empty <list/> removes the list: result, push, and the list is gone."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "private", "<item action='deny' order='1'/>")
        got = yield self.request(alice, f"<iq type='set' id='r1'><query xmlns='{NS}'><list name='private'/></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='r1' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<iq type='set' id='*' to='{ALICE}/a'><query xmlns='{NS}'><list name='private'/></query></iq>")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'/></iq>")

    @defer.inlineCallbacks
    def test_removeUnknownList(self):
        """Removing a list that does not exist gets item-not-found."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='set' id='r1'><query xmlns='{NS}'><list name='nope'/></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "item-not-found")

    @defer.inlineCallbacks
    def test_removeOwnActiveList(self):
        """A resource may remove the list only it has active; it then has no active list."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "private", "<item action='deny' order='1'/>", active=True)
        got = yield self.request(alice, f"<iq type='set' id='r1'><query xmlns='{NS}'><list name='private'/></query></iq>")
        self.assertEqual(got[0]["type"], "result")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'/></iq>")

    @defer.inlineCallbacks
    def test_removeDefaultWhenAlone(self):
        """The only connected resource may remove the default list; the account then has no default."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", "<item action='deny' order='1'/>", default=True)
        got = yield self.request(alice, f"<iq type='set' id='r1'><query xmlns='{NS}'><list name='public'/></query></iq>")
        self.assertEqual(got[0]["type"], "result")
        self.assertFalse(self.rules.hasDefault(ALICE))

    @defer.inlineCallbacks
    def test_forbiddenForOthers(self):
        """Another account's privacy lists cannot be read or changed."""
        bob = yield self.online(f"{BOB}/b")
        got = yield self.request(bob, f"<iq type='get' id='x' to='{ALICE}'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='error' id='x' from='{ALICE}' to='{BOB}/b'>{error('forbidden', 'auth')}"
                           "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>you can only read and change your own privacy lists</text></error></iq>")

    @defer.inlineCallbacks
    def test_discoFeatures(self):
        """The server advertises jabber:iq:privacy and urn:xmpp:blocking."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        features = {f["var"] for f in got[0].query.elements("http://jabber.org/protocol/disco#info", "feature")}
        self.assertIn("jabber:iq:privacy", features)
        self.assertIn("urn:xmpp:blocking", features)

    @defer.inlineCallbacks
    def test_listsSurviveRestart(self):
        """Lists and the default are stored: after a restart they are there and the default applies."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", default=True)
        yield self.settle()
        yield self.restart()
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1'><body>hi</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>hi</body>{SU}</message>")
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='get' id='g1'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(got, f"<iq type='result' id='g1' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'><default name='public'/><list name='public'/></query></iq>")


class MalformedRequestTests(PrivacyTestMixin, unittest.TestCase):
    """§2.1: what the server refuses before storing anything."""

    @defer.inlineCallbacks
    def assertRefused(self, payload: str, condition: str = "bad-request"):
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='set' id='bad'><query xmlns='{NS}'>{payload}</query></iq>")
        self.assertEqual(len(got), 1, [e.toXml() for e in got])
        self.assertEqual((got[0]["type"], got[0].error.firstChildElement().name), ("error", condition), got[0].toXml())
        names = yield self.request(alice, f"<iq type='get' id='g'><query xmlns='{NS}'/></iq>")
        self.assertStanzas(names, f"<iq type='result' id='g' from='{ALICE}' to='{ALICE}/a'><query xmlns='{NS}'/></iq>")

    def test_noChild(self):
        """A set without a child is bad-request."""
        return self.assertRefused("")

    def test_moreThanOneChild(self):
        """A set with more than one child (here active and default) is bad-request."""
        return self.assertRefused("<active name='a'/><default name='a'/>")

    def test_listWithoutName(self):
        """A list without a name is bad-request."""
        return self.assertRefused("<list><item action='deny' order='1'/></list>")

    def test_missingAction(self):
        """An item without an action is bad-request."""
        return self.assertRefused("<list name='l'><item order='1'/></list>")

    def test_unknownAction(self):
        """An action other than allow or deny is bad-request."""
        return self.assertRefused("<list name='l'><item action='block' order='1'/></list>")

    def test_missingOrder(self):
        """An item without an order is bad-request."""
        return self.assertRefused("<list name='l'><item action='deny'/></list>")

    def test_negativeOrder(self):
        """A negative order is bad-request."""
        return self.assertRefused("<list name='l'><item action='deny' order='-1'/></list>")

    def test_orderTooLarge(self):
        """An order beyond an unsignedInt is bad-request."""
        return self.assertRefused("<list name='l'><item action='deny' order='4294967296'/></list>")

    def test_duplicateOrder(self):
        """Two items with the same order are bad-request (§2.1: MUST)."""
        return self.assertRefused("<list name='l'><item action='deny' order='1'/><item type='jid' value='a@b' action='allow' order='1'/></list>")

    def test_unknownType(self):
        """An item type other than jid, group or subscription is bad-request."""
        return self.assertRefused("<list name='l'><item type='domain' value='x' action='deny' order='1'/></list>")

    def test_typeWithoutValue(self):
        """A typed item without a value is bad-request."""
        return self.assertRefused("<list name='l'><item type='jid' action='deny' order='1'/></list>")

    def test_invalidJID(self):
        """A jid item whose value is not a JID is bad-request."""
        return self.assertRefused("<list name='l'><item type='jid' value='@nohost' action='deny' order='1'/></list>")

    def test_unknownSubscription(self):
        """A subscription item with a value other than both, to, from, none is bad-request."""
        return self.assertRefused("<list name='l'><item type='subscription' value='pending' action='deny' order='1'/></list>")

    def test_unknownStanzaKind(self):
        """An item child other than message, iq, presence-in, presence-out is bad-request."""
        return self.assertRefused("<list name='l'><item action='deny' order='1'><presence/></item></list>")

    def test_groupNotInRoster(self):
        """A group item naming a group not in the roster is item-not-found (§2.1)."""
        return self.assertRefused("<list name='l'><item type='group' value='Strangers' action='deny' order='1'/></list>", "item-not-found")

    @defer.inlineCallbacks
    def test_groupInRoster(self):
        """A group item naming a roster group is accepted."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='set' id='ok'><query xmlns='{NS}'><list name='l'><item type='group' value='Enemies' action='deny' order='1'/></list></query></iq>")
        self.assertEqual(got[0]["type"], "result")


class LimitTests(PrivacyTestMixin, unittest.TestCase):
    """[limits] max_privacy_lists and max_privacy_items."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, limits={"max_privacy_lists": 2, "max_privacy_items": 3})

    @defer.inlineCallbacks
    def test_tooManyLists(self):
        """A new list beyond max_privacy_lists is not-allowed; replacing an existing one is fine."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "one", "<item action='deny' order='1'/>")
        yield self.setList(alice, "two", "<item action='deny' order='1'/>")
        got = yield self.request(alice, f"<iq type='set' id='s3'><query xmlns='{NS}'><list name='three'><item action='deny' order='1'/></list></query></iq>")
        self.assertStanzas(got, f"<iq type='error' id='s3' from='{ALICE}' to='{ALICE}/a'>{error('not-allowed')}"
                           "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>an account keeps at most 2 privacy lists</text></error></iq>")
        got = yield self.request(alice, f"<iq type='set' id='s4'><query xmlns='{NS}'><list name='two'><item action='allow' order='1'/></list></query></iq>")
        self.assertEqual(got[0]["type"], "result")

    @defer.inlineCallbacks
    def test_tooManyItems(self):
        """A list with more than max_privacy_items items is not-allowed."""
        alice = yield self.online(f"{ALICE}/a")
        items = "".join(f"<item type='jid' value='u{i}@x' action='deny' order='{i}'/>" for i in range(4))
        got = yield self.request(alice, f"<iq type='set' id='s1'><query xmlns='{NS}'><list name='l'>{items}</list></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "not-allowed")


class ActiveAndDefaultTests(PrivacyTestMixin, unittest.TestCase):
    """§2.4 active lists, §2.5 the default list, and the conflicts of rule 11."""

    @defer.inlineCallbacks
    def test_activeUnknownList(self):
        """Activating a list that does not exist gets item-not-found."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='set' id='a2'><query xmlns='{NS}'><active name='The Empty Set'/></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "item-not-found")

    @defer.inlineCallbacks
    def test_declineActive(self):
        """An empty <active/> declines the active list: the default applies again."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", default=True)
        yield self.setList(alice, "open", "<item action='allow' order='1'/>", active=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>1</body></message>")
        got = yield self.request(alice, f"<iq type='set' id='a3'><query xmlns='{NS}'><active/></query></iq>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m2'><body>2</body></message>")
        yield self.settle()
        self.assertStanzas(got,
                           f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>1</body></message>",
                           f"<iq type='result' id='a3' from='{ALICE}' to='{ALICE}/a'/>")
        self.assertReceived(alice)
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}/x' id='m2' type='error'><body>2</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_defaultUnknownList(self):
        """Making a list that does not exist the default gets item-not-found."""
        alice = yield self.online(f"{ALICE}/a")
        got = yield self.request(alice, f"<iq type='set' id='d1'><query xmlns='{NS}'><default name='The Empty Set'/></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "item-not-found")

    @defer.inlineCallbacks
    def test_changeDefaultInUseByAnotherResource(self):
        """Changing the default while it applies to another connected resource is a conflict; nothing changes."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.online(f"{ALICE}/b", available=False)
        yield self.setList(alice, "public", "<item action='allow' order='1'/>", default=True)
        yield self.setList(alice, "special", "<item action='deny' order='1'/>")
        got = yield self.request(alice, f"<iq type='set' id='d1'><query xmlns='{NS}'><default name='special'/></query></iq>")
        self.assertStanzas(got, f"<iq type='error' id='d1' from='{ALICE}' to='{ALICE}/a'>{error('conflict')}"
                           "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>the default list is in use by another resource</text></error></iq>")
        self.assertEqual(self.rules.account(ALICE).defaultName, "public")

    @defer.inlineCallbacks
    def test_declineDefaultInUseByAnotherResource(self):
        """Declining the default while it applies to another connected resource is a conflict."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "public", "<item action='allow' order='1'/>", default=True)
        got = yield self.request(alice, f"<iq type='set' id='d3'><query xmlns='{NS}'><default/></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "conflict")
        self.assertTrue(self.rules.hasDefault(ALICE))

    @defer.inlineCallbacks
    def test_defaultNotInUseWhenOthersHaveActiveLists(self):
        """The default can change when every other resource has its own active list (it does not apply to them)."""
        alice = yield self.online(f"{ALICE}/a")
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "public", "<item action='allow' order='1'/>", default=True)
        yield self.setList(other, "mine", "<item action='allow' order='2'/>", active=True)
        got = yield self.request(alice, f"<iq type='set' id='d2'><query xmlns='{NS}'><default/></query></iq>")
        self.assertStanzas(got, f"<iq type='result' id='d2' from='{ALICE}' to='{ALICE}/a'/>")
        self.assertFalse(self.rules.hasDefault(ALICE))

    @defer.inlineCallbacks
    def test_changeDefaultAlone(self):
        """With no other resource connected the default can be set, changed and declined."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", "<item action='allow' order='1'/>", default=True)
        yield self.setList(alice, "special", "<item action='deny' order='1'/>")
        got = yield self.request(alice, f"<iq type='set' id='d1'><query xmlns='{NS}'><default name='special'/></query></iq>")
        # 'special' denies everything: Dave, whose presence Alice receives, is shown unavailable (§2.11)...
        self.assertStanzas(got, f"<iq type='result' id='d1' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<presence type='unavailable' from='{DAVE}' to='{ALICE}/a'/>")
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")
        got = yield self.request(alice, f"<iq type='set' id='d2'><query xmlns='{NS}'><default/></query></iq>")
        # ... and her contacts are probed again once the default is declined
        # (Bob, offline, answers unavailable); Carol sees Alice again.
        self.assertStanzas(got, f"<iq type='result' id='d2' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<presence type='unavailable' from='{BOB}' to='{ALICE}'/>")
        self.assertRouted(f"<presence from='{ALICE}/a' to='{CAROL}'/>", f"<presence type='probe' from='{ALICE}' to='{DAVE}'/>")
        self.assertIsNone(self.rules.account(ALICE).defaultName)

    @defer.inlineCallbacks
    def test_removeListActiveElsewhere(self):
        """Removing a list another resource has active is a conflict."""
        alice = yield self.online(f"{ALICE}/a")
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "private", "<item action='deny' order='1'/>")
        yield self.request(other, f"<iq type='set' id='x'><query xmlns='{NS}'><active name='private'/></query></iq>")
        got = yield self.request(alice, f"<iq type='set' id='r1'><query xmlns='{NS}'><list name='private'/></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "conflict")

    @defer.inlineCallbacks
    def test_removeDefaultUsedElsewhere(self):
        """Removing the default list while another resource without an active list is connected is a conflict."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "public", "<item action='deny' order='1'/>", default=True)
        got = yield self.request(alice, f"<iq type='set' id='r1'><query xmlns='{NS}'><list name='public'/></query></iq>")
        self.assertEqual(got[0].error.firstChildElement().name, "conflict")

    @defer.inlineCallbacks
    def test_activeAppliesOnlyToItsSession(self):
        """An active list applies to its session only; the other session still follows the default (rule 1)."""
        alice = yield self.online(f"{ALICE}/a")
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "strict", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", active=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>to a</body></message>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}/b' id='m2'><body>to b</body></message>")
        yield self.settle()
        self.assertReceived(alice)
        self.assertReceived(other, f"<message from='{EVE}/x' to='{ALICE}/b' id='m2'><body>to b</body></message>")
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}/x' id='m1' type='error'><body>to a</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_activeReplacesDefaultWithoutLayering(self):
        """With an active list the default is not applied at all, even where the active list says nothing (rule 1)."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "public", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", default=True)
        yield self.setList(alice, "other", f"<item type='jid' value='{DAVE}' action='deny' order='1'/>", active=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>eve</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>dave</body></message>")
        yield self.settle()
        self.assertReceived(alice, f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>eve</body></message>")
        self.assertRouted(f"<message from='{ALICE}/a' to='{DAVE}/x' id='m2' type='error'><body>dave</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_editedActiveListAppliesAtOnce(self):
        """Editing a list that is active changes what its sessions accept from the next stanza on (rule 8)."""
        alice = yield self.online(f"{ALICE}/a")
        yield self.setList(alice, "mine", f"<item type='jid' value='{DAVE}' action='deny' order='1'/>", active=True)
        yield self.setList(alice, "mine", f"<item type='jid' value='{EVE}' action='deny' order='1'/>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>eve</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>dave</body></message>")
        yield self.settle()
        self.assertReceived(alice, f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>dave</body></message>")
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}/x' id='m1' type='error'><body>eve</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_bareJIDPresenceFollowsEachResourcesList(self):
        """Presence to the bare JID reaches each available resource whose own list allows it."""
        alice = yield self.online(f"{ALICE}/a")
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(alice, "quiet", f"<item type='jid' value='{DAVE}' action='deny' order='1'><presence-in/></item>", active=True)
        self.route(f"<presence from='{DAVE}/x' to='{ALICE}'><show>away</show></presence>")
        yield self.settle()
        self.assertReceived(alice)
        self.assertReceived(other, f"<presence from='{DAVE}/x' to='{ALICE}'><show>away</show></presence>")

    @defer.inlineCallbacks
    def test_bareJIDMessageGoesToResourcesThatAllowIt(self):
        """A message to the bare JID goes to the highest-priority resource whose list allows it; if none does, it bounces."""
        alice = yield self.online(f"{ALICE}/a", presence="<presence><priority>10</priority></presence>")
        other = yield self.online(f"{ALICE}/b", presence="<presence><priority>1</priority></presence>")
        yield self.setList(alice, "strict", f"<item type='jid' value='{EVE}' action='deny' order='1'><message/></item>", active=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>1</body></message>")
        yield self.settle()
        self.assertReceived(alice)
        self.assertReceived(other, f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>1</body></message>")
        yield self.request(other, f"<iq type='set' id='x'><query xmlns='{NS}'><active name='strict'/></query></iq>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m2' type='chat'><body>2</body></message>")
        yield self.settle()
        self.assertReceived(alice)
        self.assertReceived(other)
        self.assertRouted(f"<message from='{ALICE}' to='{EVE}/x' id='m2' type='error'><body>2</body>{SU}</message>")


# -- enforcement ---------------------------------------------------------------------------


class InboundTests(PrivacyTestMixin, unittest.TestCase):
    """§2.9-§2.14 and §2.14's answers: what a user's lists do to stanzas it receives."""

    @defer.inlineCallbacks
    def setUp(self):
        yield PrivacyTestMixin.setUp(self)
        self.alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []

    @defer.inlineCallbacks
    def test_messageDenied(self):
        """A denied message is not delivered and its sender gets service-unavailable; an iq from it still passes."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='3'><message/></item>", default=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>Can you hear me now?</body></message>")
        self.route(f"<iq from='{EVE}/x' to='{ALICE}/a' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
        yield self.settle()
        self.assertReceived(self.alice, f"<iq from='{EVE}/x' to='{ALICE}/a' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
        self.assertRouted(f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>Can you hear me now?</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_messageErrorDeniedSilently(self):
        """A denied message of type error is dropped without an answer."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='3'/>", default=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertRouted()

    @defer.inlineCallbacks
    def test_iqDenied(self):
        """A denied iq get or set gets service-unavailable (§2.14 example); results and errors are dropped silently."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='29'><iq/></item>", default=True)
        self.route(f"<iq type='get' to='{ALICE}' from='{EVE}/pda' id='probing1'><query xmlns='jabber:iq:version'/></iq>")
        self.route(f"<iq type='set' to='{ALICE}/a' from='{EVE}/pda' id='s1'><query xmlns='urn:x'/></iq>")
        self.route(f"<iq type='result' to='{ALICE}/a' from='{EVE}/pda' id='r1'/>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>still fine</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>still fine</body></message>")
        self.assertRouted(
            f"<iq type='error' from='{ALICE}' to='{EVE}/pda' id='probing1'>{SU}</iq>",
            f"<iq type='error' from='{ALICE}/a' to='{EVE}/pda' id='s1'>{SU}</iq>",
        )

    @defer.inlineCallbacks
    def test_presenceInDenied(self):
        """Denied presence notifications are dropped silently; subscription requests are not presence-in and pass."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{DAVE}' action='deny' order='7'><presence-in/></item>", default=True)
        self.route(f"<presence from='{DAVE}/x' to='{ALICE}'/>")
        self.route(f"<presence from='{DAVE}/x' to='{ALICE}/a' type='unavailable'/>")
        self.route(f"<presence from='{DAVE}' to='{ALICE}' type='subscribe'/>")
        yield self.settle()
        self.assertReceived(self.alice, f"<presence from='{DAVE}' to='{ALICE}' type='subscribe'/>")
        self.assertRouted()

    @defer.inlineCallbacks
    def test_everythingDenied(self):
        """An item without children denies messages, iqs, notifications, subscriptions and probes; presence is never answered."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='23'/>", default=True)
        self.route(f"<presence from='{EVE}/x' to='{ALICE}'/>")
        self.route(f"<presence from='{EVE}' to='{ALICE}' type='subscribe'/>")
        self.route(f"<presence from='{EVE}' to='{ALICE}' type='probe'/>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1'><body>hi</body></message>")
        self.route(f"<iq from='{EVE}/x' to='{ALICE}' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertRouted(
            f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>hi</body>{SU}</message>",
            f"<iq from='{ALICE}' to='{EVE}/x' id='v1' type='error'>{SU}</iq>",
        )
        self.assertNotIn(EVE, self.roster.cachedRoster(ALICE))

    @defer.inlineCallbacks
    def test_groupItem(self):
        """A group item denies the contacts of that roster group and nobody else."""
        yield self.setList(self.alice, "l", "<item type='group' value='Enemies' action='deny' order='4'><message/></item>", default=True)
        self.route(f"<message from='{CAROL}/x' to='{ALICE}/a' id='m1'><body>enemy</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>not an enemy</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>not an enemy</body></message>")
        self.assertRouted(f"<message from='{ALICE}/a' to='{CAROL}/x' id='m1' type='error'><body>enemy</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_subscriptionItem(self):
        """A subscription item 'none' denies strangers and not contacts with a subscription."""
        yield self.setList(self.alice, "l", "<item type='subscription' value='none' action='deny' order='5'><message/></item>", default=True)
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>stranger</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>contact</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>contact</body></message>")
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}/x' id='m1' type='error'><body>stranger</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_rosterChangeIsSeen(self):
        """A contact that gains a subscription is allowed by a 'none' rule from then on (rule 9)."""
        yield self.setList(self.alice, "l", "<item type='subscription' value='none' action='deny' order='5'><message/></item>", default=True)
        self.alice.receive(f"<presence to='{EVE}' type='subscribed'/>")  # pre-approval only: still 'none'
        self.route(f"<presence from='{EVE}' to='{ALICE}' type='subscribe'/>")  # approved at once: 'from'
        yield self.settle()
        self.captured[:] = []
        self.alice.link.pop()
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>now a contact</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message from='{EVE}/x' to='{ALICE}/a' id='m1'><body>now a contact</body></message>")

    @defer.inlineCallbacks
    def test_allowBeforeFallThroughDeny(self):
        """'allow Bob, then deny everyone' lets only Bob through, by order."""
        yield self.setList(self.alice, "l", f"<item action='deny' order='15'/><item type='jid' value='{BOB}' action='allow' order='10'/>", default=True)
        bob = yield self.online(f"{BOB}/b")
        bob.receive(f"<message to='{ALICE}/a' id='m1'><body>friend</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m2'><body>other</body></message>")
        yield self.settle()
        self.assertReceived(self.alice,
                            f"<presence from='{BOB}/b' to='{ALICE}'/>",
                            f"<message from='{BOB}/b' to='{ALICE}/a' id='m1'><body>friend</body></message>")
        self.assertRouted(f"<message from='{ALICE}/a' to='{DAVE}/x' id='m2' type='error'><body>other</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_domainItemCoversRemoteServer(self):
        """A jid item naming a domain denies every user of it, and the domain itself."""
        yield self.setList(self.alice, "l", "<item type='jid' value='remote.example' action='deny' order='1'><message/></item>", default=True)
        self.route(f"<message from='{DAVE}/x' to='{ALICE}/a' id='m1'><body>user</body></message>")
        self.route(f"<message from='remote.example' to='{ALICE}/a' id='m2'><body>server</body></message>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertRouted(
            f"<message from='{ALICE}/a' to='{DAVE}/x' id='m1' type='error'><body>user</body>{SU}</message>",
            f"<message from='{ALICE}/a' to='remote.example' id='m2' type='error'><body>server</body>{SU}</message>",
        )

    @defer.inlineCallbacks
    def test_componentTraffic(self):
        """Stanzas from a component are checked like any other: a denied room message bounces to the room."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{COMPONENT}' action='deny' order='1'><message/></item>", default=True)
        self.route(f"<message from='room@{COMPONENT}/nick' to='{ALICE}/a' id='m1' type='groupchat'><body>hi</body></message>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertComponent(f"<message from='{ALICE}/a' to='room@{COMPONENT}/nick' id='m1' type='error'><body>hi</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_localSender(self):
        """A local sender denied by the recipient's list gets service-unavailable from the recipient."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{ZED}' action='deny' order='1'/>", default=True)
        zed = yield self.online(f"{ZED}/z")
        zed.receive(f"<message to='{ALICE}' id='m1' type='chat'><body>hi</body></message>")
        yield self.settle()
        self.assertReceived(self.alice)
        self.assertReceived(zed, f"<message from='{ALICE}' to='{ZED}/z' id='m1' type='error'><body>hi</body>{SU}</message>")

    @defer.inlineCallbacks
    def test_ownResourcesNeverBlocked(self):
        """Even a deny-everything list never blocks the account's own resources or its own server."""
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(self.alice, "l", "<item action='deny' order='1'/>", default=True)
        other.receive(f"<message to='{ALICE}/a' id='m1'><body>self</body></message>")
        yield self.settle()
        self.assertReceived(self.alice, f"<message to='{ALICE}/a' from='{ALICE}/b' id='m1'><body>self</body></message>")
        got = yield self.request(self.alice, "<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        self.assertEqual(got[0]["type"], "result")

    @defer.inlineCallbacks
    def test_offlineRecipientDefaultList(self):
        """An offline account's default list applies: a denied message is bounced, not stored; others are stored."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", default=True)
        yield self.restart()  # nothing of Alice's in memory
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>blocked</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}' id='m2' type='chat'><body>stored</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>blocked</body>{SU}</message>")
        count = yield self.server.modules.modules["offline"].messages.count("localhost", "alice")
        self.assertEqual(count, 1)

    @defer.inlineCallbacks
    def test_offlineRecipientRosterRules(self):
        """An offline account's subscription rule is decided with its roster, loaded for the moment, in arrival order."""
        yield self.setList(self.alice, "l", "<item type='subscription' value='none' action='deny' order='1'/>", default=True)
        yield self.restart()
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>stranger</body></message>")
        self.route(f"<message from='{DAVE}/x' to='{ALICE}' id='m2' type='chat'><body>contact</body></message>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m3' type='chat'><body>stranger again</body></message>")
        yield self.settle()
        self.assertRouted(
            f"<message from='{ALICE}' to='{EVE}/x' id='m1' type='error'><body>stranger</body>{SU}</message>",
            f"<message from='{ALICE}' to='{EVE}/x' id='m3' type='error'><body>stranger again</body>{SU}</message>",
        )
        count = yield self.server.modules.modules["offline"].messages.count("localhost", "alice")
        self.assertEqual(count, 1)

    @defer.inlineCallbacks
    def test_stanzasWaitForListsAtLogin(self):
        """Right after login, while the lists load, stanzas both ways wait and are then decided in arrival order."""
        yield self.server.store.runInteraction("seed", apply_privacy_changes_txn, "localhost", "alice", [
            ("list", "l", (PrivacyItem(1, False, "jid", EVE),)), ("default", "l"),
        ])
        yield self.restart()
        alice = self.bind(f"{ALICE}/a")
        self.assertFalse(self.rules.account(ALICE).loaded)
        alice.receive(f"<message to='{DAVE}' id='m1'><body>1</body></message>")
        alice.receive(f"<message to='{EVE}' id='m2'><body>2</body></message>")
        alice.receive(f"<presence to='{EVE}' type='subscribe'/>")
        alice.receive(f"<message to='{DAVE}' id='m3'><body>3</body></message>")
        self.route(f"<message from='{EVE}/x' to='{ALICE}/a' id='m4'><body>4</body></message>")
        self.assertRouted()
        yield self.settle()
        self.assertRouted(
            f"<message from='{ALICE}/a' to='{DAVE}' id='m1'><body>1</body></message>",
            f"<message from='{ALICE}/a' to='{DAVE}' id='m3'><body>3</body></message>",
            f"<message from='{ALICE}/a' to='{EVE}/x' id='m4' type='error'><body>4</body>{SU}</message>",
        )
        self.assertReceived(alice, f"<message from='{EVE}' to='{ALICE}/a' id='m2' type='error'><body>2</body>{BLOCKED}</message>")
        self.assertNotIn(EVE, self.roster.cachedRoster(ALICE))

    @defer.inlineCallbacks
    def test_deletedAccountForgetsLists(self):
        """When an account is deleted its lists stop applying (a new account by that name starts without any)."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", default=True)
        self.alice.disconnect()
        yield self.settle()
        yield self.server.accounts.delete("localhost", "alice")
        self.server.bus.notify(B.ACCOUNT_DELETED, "localhost", "alice")
        yield self.addUser(ALICE)
        self.assertFalse(self.rules.hasDefault(ALICE))
        self.captured[:] = []
        self.route(f"<message from='{EVE}/x' to='{ALICE}' id='m1' type='chat'><body>hi</body></message>")
        yield self.settle()
        self.assertRouted()
        count = yield self.server.modules.modules["offline"].messages.count("localhost", "alice")
        self.assertEqual(count, 1)

    @defer.inlineCallbacks
    def test_offlineProbeDenied(self):
        """A probe from a denied contact to an offline account is not answered at all."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{BOB}' action='deny' order='1'/>", default=True)
        yield self.restart()
        bob = yield self.online(f"{BOB}/b")
        bob.link.pop()
        bob.receive(f"<presence type='probe' to='{ALICE}'/>")
        yield self.settle()
        self.assertReceived(bob)


class OutboundTests(PrivacyTestMixin, unittest.TestCase):
    """What a user's lists do to stanzas it sends (§2.12, §2.13, §2.14)."""

    @defer.inlineCallbacks
    def setUp(self):
        yield PrivacyTestMixin.setUp(self)
        self.alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []

    @defer.inlineCallbacks
    def test_presenceOutDenied(self):
        """Presence-out keeps Alice's broadcasts from a contact (and only them); her messages still go there."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{CAROL}' action='deny' order='13'><presence-out/></item>", default=True)
        self.alice.receive("<presence><show>away</show></presence>")
        self.alice.receive(f"<message to='{CAROL}' id='m1'><body>hi</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}/a' to='{CAROL}' id='m1'><body>hi</body></message>")

    @defer.inlineCallbacks
    def test_presenceOutGroupAndSubscription(self):
        """Presence-out by group and by subscription: Carol (Enemies) and Bob ('both') get no broadcast."""
        bob = yield self.online(f"{BOB}/b")
        yield self.setList(self.alice, "l",
                           "<item type='group' value='Enemies' action='deny' order='15'><presence-out/></item>"
                           "<item type='subscription' value='both' action='deny' order='16'><presence-out/></item>", default=True)
        bob.link.pop()
        self.alice.receive("<presence><status>hidden</status></presence>")
        yield self.settle()
        self.assertRouted()
        self.assertReceived(bob)

    @defer.inlineCallbacks
    def test_directedPresenceDenied(self):
        """Directed presence is a presence notification too: denied by presence-out, silently."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='1'><presence-out/></item>", default=True)
        self.alice.receive(f"<presence to='{EVE}'/>")
        yield self.settle()
        self.assertRouted()
        self.assertReceived(self.alice)

    @defer.inlineCallbacks
    def test_messageToDeniedJID(self):
        """A message or iq Alice sends to a JID her list denies everything is not routed: not-acceptable comes back."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", active=True)
        self.alice.receive(f"<message to='{EVE}' id='m1' type='chat'><body>Can you hear me now?</body></message>")
        self.alice.receive(f"<iq to='{EVE}/x' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>")
        self.alice.receive(f"<presence to='{EVE}' type='subscribe'/>")
        yield self.settle()
        self.assertRouted()
        self.assertReceived(self.alice,
                            f"<message from='{EVE}' to='{ALICE}/a' id='m1' type='error'><body>Can you hear me now?</body>{NA}</message>",
                            f"<iq from='{EVE}/x' to='{ALICE}/a' id='v1' type='error'>{NA}</iq>")

    @defer.inlineCallbacks
    def test_inboundOnlyKindsDoNotStopSending(self):
        """An item with <message/>, <iq/> and <presence-in/> only filters what Alice receives, not what she sends."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='1'><message/><iq/><presence-in/></item>", default=True)
        self.alice.receive(f"<message to='{EVE}' id='m1'><body>out</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}/a' to='{EVE}' id='m1'><body>out</body></message>")

    @defer.inlineCallbacks
    def test_toComponent(self):
        """Outbound checks cover component domains: a message to a denied room gets not-acceptable (with <blocked/>: a jid-deny item of the default list is a blocklist entry)."""
        yield self.setList(self.alice, "l", f"<item type='jid' value='{COMPONENT}' action='deny' order='1'/>", default=True)
        self.alice.receive(f"<message to='room@{COMPONENT}' id='m1' type='groupchat'><body>hi</body></message>")
        yield self.settle()
        self.assertComponent()
        self.assertReceived(self.alice, f"<message from='room@{COMPONENT}' to='{ALICE}/a' id='m1' type='error'><body>hi</body>{BLOCKED}</message>")

    @defer.inlineCallbacks
    def test_toLocalUser(self):
        """A local recipient the sender's list denies never sees the stanza."""
        zed = yield self.online(f"{ZED}/z")
        yield self.setList(self.alice, "l", f"<item type='jid' value='{ZED}' action='deny' order='1'/>", default=True)
        self.alice.receive(f"<message to='{ZED}/z' id='m1'><body>hi</body></message>")
        yield self.settle()
        self.assertReceived(zed)
        self.assertReceived(self.alice, f"<message from='{ZED}/z' to='{ALICE}/a' id='m1' type='error'><body>hi</body>{BLOCKED}</message>")

    @defer.inlineCallbacks
    def test_outboundFromActiveListOfThatSession(self):
        """The sending session's active list decides its stanzas; another session follows the default."""
        other = yield self.online(f"{ALICE}/b")
        yield self.setList(self.alice, "l", f"<item type='jid' value='{EVE}' action='deny' order='1'/>", active=True)
        other.receive(f"<message to='{EVE}' id='m1'><body>from b</body></message>")
        yield self.settle()
        self.assertRouted(f"<message from='{ALICE}/b' to='{EVE}' id='m1'><body>from b</body></message>")


class PresenceOnChangeTests(PrivacyTestMixin, unittest.TestCase):
    """§2.11, §2.12: presence sent when a list starts or stops blocking presence."""

    @defer.inlineCallbacks
    def setUp(self):
        yield PrivacyTestMixin.setUp(self)
        self.alice = yield self.online(f"{ALICE}/a", presence="<presence><show>chat</show></presence>")
        self.captured[:] = []

    @defer.inlineCallbacks
    def test_blockingPresenceOutSendsUnavailable(self):
        """A new default list that blocks presence-out to Carol sends her unavailable; removing it sends current presence."""
        self.alice.receive(f"<iq type='set' id='s'><query xmlns='{NS}'><list name='l'><item type='jid' value='{CAROL}' action='deny' order='1'><presence-out/></item></list></query></iq>")
        yield self.settle()
        self.assertRouted()  # not yet in force
        self.alice.receive(f"<iq type='set' id='d'><query xmlns='{NS}'><default name='l'/></query></iq>")
        yield self.settle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")
        self.alice.receive(f"<iq type='set' id='d2'><query xmlns='{NS}'><default/></query></iq>")
        yield self.settle()
        self.assertRouted(f"<presence from='{ALICE}/a' to='{CAROL}'><show>chat</show></presence>")

    @defer.inlineCallbacks
    def test_onlyContactsWhoMaySeePresence(self):
        """Blocking presence-out for everyone sends unavailable only to contacts with a 'from'/'both' subscription and directed-presence recipients."""
        bob = yield self.online(f"{BOB}/b")
        self.alice.receive(f"<presence to='{EVE}/x'/>")
        yield self.settle()
        self.captured[:] = []
        bob.link.pop()
        yield self.setList(self.alice, "l", "<item action='deny' order='1'><presence-out/></item>", active=True)
        # setList dropped what the sessions got; ask again by switching lists.
        self.alice.receive(f"<iq type='set' id='a0'><query xmlns='{NS}'><active/></query></iq>")
        yield self.settle()
        self.captured[:] = []
        bob.link.pop()
        self.alice.link.pop()
        self.alice.receive(f"<iq type='set' id='a1'><query xmlns='{NS}'><active name='l'/></query></iq>")
        yield self.settle()
        self.assertRouted(
            f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>",
            f"<presence type='unavailable' from='{ALICE}/a' to='{EVE}/x'/>",
        )
        self.assertReceived(bob, f"<presence type='unavailable' from='{ALICE}/a' to='{BOB}'/>")

    @defer.inlineCallbacks
    def test_blockingPresenceInShowsContactUnavailable(self):
        """When a list starts blocking presence from an online contact, the session sees the contact go unavailable; when it stops, the contact is probed."""
        bob = yield self.online(f"{BOB}/b")
        self.alice.link.pop()
        yield self.request(self.alice, f"<iq type='set' id='s'><query xmlns='{NS}'><list name='l'><item type='jid' value='{BOB}' action='deny' order='1'><presence-in/></item></list></query></iq>")
        self.captured[:] = []
        got = yield self.request(self.alice, f"<iq type='set' id='a'><query xmlns='{NS}'><active name='l'/></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='a' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<presence type='unavailable' from='{BOB}/b' to='{ALICE}/a'/>")
        bob.link.pop()
        got = yield self.request(self.alice, f"<iq type='set' id='a2'><query xmlns='{NS}'><active/></query></iq>")
        self.assertStanzas(got,
                           f"<iq type='result' id='a2' from='{ALICE}' to='{ALICE}/a'/>",
                           f"<presence from='{BOB}/b' to='{ALICE}'/>")
