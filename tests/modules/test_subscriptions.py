"""
Presence subscriptions (RFC 6121 §3): every row of the Appendix A tables,
outbound (A.2) and inbound (A.3), pre-approvals (§3.4), pending requests
(§3.1.3), the whole handshake between two local accounts, and persistence.

The table tests put Alice's roster in the row's state for a contact on a
captured domain (remote.example, registered on the Router), so the exact
stanzas the server routes for her, and those it delivers to her, can be
checked one row at a time.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd.store.roster import RosterItem
from tests.fakes import element
from tests.modules.test_roster import RosterTestMixin

ALICE = "alice@localhost"
CAROL = "carol@remote.example"

#: Appendix A.1: state name -> (subscription, pending out (ask), pending in).
STATES = {
    "None": ("none", False, False),
    "None + Pending Out": ("none", True, False),
    "None + Pending In": ("none", False, True),
    "None + Pending Out+In": ("none", True, True),
    "To": ("to", False, False),
    "To + Pending In": ("to", False, True),
    "From": ("from", False, False),
    "From + Pending Out": ("from", True, False),
    "Both": ("both", False, False),
}

PRE = "pre-approved"  # the new state of a pre-approval: unchanged, plus approved='true'

#: Appendix A.2 (outbound): type -> [(existing state, routed?, new state or None for no change)].
OUTBOUND = {
    "subscribe": [
        ("None", True, "None + Pending Out"),
        ("None + Pending Out", True, None),
        ("None + Pending In", True, "None + Pending Out+In"),
        ("None + Pending Out+In", True, None),
        ("To", True, None),
        ("To + Pending In", True, None),
        ("From", True, "From + Pending Out"),
        ("From + Pending Out", True, None),
        ("Both", True, None),
    ],
    "unsubscribe": [
        ("None", True, None),
        ("None + Pending Out", True, "None"),
        ("None + Pending In", True, None),
        ("None + Pending Out+In", True, "None + Pending In"),
        ("To", True, "None"),
        ("To + Pending In", True, "None + Pending In"),
        ("From", True, None),
        ("From + Pending Out", True, "From"),
        ("Both", True, "From"),
    ],
    "subscribed": [
        ("None", False, PRE),
        ("None + Pending Out", False, PRE),
        ("None + Pending In", True, "From"),
        ("None + Pending Out+In", True, "From + Pending Out"),
        ("To", False, PRE),
        ("To + Pending In", True, "Both"),
        ("From", False, None),
        ("From + Pending Out", False, None),
        ("Both", False, None),
    ],
    "unsubscribed": [
        ("None", False, None),
        ("None + Pending Out", False, None),
        ("None + Pending In", True, "None"),
        ("None + Pending Out+In", True, "None + Pending Out"),
        ("To", False, None),
        ("To + Pending In", True, "To"),
        ("From", True, "None"),
        ("From + Pending Out", True, "None + Pending Out"),
        ("Both", True, "To"),
    ],
}

#: Appendix A.3 (inbound): type -> [(existing state, delivered?, new state or None)].
INBOUND = {
    "subscribe": [
        ("None", True, "None + Pending In"),
        ("None + Pending Out", True, "None + Pending Out+In"),
        ("None + Pending In", False, None),
        ("None + Pending Out+In", False, None),
        ("To", True, "To + Pending In"),
        ("To + Pending In", False, None),
        ("From", False, None),  # auto-reply "subscribed"
        ("From + Pending Out", False, None),
        ("Both", False, None),
    ],
    "unsubscribe": [
        ("None", False, None),
        ("None + Pending Out", False, None),
        ("None + Pending In", True, "None"),
        ("None + Pending Out+In", True, "None + Pending Out"),
        ("To", False, None),
        ("To + Pending In", True, "To"),
        ("From", True, "None"),
        ("From + Pending Out", True, "None + Pending Out"),
        ("Both", True, "To"),
    ],
    "subscribed": [
        ("None", False, None),
        ("None + Pending Out", True, "To"),
        ("None + Pending In", False, None),
        ("None + Pending Out+In", True, "To + Pending In"),
        ("To", False, None),
        ("To + Pending In", False, None),
        ("From", False, None),
        ("From + Pending Out", True, "Both"),
        ("Both", False, None),
    ],
    "unsubscribed": [
        ("None", False, None),
        ("None + Pending Out", True, "None"),
        ("None + Pending In", False, None),
        ("None + Pending Out+In", True, "None + Pending In"),
        ("To", True, "None"),
        ("To + Pending In", True, "None + Pending In"),
        ("From", False, None),
        ("From + Pending Out", True, "From"),
        ("Both", True, "From"),
    ],
}


def itemXML(state: tuple[str, bool, bool], approved: bool = False, jid: str = CAROL) -> str:
    sub, ask, _ = state
    return (f"<item jid='{jid}' subscription='{sub}'" + (" ask='subscribe'" if ask else "")
            + (" approved='true'" if approved else "") + "/>")


def pushXML(to: str, state: tuple[str, bool, bool], approved: bool = False, jid: str = CAROL) -> str:
    return f"<iq type='set' id='*' to='{to}'><query xmlns='jabber:iq:roster'>{itemXML(state, approved, jid)}</query></iq>"


class TableMixin(RosterTestMixin):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE)

    @defer.inlineCallbacks
    def aliceIn(self, stateName: str, approved: bool = False):
        """Alice online (roster fetched, available) with Carol's item in C{stateName}."""
        sub, ask, pendingIn = STATES[stateName]
        yield self.seed(ALICE, [RosterItem(CAROL, None, sub, ask=ask, approved=approved)], pending=[CAROL] if pendingIn else [])
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        return alice

    def stanza(self, xml: str):
        """A stanza as another server would hand it to the Router."""
        return element(xml)

    def stateOf(self, jid: str = CAROL) -> tuple[tuple[str, bool, bool], bool]:
        """(subscription, ask, pending in), approved: from memory."""
        item = self.item(ALICE, jid)
        pendingIn = jid in self.roster._accounts[ALICE].state.pending
        if item is None:
            return ("none", False, pendingIn), False
        return (item.subscription, item.ask, pendingIn), item.approved

    @defer.inlineCallbacks
    def assertStoredMatchesMemory(self):
        state = yield self.stored(ALICE)
        memory = self.roster._accounts[ALICE].state
        self.assertEqual((state.items, sorted(state.pending), state.version), (memory.items, sorted(memory.pending), memory.version))


