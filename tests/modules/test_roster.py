"""
The roster module (RFC 6121 §2): get, set, remove, pushes, versioning
(§2.6), the error cases, the size limit and persistence across a restart.

L{RosterTestMixin} holds the helpers the subscription and presence tests
share: exact-stanza assertions, seeding stored rosters, a captured remote
domain and restarting the server on the same data folder.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd.service import XMPPServer
from jabberd.store.roster import RosterItem, apply_changes_txn, load_roster_txn
from tests.fakes import ModuleTestMixin, element

REMOTE = "remote.example"


def _canon(e: Any) -> Any:
    if isinstance(e, str):
        return e
    children = [_canon(c) for c in e.children if not (isinstance(c, str) and not c.strip())]
    return (e.uri, e.name, dict(e.attributes), children)


def _match(expected: Any, got: Any, path: str = "") -> str | None:
    """Why C{got} differs from C{expected} (an attribute value '*' matches anything)."""
    if isinstance(expected, str) or isinstance(got, str):
        return None if expected == got else f"{path}: text {got!r} != {expected!r}"
    euri, ename, eattrs, echildren = expected
    guri, gname, gattrs, gchildren = got
    here = f"{path}/{gname}"
    if (euri, ename) != (guri, gname):
        return f"{here}: element {{{guri}}}{gname} != {{{euri}}}{ename}"
    if set(eattrs) != set(gattrs):
        return f"{here}: attributes {sorted(map(str, gattrs))} != {sorted(map(str, eattrs))}"
    for key, value in eattrs.items():
        if value != "*" and gattrs[key] != value:
            return f"{here}: {key}={gattrs[key]!r} != {value!r}"
    if len(echildren) != len(gchildren):
        return f"{here}: {len(gchildren)} children != {len(echildren)}"
    for ec, gc in zip(echildren, gchildren):
        problem = _match(ec, gc, here)
        if problem:
            return problem
    return None


class RosterTestMixin(ModuleTestMixin):
    """Helpers for roster, subscription and presence unit tests."""

    modules = ("roster", "presence")

    @defer.inlineCallbacks
    def startRoster(self, *users: str, **overrides: Any):
        """Start the server with the roster and presence modules and create C{users}."""
        yield self.startModules(modules=list(self.modules), **overrides)
        for user in users:
            yield self.addUser(user)
        self.captured: list[domish.Element] = []
        self.server.router.registerDomain(REMOTE, self.captured.append)

    @property
    def roster(self):
        return self.server.modules.modules["roster"]

    def idle(self) -> defer.Deferred:
        """Fires once every roster load and write has finished."""
        return self.roster.whenIdle()

    @defer.inlineCallbacks
    def restart(self):
        """Stop the server and start a new one on the same configuration and data folder."""
        config = self.server.config
        yield self.idle()
        yield self.server.stopService()
        self.server = XMPPServer(config, reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready
        self.captured = []
        self.server.router.registerDomain(REMOTE, self.captured.append)

    @defer.inlineCallbacks
    def seed(self, bare: str, items: list[RosterItem] = (), pending: list[str] = (), version: int = 1, epoch: str = "seeded"):
        """Write a roster into the store before the account logs in."""
        user, _, host = bare.partition("@")
        when = datetime(2024, 1, 1, tzinfo=timezone.utc)
        changes: list[tuple] = [("item", item, version) for item in items]
        for jid in pending:
            xml = f"<presence xmlns='jabber:client' type='subscribe' from='{jid}' to='{bare}'/>"
            changes.append(("pending", jid, xml, when))
        changes.append(("version", epoch, version, 0))
        ok = yield self.server.store.runInteraction("seed", apply_changes_txn, host, user, changes)
        assert ok, f"no account {bare}"

    @defer.inlineCallbacks
    def online(self, fullJID: str, getRoster: bool = True, available: bool = True, presence: str = "<presence/>"):
        """Bind C{fullJID}, fetch the roster and send initial presence (as a client does); drop what it got."""
        session = self.bind(fullJID)
        yield self.idle()
        if getRoster:
            session.receive("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        if available:
            session.receive(presence)
        yield self.idle()
        session.link.pop()
        return session

    @defer.inlineCallbacks
    def stored(self, bare: str):
        """The roster as the store has it, once pending writes are done."""
        yield self.idle()
        user, _, host = bare.partition("@")
        state = yield self.server.store.runInteraction("load", load_roster_txn, host, user)
        return state

    def assertStanzas(self, got: list[domish.Element], *expected: str) -> None:
        """C{got} is exactly the stanzas written in C{expected}, in order ('*' matches any attribute value)."""
        want = [_canon(element(x)) for x in expected]
        have = [_canon(e) for e in got]
        if len(want) != len(have):
            self.fail(f"expected {len(want)} stanzas, got {len(have)}:\n" + "\n".join(e.toXml() for e in got))
        for i, (w, h) in enumerate(zip(want, have)):
            problem = _match(w, h)
            if problem:
                self.fail(f"stanza {i}: {problem}\n got: {got[i].toXml()}\nwant: {expected[i]}")

    def assertReceived(self, session, *expected: str) -> None:
        """The session received exactly C{expected} since the last check."""
        self.assertStanzas(session.link.pop(), *expected)

    def assertRouted(self, *expected: str) -> None:
        """Exactly C{expected} went to the captured remote domain since the last check."""
        got, self.captured[:] = list(self.captured), []
        self.assertStanzas(got, *expected)

    def item(self, bare: str, jid: str) -> RosterItem | None:
        """The in-memory roster item (the account must be online)."""
        roster = self.roster.cachedRoster(bare)
        assert roster is not None, f"{bare} has no roster in memory"
        return roster.get(jid)

    def ver(self, bare: str, version: int | None = None) -> str:
        """The 'ver' string of an online account's roster (current, or C{version})."""
        acct = self.roster._accounts[bare]
        return self.roster.versionString(acct.state, version)