class OutboundTableTests(TableMixin, unittest.TestCase):
    """Appendix A.2: the user's server processing the user's own subscription stanzas."""


class InboundTableTests(TableMixin, unittest.TestCase):
    """Appendix A.3: the user's server processing subscription stanzas for the user."""


def _outboundTest(type_: str, stateName: str, routed: bool, newName: str | None):
    @defer.inlineCallbacks
    def test(self):
        alice = yield self.aliceIn(stateName)
        old = STATES[stateName]
        alice.receive(f"<presence type='{type_}' to='{CAROL}'/>")
        yield self.idle()
        expectedRouted = [f"<presence type='{type_}' from='{ALICE}' to='{CAROL}'/>"] if routed else []
        if newName is None:
            self.assertEqual(self.stateOf(), (old, False))
            self.assertReceived(alice)
        elif newName == PRE:
            self.assertEqual(self.stateOf(), (old, True))
            self.assertReceived(alice, pushXML(f"{ALICE}/a", old, approved=True))
        else:
            new = STATES[newName]
            self.assertEqual(self.stateOf(), (new, False))
            if new[:2] != old[:2]:
                self.assertReceived(alice, pushXML(f"{ALICE}/a", new))
            else:
                self.assertReceived(alice)  # only Pending In changed: not a roster attribute
            if old[0] in ("none", "to") and new[0] in ("from", "both"):
                expectedRouted.append(f"<presence from='{ALICE}/a' to='{CAROL}'/>")  # §3.1.5
            if old[0] in ("from", "both") and new[0] in ("none", "to"):
                expectedRouted.append(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")  # §3.2.2
        self.assertRouted(*expectedRouted)
        yield self.assertStoredMatchesMemory()

    change = "no state change" if newName is None else ("a pre-approval" if newName == PRE else f'"{newName}"')
    test.__doc__ = f'Outbound "{type_}" in "{stateName}": {"routed" if routed else "not routed"}, {change} (A.2).'
    return test


def _inboundTest(type_: str, stateName: str, delivered: bool, newName: str | None):
    @defer.inlineCallbacks
    def test(self):
        alice = yield self.aliceIn(stateName)
        old = STATES[stateName]
        self.server.router.route(self.stanza(f"<presence type='{type_}' from='{CAROL}/phone' to='{ALICE}'/>"))
        yield self.idle()
        expectedAlice = [f"<presence type='{type_}' from='{CAROL}' to='{ALICE}'/>"] if delivered else []
        expectedRouted = []
        new = old if newName is None else STATES[newName]
        self.assertEqual(self.stateOf(), (new, False))
        if new[:2] != old[:2]:
            expectedAlice.append(pushXML(f"{ALICE}/a", new))
        if type_ == "subscribe" and old[0] in ("from", "both"):
            expectedRouted += [f"<presence type='subscribed' from='{ALICE}' to='{CAROL}'/>", f"<presence from='{ALICE}/a' to='{CAROL}'/>"]
        if old[0] in ("from", "both") and new[0] in ("none", "to"):
            expectedRouted.append(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")  # §3.3.3
        self.assertReceived(alice, *expectedAlice)
        self.assertRouted(*expectedRouted)
        yield self.assertStoredMatchesMemory()

    change = "no state change" if newName is None else f'"{newName}"'
    auto = ', auto-reply "subscribed"' if type_ == "subscribe" and stateName in ("From", "From + Pending Out", "Both") else ""
    test.__doc__ = f'Inbound "{type_}" in "{stateName}": {"delivered" if delivered else "not delivered"}, {change}{auto} (A.3).'
    return test


def _name(type_: str, stateName: str) -> str:
    return "test_" + type_ + "_" + stateName.replace(" + ", "_").replace("+", "_").replace(" ", "_")


for _type, _rows in OUTBOUND.items():
    for _state, _flag, _new in _rows:
        setattr(OutboundTableTests, _name(_type, _state), _outboundTest(_type, _state, _flag, _new))
for _type, _rows in INBOUND.items():
    for _state, _flag, _new in _rows:
        setattr(InboundTableTests, _name(_type, _state), _inboundTest(_type, _state, _flag, _new))


class SubscriptionRuleTests(TableMixin, unittest.TestCase):
    """The rules around the tables: item creation, stamping, pre-approval, unknown accounts, pending requests."""

    @defer.inlineCallbacks
    def test_subscribeCreatesItem(self):
        """A subscribe to a contact not in the roster adds it as "None + Pending Out" and pushes it (§3.1.2)."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive(f"<presence type='subscribe' to='{CAROL}' id='s1'><status>hi</status></presence>")
        yield self.idle()
        self.assertRouted(f"<presence type='subscribe' id='s1' from='{ALICE}' to='{CAROL}'><status>hi</status></presence>")
        self.assertReceived(alice, pushXML(f"{ALICE}/a", ("none", True, False)))

    @defer.inlineCallbacks
    def test_stampedWithBareJIDs(self):
        """Outbound subscription stanzas go from the bare JID to the bare JID, even when sent to a full JID (§3.1.2)."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive(f"<presence type='subscribe' from='{ALICE}/a' to='{CAROL}/laptop'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='subscribe' from='{ALICE}' to='{CAROL}'/>")
        self.assertEqual(sorted(self.roster.cachedRoster(ALICE)), [CAROL])

    @defer.inlineCallbacks
    def test_subscribeWhenRosterFull(self):
        """A subscribe that would add a roster item beyond the limit is refused with not-allowed and not routed."""
        yield self.server.stopService()
        yield self.startRoster(ALICE, limits={"max_roster_size": 1})
        yield self.seed(ALICE, [RosterItem("x@remote.example")])
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive(f"<presence type='subscribe' to='{CAROL}'/>")
        yield self.idle()
        self.assertRouted()
        reply = alice.link.popOne()
        self.assertEqual((reply["type"], reply["from"], next(reply.error.elements()).name), ("error", CAROL, "not-allowed"))

    @defer.inlineCallbacks
    def test_preApprovalCreatesItem(self):
        """A "subscribed" to a contact not in the roster pre-approves it: a "None" item with approved='true', not routed (§3.4)."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive(f"<presence type='subscribed' to='{CAROL}'/>")
        yield self.idle()
        self.assertRouted()
        self.assertReceived(alice, pushXML(f"{ALICE}/a", ("none", False, False), approved=True))
        yield self.assertStoredMatchesMemory()

    @defer.inlineCallbacks
    def test_preApprovedSubscribeIsApprovedAutomatically(self):
        """An inbound subscribe from a pre-approved contact is approved without asking the user (§3.4)."""
        alice = yield self.aliceIn("None", approved=True)
        self.server.router.route(self.stanza(f"<presence type='subscribe' from='{CAROL}' to='{ALICE}'/>"))
        yield self.idle()
        self.assertReceived(alice, pushXML(f"{ALICE}/a", ("from", False, False)))
        self.assertRouted(f"<presence type='subscribed' from='{ALICE}' to='{CAROL}'/>", f"<presence from='{ALICE}/a' to='{CAROL}'/>")
        self.assertEqual(self.stateOf(), (("from", False, False), False))

    @defer.inlineCallbacks
    def test_preApprovedToBecomesBoth(self):
        """A pre-approved contact we already see ("To") subscribing becomes "Both"."""
        alice = yield self.aliceIn("To", approved=True)
        self.server.router.route(self.stanza(f"<presence type='subscribe' from='{CAROL}' to='{ALICE}'/>"))
        yield self.idle()
        self.assertReceived(alice, pushXML(f"{ALICE}/a", ("both", False, False)))
        self.assertEqual(self.stateOf(), (("both", False, False), False))

    @defer.inlineCallbacks
    def test_unsubscribedCancelsPreApproval(self):
        """An outbound "unsubscribed" cancels a pre-approval and is not routed."""
        alice = yield self.aliceIn("None + Pending Out", approved=True)
        alice.receive(f"<presence type='unsubscribed' to='{CAROL}'/>")
        yield self.idle()
        self.assertRouted()
        self.assertReceived(alice, pushXML(f"{ALICE}/a", ("none", True, False)))
        self.assertEqual(self.stateOf(), (("none", True, False), False))

    @defer.inlineCallbacks
    def test_inboundUnsubscribedKeepsPreApproval(self):
        """An inbound "unsubscribed" does not cancel a pre-approval (§4.3.2)."""
        alice = yield self.aliceIn("To", approved=True)
        self.server.router.route(self.stanza(f"<presence type='unsubscribed' from='{CAROL}' to='{ALICE}'/>"))
        yield self.idle()
        self.assertEqual(self.stateOf(), (("none", False, False), True))
        alice.link.pop()

    @defer.inlineCallbacks
    def test_repeatedPreApprovalIsIgnored(self):
        """A second "subscribed" to an already pre-approved contact changes nothing."""
        alice = yield self.aliceIn("None", approved=True)
        alice.receive(f"<presence type='subscribed' to='{CAROL}'/>")
        yield self.idle()
        self.assertRouted()
        self.assertReceived(alice)

    @defer.inlineCallbacks
    def test_subscribeFromStrangerAddsNoItem(self):
        """A request from someone not in the roster is delivered and remembered as Pending In, without a roster item or push."""
        alice = yield self.online(f"{ALICE}/a")
        self.server.router.route(self.stanza(f"<presence type='subscribe' from='{CAROL}' to='{ALICE}'><status>add me</status></presence>"))
        yield self.idle()
        self.assertReceived(alice, f"<presence type='subscribe' from='{CAROL}' to='{ALICE}'><status>add me</status></presence>")
        self.assertEqual(self.roster.cachedRoster(ALICE), {})
        state = yield self.stored(ALICE)
        self.assertEqual(list(state.pending), [CAROL])

    @defer.inlineCallbacks
    def test_unsubscribeWithdrawsPendingRequestOfStranger(self):
        """An inbound unsubscribe withdraws the stored request of someone not in the roster."""
        yield self.seed(ALICE, [], pending=[CAROL])
        alice = yield self.online(f"{ALICE}/a")
        self.server.router.route(self.stanza(f"<presence type='unsubscribe' from='{CAROL}' to='{ALICE}'/>"))
        yield self.idle()
        self.assertReceived(alice, f"<presence type='unsubscribe' from='{CAROL}' to='{ALICE}'/>")
        state = yield self.stored(ALICE)
        self.assertEqual(state.pending, {})

    @defer.inlineCallbacks
    def test_approvingStrangerCreatesFromItem(self):
        """Approving a request from someone not in the roster adds them with subscription 'from' (§3.1.5)."""
        yield self.seed(ALICE, [], pending=[CAROL])
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive(f"<presence type='subscribed' to='{CAROL}'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='subscribed' from='{ALICE}' to='{CAROL}'/>", f"<presence from='{ALICE}/a' to='{CAROL}'/>")
        self.assertReceived(alice, pushXML(f"{ALICE}/a", ("from", False, False)))

    @defer.inlineCallbacks
    def test_subscribeToUnknownAccount(self):
        """A subscription request to an account that does not exist is answered with "unsubscribed" (§8.5.1)."""
        self.server.router.route(self.stanza(f"<presence type='subscribe' from='{CAROL}' to='nobody@localhost'/>"))
        self.server.router.route(self.stanza(f"<presence type='subscribed' from='{CAROL}' to='nobody@localhost'/>"))
        yield self.idle()
        self.assertRouted(f"<presence type='unsubscribed' from='nobody@localhost' to='{CAROL}'/>")
        self.assertNotIn("nobody@localhost", self.roster._accounts)

    @defer.inlineCallbacks
    def test_subscriptionToFullJIDIsForTheAccount(self):
        """A subscription stanza addressed to a full JID is processed as if sent to the bare JID (§8.5.3.2)."""
        alice = yield self.aliceIn("None + Pending Out")
        self.server.router.route(self.stanza(f"<presence type='subscribed' from='{CAROL}' to='{ALICE}/a'/>"))
        yield self.idle()
        self.assertReceived(alice, f"<presence type='subscribed' from='{CAROL}' to='{ALICE}'/>", pushXML(f"{ALICE}/a", ("to", False, False)))

    @defer.inlineCallbacks
    def test_requestForOfflineUserIsStoredAndDeliveredAtLogin(self):
        """A request for an offline user is stored, and delivered at each initial presence until answered, also after a restart (§3.1.3)."""
        self.server.router.route(self.stanza(f"<presence type='subscribe' from='{CAROL}' to='{ALICE}'><status>it is me</status></presence>"))
        yield self.idle()
        self.assertNotIn(ALICE, self.roster._accounts)
        yield self.restart()
        alice = self.bind(f"{ALICE}/a")
        yield self.idle()
        self.assertReceived(alice)
        alice.receive("<presence/>")
        yield self.idle()
        request = f"<presence type='subscribe' from='{CAROL}' to='{ALICE}'><status>it is me</status></presence>"
        self.assertReceived(alice, f"<presence from='{ALICE}/a' to='{ALICE}/a'/>", request)
        other = yield self.online(f"{ALICE}/b", getRoster=False, available=False)
        other.receive("<presence/>")
        yield self.idle()
        self.assertReceived(other, f"<presence from='{ALICE}/b' to='{ALICE}/b'/>", f"<presence from='{ALICE}/a' to='{ALICE}/b'/>", request)
        other.receive(f"<presence type='unsubscribed' to='{CAROL}'/>")
        yield self.idle()
        third = self.bind(f"{ALICE}/c")
        yield self.idle()
        third.receive("<presence/>")
        yield self.idle()
        self.assertNotIn("subscribe", [e.getAttribute("type") for e in third.link.pop()])

    @defer.inlineCallbacks
    def test_pendingRequestsAreBounded(self):
        """Beyond a roster's worth of unanswered requests, further ones are dropped."""
        yield self.server.stopService()
        yield self.startRoster(ALICE, limits={"max_roster_size": 2})
        alice = yield self.online(f"{ALICE}/a")
        for name in ("c1", "c2", "c3"):
            self.server.router.route(self.stanza(f"<presence type='subscribe' from='{name}@remote.example' to='{ALICE}'/>"))
        yield self.idle()
        self.assertEqual([e["from"] for e in alice.link.pop()], ["c1@remote.example", "c2@remote.example"])

    @defer.inlineCallbacks
    def test_accountDeletionCancelsSubscriptions(self):
        """When an online account is deleted its contacts get unavailable, unsubscribe and unsubscribed, and pending requesters a denial."""
        from jabberd import bus as B

        yield self.seed(ALICE, [RosterItem(CAROL, None, "both"), RosterItem("dave@remote.example", None, "none", ask=True)], pending=["eve@remote.example"])
        yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        yield self.server.accounts.delete("localhost", "alice")
        self.server.bus.notify(B.ACCOUNT_DELETED, "localhost", "alice")
        yield self.idle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>",
                          f"<presence type='unsubscribe' from='{ALICE}' to='{CAROL}'/>",
                          f"<presence type='unsubscribed' from='{ALICE}' to='{CAROL}'/>",
                          f"<presence type='unsubscribe' from='{ALICE}' to='dave@remote.example'/>",
                          f"<presence type='unsubscribed' from='{ALICE}' to='eve@remote.example'/>")
        self.assertIsNone(self.roster.cachedRoster(ALICE))

    @defer.inlineCallbacks
    def test_statesSurviveRestart(self):
        """Subscription states, pre-approvals and pending requests are read back after a restart."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive(f"<presence type='subscribe' to='{CAROL}'/>")
        alice.receive("<presence type='subscribed' to='dave@remote.example'/>")
        self.server.router.route(self.stanza(f"<presence type='subscribe' from='eve@remote.example' to='{ALICE}'/>"))
        self.server.router.route(self.stanza(f"<presence type='subscribed' from='{CAROL}' to='{ALICE}'/>"))
        yield self.idle()
        yield self.restart()
        state = yield self.stored(ALICE)
        self.assertEqual(state.items, {
            CAROL: RosterItem(CAROL, None, "to"),
            "dave@remote.example": RosterItem("dave@remote.example", None, "none", approved=True),
        })
        self.assertEqual(list(state.pending), ["eve@remote.example"])


class LocalHandshakeTests(RosterTestMixin, unittest.TestCase):
    """Two local accounts going through §3 from nothing to a mutual subscription, and back."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster("alice@localhost", "bob@localhost")

    @defer.inlineCallbacks
    def test_mutualSubscription(self):
        """Alice subscribes to Bob, Bob approves and subscribes back: both see each other's presence, with the exact stanzas each receives."""
        alice = yield self.online("alice@localhost/a", presence="<presence><show>chat</show></presence>")
        bob = yield self.online("bob@localhost/b", presence="<presence><status>building</status></presence>")
        alice.receive("<presence type='subscribe' to='bob@localhost'/>")
        yield self.idle()
        self.assertReceived(bob, "<presence type='subscribe' from='alice@localhost' to='bob@localhost'/>")
        self.assertReceived(alice, pushXML("alice@localhost/a", ("none", True, False), jid="bob@localhost"))

        bob.receive("<presence type='subscribed' to='alice@localhost'/>")
        yield self.idle()
        self.assertReceived(alice,
                            "<presence type='subscribed' from='bob@localhost' to='alice@localhost'/>",
                            pushXML("alice@localhost/a", ("to", False, False), jid="bob@localhost"),
                            "<presence from='bob@localhost/b' to='alice@localhost'><status>building</status></presence>")
        self.assertReceived(bob, pushXML("bob@localhost/b", ("from", False, False), jid="alice@localhost"))

        bob.receive("<presence type='subscribe' to='alice@localhost'/>")
        yield self.idle()
        self.assertReceived(alice, "<presence type='subscribe' from='bob@localhost' to='alice@localhost'/>")
        self.assertReceived(bob, pushXML("bob@localhost/b", ("from", True, False), jid="alice@localhost"))
        alice.receive("<presence type='subscribed' to='bob@localhost'/>")
        yield self.idle()
        self.assertReceived(bob,
                            "<presence type='subscribed' from='alice@localhost' to='bob@localhost'/>",
                            pushXML("bob@localhost/b", ("both", False, False), jid="alice@localhost"),
                            "<presence from='alice@localhost/a' to='bob@localhost'><show>chat</show></presence>")
        self.assertReceived(alice, pushXML("alice@localhost/a", ("both", False, False), jid="bob@localhost"))
        self.assertEqual(self.item("alice@localhost", "bob@localhost").subscription, "both")
        self.assertEqual(self.item("bob@localhost", "alice@localhost").subscription, "both")

        # Now presence flows both ways.
        alice.receive("<presence><show>away</show></presence>")
        yield self.idle()
        self.assertReceived(bob, "<presence from='alice@localhost/a' to='bob@localhost'><show>away</show></presence>")
        self.assertReceived(alice, "<presence from='alice@localhost/a' to='alice@localhost/a'><show>away</show></presence>")

        # Bob cancels Alice's subscription: she sees him go offline.
        bob.receive("<presence type='unsubscribed' to='alice@localhost'/>")
        yield self.idle()
        self.assertReceived(alice,
                            "<presence type='unsubscribed' from='bob@localhost' to='alice@localhost'/>",
                            pushXML("alice@localhost/a", ("from", False, False), jid="bob@localhost"),
                            "<presence type='unavailable' from='bob@localhost/b' to='alice@localhost'/>")
        self.assertReceived(bob, pushXML("bob@localhost/b", ("to", False, False), jid="alice@localhost"))

        # Alice cancels Bob's subscription in turn: nothing is left either way.
        alice.receive("<presence type='unsubscribed' to='bob@localhost'/>")
        yield self.idle()
        self.assertReceived(bob,
                            "<presence type='unsubscribed' from='alice@localhost' to='bob@localhost'/>",
                            pushXML("bob@localhost/b", ("none", False, False), jid="alice@localhost"),
                            "<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'/>")
        self.assertReceived(alice, pushXML("alice@localhost/a", ("none", False, False), jid="bob@localhost"))
        self.assertEqual(self.item("alice@localhost", "bob@localhost").subscription, "none")
        self.assertEqual(self.item("bob@localhost", "alice@localhost").subscription, "none")

    @defer.inlineCallbacks
    def test_subscribeToNonexistentLocalAccount(self):
        """A request to a local account that does not exist comes back as "unsubscribed", which clears the pending request."""
        alice = yield self.online("alice@localhost/a")
        alice.receive("<presence type='subscribe' to='nobody@localhost'/>")
        yield self.idle()
        self.assertReceived(alice,
                            pushXML("alice@localhost/a", ("none", True, False), jid="nobody@localhost"),
                            "<presence type='unsubscribed' from='nobody@localhost' to='alice@localhost'/>",
                            pushXML("alice@localhost/a", ("none", False, False), jid="nobody@localhost"))

    @defer.inlineCallbacks
    def test_approvalWhileRequesterOffline(self):
        """Bob approves Alice's request while she is offline; her roster says 'to' when she comes back and she sees Bob."""
        alice = yield self.online("alice@localhost/a")
        alice.receive("<presence type='subscribe' to='bob@localhost'/>")
        yield self.idle()
        alice.disconnect()
        yield self.idle()
        bob = yield self.online("bob@localhost/b", available=False)
        bob.receive("<presence/>")
        yield self.idle()
        self.assertReceived(bob, "<presence from='bob@localhost/b' to='bob@localhost/b'/>",
                            "<presence type='subscribe' from='alice@localhost' to='bob@localhost'/>")
        bob.receive("<presence type='subscribed' to='alice@localhost'/>")
        yield self.idle()
        self.assertNotIn("alice@localhost", self.roster._accounts)
        alice = self.bind("alice@localhost/a")
        alice.receive("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        alice.receive("<presence/>")
        yield self.idle()
        self.assertReceived(alice,
                            "<iq type='result' id='r' from='alice@localhost' to='alice@localhost/a'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='to'/></query></iq>",
                            "<presence from='alice@localhost/a' to='alice@localhost/a'/>",
                            "<presence from='bob@localhost/b' to='alice@localhost'/>")