class RosterTests(RosterTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster("alice@localhost", "bob@localhost")

    @defer.inlineCallbacks
    def test_emptyRoster(self):
        """A roster get on a new account returns an empty query."""
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'/></iq>")
        self.assertTrue(alice.interested)

    @defer.inlineCallbacks
    def test_getReturnsStoredItems(self):
        """A roster get returns every stored item with name, subscription, ask, approved and groups, sorted by JID."""
        yield self.seed("alice@localhost", [
            RosterItem("carol@remote.example", "Carol", "both", groups=("Friends", "Work")),
            RosterItem("bob@localhost", None, "none", ask=True),
            RosterItem("dave@remote.example", "Dave", "to", approved=True),
        ])
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'>"
                            "<item jid='bob@localhost' subscription='none' ask='subscribe'/>"
                            "<item jid='carol@remote.example' name='Carol' subscription='both'><group>Friends</group><group>Work</group></item>"
                            "<item jid='dave@remote.example' name='Dave' subscription='to' approved='true'/>"
                            "</query></iq>")

    @defer.inlineCallbacks
    def test_getBeforeLoadIsAnsweredAfterLoad(self):
        """A roster get sent while the roster is still loading is answered once it is loaded, in order."""
        yield self.seed("alice@localhost", [RosterItem("bob@localhost", "Bob")])
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>")
        self.assertEqual(alice.link.pop(), [])
        yield self.idle()
        got = alice.link.pop()
        self.assertStanzas(got,
                           "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob' subscription='none'/></query></iq>",
                           "<iq type='result' id='s1' from='alice@localhost' to='alice@localhost/a'/>",
                           "<iq type='set' id='*' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' subscription='none'/></query></iq>")

    @defer.inlineCallbacks
    def test_setAddsItemAndPushesToInterestedResources(self):
        """A roster set adds the item, answers with a result and pushes it to every interested resource, not the others."""
        alice = yield self.online("alice@localhost/a")
        other = yield self.online("alice@localhost/b")
        uninterested = yield self.online("alice@localhost/c", getRoster=False, available=False)
        alice.link.pop()
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='Bob@LocalHost' name='Bob'><group>Friends</group></item></query></iq>")
        yield self.idle()
        push = "<iq type='set' id='*' to='{}'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob' subscription='none'><group>Friends</group></item></query></iq>"
        self.assertReceived(alice, "<iq type='result' id='s1' from='alice@localhost' to='alice@localhost/a'/>", push.format("alice@localhost/a"))
        self.assertReceived(other, push.format("alice@localhost/b"))
        self.assertReceived(uninterested)
        self.assertEqual(self.item("alice@localhost", "bob@localhost"), RosterItem("bob@localhost", "Bob", "none", groups=("Friends",)))

    @defer.inlineCallbacks
    def test_setUpdatesNameAndGroupsKeepingSubscription(self):
        """Updating an item changes name and groups and keeps the subscription state the server owns."""
        yield self.seed("alice@localhost", [RosterItem("bob@localhost", "Bob", "both", groups=("Old",))])
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Robert' subscription='none' ask='subscribe' approved='true'><group>New</group><group>Also</group></item></query></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='s1' from='alice@localhost' to='alice@localhost/a'/>",
                            "<iq type='set' id='*' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Robert' subscription='both'><group>Also</group><group>New</group></item></query></iq>")
        self.assertEqual(self.item("alice@localhost", "bob@localhost"), RosterItem("bob@localhost", "Robert", "both", groups=("Also", "New")))

    @defer.inlineCallbacks
    def test_setWithoutChangeDoesNotPush(self):
        """A roster set that changes nothing gets a result but no push and no new version."""
        yield self.seed("alice@localhost", [RosterItem("bob@localhost", "Bob")])
        alice = yield self.online("alice@localhost/a", available=False)
        before = self.ver("alice@localhost")
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='s1' from='alice@localhost' to='alice@localhost/a'/>")
        self.assertEqual(self.ver("alice@localhost"), before)

    @defer.inlineCallbacks
    def test_removeItem(self):
        """Removing an item without subscriptions deletes it, answers with a result and pushes subscription='remove'."""
        yield self.seed("alice@localhost", [RosterItem("bob@localhost", "Bob")])
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='d1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='d1' from='alice@localhost' to='alice@localhost/a'/>",
                            "<iq type='set' id='*' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        self.assertIsNone(self.item("alice@localhost", "bob@localhost"))
        state = yield self.stored("alice@localhost")
        self.assertEqual(state.items, {})

    @defer.inlineCallbacks
    def test_removeUnknownItem(self):
        """Removing a JID that is not in the roster gets item-not-found (§2.5.3)."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='d1'><query xmlns='jabber:iq:roster'><item jid='nobody@localhost' subscription='remove'/></query></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='error' id='d1' from='alice@localhost' to='alice@localhost/a'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>that JID is not in the roster</text></error></iq>")

    @defer.inlineCallbacks
    def test_removeWithSubscriptionsCancelsBothWays(self):
        """Removing a 'both' item sends unavailable, unsubscribe and unsubscribed to the contact (§2.5.2)."""
        yield self.seed("alice@localhost", [RosterItem("carol@remote.example", "Carol", "both")])
        alice = yield self.online("alice@localhost/a")
        self.captured[:] = []
        alice.receive("<iq type='set' id='d1'><query xmlns='jabber:iq:roster'><item jid='carol@remote.example' subscription='remove'/></query></iq>")
        yield self.idle()
        self.assertRouted("<presence type='unavailable' from='alice@localhost/a' to='carol@remote.example'/>",
                          "<presence type='unsubscribe' from='alice@localhost' to='carol@remote.example'/>",
                          "<presence type='unsubscribed' from='alice@localhost' to='carol@remote.example'/>")
        self.assertReceived(alice, "<iq type='result' id='d1' from='alice@localhost' to='alice@localhost/a'/>",
                            "<iq type='set' id='*' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='carol@remote.example' subscription='remove'/></query></iq>")

    @defer.inlineCallbacks
    def test_removePendingBothWays(self):
        """Removing an item with a request pending each way cancels ours (unsubscribe) and denies theirs (unsubscribed)."""
        yield self.seed("alice@localhost", [RosterItem("carol@remote.example", None, "none", ask=True)], pending=["carol@remote.example"])
        alice = yield self.online("alice@localhost/a")
        self.captured[:] = []
        alice.receive("<iq type='set' id='d1'><query xmlns='jabber:iq:roster'><item jid='carol@remote.example' subscription='remove'/></query></iq>")
        yield self.idle()
        self.assertRouted("<presence type='unsubscribe' from='alice@localhost' to='carol@remote.example'/>",
                          "<presence type='unsubscribed' from='alice@localhost' to='carol@remote.example'/>")
        state = yield self.stored("alice@localhost")
        self.assertEqual((state.items, state.pending), ({}, {}))

    @defer.inlineCallbacks
    def test_errorMultipleItems(self):
        """A roster set with two items gets bad-request (§2.3.3)."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item jid='a@localhost'/><item jid='b@localhost'/></query></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='error' id='e1' from='alice@localhost' to='alice@localhost/a'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>a roster set carries exactly one item</text></error></iq>")
        self.assertEqual(self.roster.cachedRoster("alice@localhost"), {})

    @defer.inlineCallbacks
    def test_errorNoItem(self):
        """A roster set without an item gets bad-request."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        reply = alice.link.popOne()
        self.assertEqual((reply["type"], next(reply.error.elements()).name), ("error", "bad-request"))

    @defer.inlineCallbacks
    def test_errorMissingJID(self):
        """An item without a jid gets bad-request."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item name='x'/></query></iq>")
        yield self.idle()
        self.assertEqual(next(alice.link.popOne().error.elements()).name, "bad-request")

    @defer.inlineCallbacks
    def test_errorMalformedJID(self):
        """An item whose jid is not a JID gets jid-malformed."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item jid='a@b@c..d'/></query></iq>")
        yield self.idle()
        reply = alice.link.popOne()
        self.assertEqual((reply.error["type"], next(reply.error.elements()).name), ("modify", "jid-malformed"))

    @defer.inlineCallbacks
    def test_errorDuplicateGroups(self):
        """An item listing the same group twice gets bad-request (§2.3.3)."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item jid='b@localhost'><group>G</group><group>G</group></item></query></iq>")
        yield self.idle()
        self.assertEqual(next(alice.link.popOne().error.elements()).name, "bad-request")

    @defer.inlineCallbacks
    def test_errorEmptyGroup(self):
        """An empty group name gets not-acceptable (§2.3.3)."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item jid='b@localhost'><group/></item></query></iq>")
        yield self.idle()
        reply = alice.link.popOne()
        self.assertEqual((reply.error["type"], next(reply.error.elements()).name), ("modify", "not-acceptable"))

    @defer.inlineCallbacks
    def test_errorNameTooLong(self):
        """A name or group longer than the server's limit gets not-acceptable (§2.3.3)."""
        alice = yield self.online("alice@localhost/a", available=False)
        long = "x" * 1024
        alice.receive(f"<iq type='set' id='e1'><query xmlns='jabber:iq:roster'><item jid='b@localhost' name='{long}'/></query></iq>")
        alice.receive(f"<iq type='set' id='e2'><query xmlns='jabber:iq:roster'><item jid='b@localhost'><group>{long}</group></item></query></iq>")
        yield self.idle()
        self.assertEqual([next(r.error.elements()).name for r in alice.link.pop()], ["not-acceptable", "not-acceptable"])
        self.assertEqual(self.roster.cachedRoster("alice@localhost"), {})

    @defer.inlineCallbacks
    def test_subscriptionOtherThanRemoveIsIgnored(self):
        """A subscription value other than 'remove' in a roster set is ignored, as RFC 6121 §2.1.2.5 requires."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='both'/></query></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='s1' from='alice@localhost' to='alice@localhost/a'/>",
                            "<iq type='set' id='*' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='none'/></query></iq>")

    @defer.inlineCallbacks
    def test_forbiddenForAnotherAccount(self):
        """A roster get or set addressed to another account's bare JID gets forbidden."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='get' id='f1' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>")
        alice.receive("<iq type='set' id='f2' to='bob@localhost'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/></query></iq>")
        yield self.idle()
        self.assertReceived(alice,
                            "<iq type='error' id='f1' from='bob@localhost' to='alice@localhost/a'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>you can only read and change your own roster</text></error></iq>",
                            "<iq type='error' id='f2' from='bob@localhost' to='alice@localhost/a'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>you can only read and change your own roster</text></error></iq>")

    @defer.inlineCallbacks
    def test_ownBareJIDIsAllowed(self):
        """A roster get addressed to the account's own bare JID is answered like one without 'to'."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='get' id='r2' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r2' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'/></iq>")

    @defer.inlineCallbacks
    def test_streamFeatures(self):
        """Roster versioning and pre-approval are offered as stream features after authentication."""
        features = domish.Element(("http://etherx.jabber.org/streams", "features"))
        self.server.bus.notify(B.STREAM_FEATURES, None, features)
        self.assertEqual([(e.uri, e.name) for e in features.elements()],
                         [("urn:xmpp:features:rosterver", "ver"), ("urn:xmpp:features:pre-approval", "sub")])
        self.assertEqual(self.roster.features + self.roster.accountFeatures, ())
        yield self.idle()

    @defer.inlineCallbacks
    def test_rosterLimit(self):
        """Adding an item beyond limits.max_roster_size gets not-allowed; updating existing ones still works."""
        yield self.server.stopService()
        yield self.startRoster("alice@localhost", limits={"max_roster_size": 2})
        alice = yield self.online("alice@localhost/a", available=False)
        for i in range(3):
            alice.receive(f"<iq type='set' id='s{i}'><query xmlns='jabber:iq:roster'><item jid='c{i}@localhost'/></query></iq>")
        alice.receive("<iq type='set' id='s9'><query xmlns='jabber:iq:roster'><item jid='c0@localhost' name='Zero'/></query></iq>")
        yield self.idle()
        replies = [e for e in alice.link.pop() if e["id"].startswith("s")]
        self.assertEqual([(r["id"], r["type"]) for r in replies], [("s0", "result"), ("s1", "result"), ("s2", "error"), ("s9", "result")])
        self.assertEqual((replies[2].error["type"], next(replies[2].error.elements()).name), ("cancel", "not-allowed"))
        self.assertEqual(sorted(self.roster.cachedRoster("alice@localhost")), ["c0@localhost", "c1@localhost"])

    @defer.inlineCallbacks
    def test_cachedRoster(self):
        """cachedRoster gives the in-memory items of an online account and None for an offline one."""
        yield self.seed("alice@localhost", [RosterItem("bob@localhost", "Bob", "from", groups=("G",))])
        self.assertIsNone(self.roster.cachedRoster("alice@localhost"))
        alice = yield self.online("alice@localhost/a", available=False)
        self.assertEqual(self.roster.cachedRoster("alice@localhost"), {"bob@localhost": RosterItem("bob@localhost", "Bob", "from", groups=("G",))})
        alice.disconnect()
        yield self.idle()
        self.assertIsNone(self.roster.cachedRoster("alice@localhost"))

    @defer.inlineCallbacks
    def test_rosterStaysLoadedWhileAnySessionIsBound(self):
        """The roster stays in memory until the account's last session ends."""
        a = yield self.online("alice@localhost/a", available=False)
        b = yield self.online("alice@localhost/b", available=False)
        a.disconnect()
        yield self.idle()
        self.assertEqual(self.roster.cachedRoster("alice@localhost"), {})
        b.disconnect()
        yield self.idle()
        self.assertIsNone(self.roster.cachedRoster("alice@localhost"))

    @defer.inlineCallbacks
    def test_storeFailure(self):
        """While the roster cannot be loaded a roster get gets internal-server-error; once the store is back the next one loads it."""
        real = self.server.store.runInteraction
        down = [True]

        def failing(desc, *args, **kw):
            if desc == "load_roster" and down[0]:
                return defer.fail(RuntimeError("database down"))
            return real(desc, *args, **kw)

        self.server.store.runInteraction = failing
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        reply = alice.link.popOne()
        self.assertEqual((reply["id"], next(reply.error.elements()).name), ("r1", "internal-server-error"))
        down[0] = False
        alice.receive("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r2' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'/></iq>")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    @defer.inlineCallbacks
    def test_persistsAcrossRestart(self):
        """Items, names, groups and the roster version survive a restart of the server."""
        alice = yield self.online("alice@localhost/a", available=False)
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>A</group><group>B</group></item></query></iq>")
        alice.receive("<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>")
        alice.receive("<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' subscription='remove'/></query></iq>")
        yield self.idle()
        ver = self.ver("alice@localhost")
        yield self.restart()
        alice = self.bind("alice@localhost/a")
        alice.receive(f"<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>")
        alice.receive("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/a'/>",
                            "<iq type='result' id='r2' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob' subscription='none'><group>A</group><group>B</group></item></query></iq>")


class RosterVersioningTests(RosterTestMixin, unittest.TestCase):
    """RFC 6121 §2.6: 'ver' in results and pushes, empty results and pushes of the changes."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster("alice@localhost")
        yield self.seed("alice@localhost", [RosterItem("a@localhost"), RosterItem("b@localhost")], version=2, epoch="e1")

    @defer.inlineCallbacks
    def test_emptyVerGetsFullRosterWithVer(self):
        """A client with no cached roster (ver='') gets the whole roster and the current version."""
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='e1-2'>"
                            "<item jid='a@localhost' subscription='none'/><item jid='b@localhost' subscription='none'/></query></iq>")

    @defer.inlineCallbacks
    def test_currentVerGetsEmptyResult(self):
        """A client whose version is current gets an empty result and no pushes."""
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='e1-2'/></iq>")
        yield self.idle()
        self.assertReceived(alice, "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/a'/>")

    @defer.inlineCallbacks
    def test_olderVerGetsChangesAsPushes(self):
        """A client with an older version gets an empty result, then one push per change (removals too), oldest first, each with its version."""
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r0'><query xmlns='jabber:iq:roster' ver=''/></iq>")
        alice.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='c@localhost' name='C'/></query></iq>")
        alice.receive("<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='a@localhost' subscription='remove'/></query></iq>")
        alice.receive("<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='b@localhost' name='B'/></query></iq>")
        yield self.idle()
        alice.link.pop()
        other = self.bind("alice@localhost/b")
        other.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='e1-3'/></iq>")
        yield self.idle()
        self.assertReceived(other,
                            "<iq type='result' id='r1' from='alice@localhost' to='alice@localhost/b'/>",
                            "<iq type='set' id='*' to='alice@localhost/b'><query xmlns='jabber:iq:roster' ver='e1-4'><item jid='a@localhost' subscription='remove'/></query></iq>",
                            "<iq type='set' id='*' to='alice@localhost/b'><query xmlns='jabber:iq:roster' ver='e1-5'><item jid='b@localhost' name='B' subscription='none'/></query></iq>")

    @defer.inlineCallbacks
    def test_pushesCarryVerOnlyForVersioningClients(self):
        """Pushes carry 'ver' to a resource that asked with 'ver', and not to one that did not."""
        v = self.bind("alice@localhost/v")
        v.receive("<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='e1-2'/></iq>")
        plain = self.bind("alice@localhost/p")
        plain.receive("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        yield self.idle()
        v.link.pop()
        plain.link.pop()
        v.receive("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='c@localhost'/></query></iq>")
        yield self.idle()
        self.assertReceived(v, "<iq type='result' id='s1' from='alice@localhost' to='alice@localhost/v'/>",
                            "<iq type='set' id='*' to='alice@localhost/v'><query xmlns='jabber:iq:roster' ver='e1-3'><item jid='c@localhost' subscription='none'/></query></iq>")
        self.assertReceived(plain, "<iq type='set' id='*' to='alice@localhost/p'><query xmlns='jabber:iq:roster'><item jid='c@localhost' subscription='none'/></query></iq>")

    @defer.inlineCallbacks
    def test_unknownVerGetsFullRoster(self):
        """A version from another epoch, a future one or garbage gets the whole roster."""
        alice = self.bind("alice@localhost/a")
        for i, ver in enumerate(["other-1", "e1-99", "junk"]):
            alice.receive(f"<iq type='get' id='r{i}'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>")
        yield self.idle()
        replies = alice.link.pop()
        self.assertEqual([r.query["ver"] for r in replies], ["e1-2"] * 3)
        self.assertEqual([len(list(r.query.elements())) for r in replies], [2, 2, 2])

    @defer.inlineCallbacks
    def test_prunedTombstonesFallBackToFullRoster(self):
        """When removals older than a client's version were forgotten (the tombstone bound), it gets the whole roster."""
        yield self.server.stopService()
        yield self.startRoster("alice@localhost", limits={"max_roster_size": 1})
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r0'><query xmlns='jabber:iq:roster' ver=''/></iq>")
        yield self.idle()
        start = alice.link.pop()[0].query["ver"]
        for i, jid in enumerate(["x@localhost", "y@localhost"]):
            alice.receive(f"<iq type='set' id='a{i}'><query xmlns='jabber:iq:roster'><item jid='{jid}'/></query></iq>")
            alice.receive(f"<iq type='set' id='d{i}'><query xmlns='jabber:iq:roster'><item jid='{jid}' subscription='remove'/></query></iq>")
        yield self.idle()
        alice.link.pop()
        alice.receive(f"<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='{start}'/></iq>")
        yield self.idle()
        reply = alice.link.popOne()
        self.assertEqual((reply["type"], reply.query["ver"], list(reply.query.elements())), ("result", self.ver("alice@localhost"), []))
