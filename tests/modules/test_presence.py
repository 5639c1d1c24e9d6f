"""
The presence module (RFC 6121 §4): initial presence (broadcast, probes, the
user's own resources), updates, unavailable (explicit and implied by a lost
session), directed presence, probes answered for local accounts, priority,
inbound delivery rules (§8.5.2) and errors.

Alice's roster: Bob (local, 'both'), Carol (remote, 'from'), Dave (remote,
'to'), Eve (remote, 'none').  The remote contacts live on a captured domain
so what the server routes to them can be checked exactly.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from jabberd import bus as B
from jabberd.store.roster import RosterItem
from tests.fakes import element
from tests.modules.test_roster import RosterTestMixin

ALICE, BOB = "alice@localhost", "bob@localhost"
CAROL, DAVE, EVE = "carol@remote.example", "dave@remote.example", "eve@remote.example"


class PresenceTestMixin(RosterTestMixin):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startRoster(ALICE, BOB, "zed@localhost")
        yield self.seed(ALICE, [
            RosterItem(BOB, "Bob", "both"),
            RosterItem(CAROL, None, "from"),
            RosterItem(DAVE, None, "to"),
            RosterItem(EVE, None, "none"),
        ])
        yield self.seed(BOB, [RosterItem(ALICE, "Alice", "both")])
        self.available: list = []
        self.server.bus.on(B.PRESENCE_AVAILABLE, self.available.append)

    def route(self, xml: str) -> None:
        """Hand the Router a stanza as another server would."""
        self.server.router.route(element(xml))


class InitialPresenceTests(PresenceTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_initialPresence(self):
        """Initial presence goes to 'from'/'both' contacts and to the user, probes go to 'to'/'both' contacts, and an online contact's presence comes back (§4.2, §4.3)."""
        bob = yield self.online(f"{BOB}/b", presence="<presence><show>dnd</show></presence>")
        alice = yield self.online(f"{ALICE}/a", available=False)
        self.captured[:] = []
        alice.receive("<presence><priority>5</priority><status>hello</status></presence>")
        yield self.idle()
        self.assertRouted(
            f"<presence from='{ALICE}/a' to='{CAROL}'><priority>5</priority><status>hello</status></presence>",
            f"<presence type='probe' from='{ALICE}' to='{DAVE}'/>",
        )
        self.assertReceived(bob, f"<presence from='{ALICE}/a' to='{BOB}'><priority>5</priority><status>hello</status></presence>")
        self.assertReceived(alice,
                            f"<presence from='{ALICE}/a' to='{ALICE}/a'><priority>5</priority><status>hello</status></presence>",
                            f"<presence from='{BOB}/b' to='{ALICE}'><show>dnd</show></presence>")
        self.assertEqual((alice.available, alice.priority, alice.interested), (True, 5, True))
        self.assertEqual(alice.presence["from"], f"{ALICE}/a")
        self.assertEqual(self.available, [bob, alice])

    @defer.inlineCallbacks
    def test_initialPresenceBeforeRosterLoaded(self):
        """Initial presence sent right after binding waits for the roster and is then broadcast."""
        bob = yield self.online(f"{BOB}/b")
        alice = self.bind(f"{ALICE}/a")
        alice.receive("<presence/>")
        self.assertFalse(alice.available)
        yield self.idle()
        self.assertTrue(alice.available)
        self.assertReceived(bob, f"<presence from='{ALICE}/a' to='{BOB}'/>")

    @defer.inlineCallbacks
    def test_sessionGoneBeforeRosterLoaded(self):
        """A session that sends initial presence and vanishes before its roster is loaded is never announced."""
        bob = yield self.online(f"{BOB}/b")
        alice = self.bind(f"{ALICE}/a")
        alice.receive("<presence/>")
        alice.disconnect()
        yield self.idle()
        self.assertReceived(bob)
        self.assertEqual(self.available, [bob])

    @defer.inlineCallbacks
    def test_interestedWithoutRosterRequest(self):
        """Initial presence makes the resource interested (it gets roster pushes) even without a roster get."""
        alice = yield self.online(f"{ALICE}/a", getRoster=False)
        self.assertTrue(alice.interested)
        alice.receive("<iq type='set' id='s'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/></query></iq>")
        yield self.idle()
        self.assertEqual([e.name for e in alice.link.pop()], ["iq", "iq"])

    @defer.inlineCallbacks
    def test_ownResources(self):
        """A new resource's presence goes to the other available resources, and it receives theirs (§4.2.2)."""
        a = yield self.online(f"{ALICE}/a", presence="<presence><show>away</show></presence>")
        c = yield self.online(f"{ALICE}/c", available=False)
        b = yield self.online(f"{ALICE}/b", available=False)
        b.receive("<presence/>")
        yield self.idle()
        # The probe for offline Bob goes from the bare JID (§4.3.1): every resource gets the answer.
        bobOffline = f"<presence type='unavailable' from='{BOB}' to='{ALICE}'/>"
        self.assertReceived(a, f"<presence from='{ALICE}/b' to='{ALICE}/a'/>", bobOffline)
        self.assertReceived(b, f"<presence from='{ALICE}/b' to='{ALICE}/b'/>", bobOffline, f"<presence from='{ALICE}/a' to='{ALICE}/b'><show>away</show></presence>")
        self.assertReceived(c)

    @defer.inlineCallbacks
    def test_presenceAvailableFiredOncePerSession(self):
        """PRESENCE_AVAILABLE fires on a session's first available presence only, not on updates or after unavailable."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence><show>away</show></presence>")
        alice.receive("<presence type='unavailable'/>")
        alice.receive("<presence/>")
        yield self.idle()
        self.assertEqual(self.available, [alice])

    @defer.inlineCallbacks
    def test_availableAgainAfterUnavailableProbesAgain(self):
        """Available presence after unavailable is initial presence again: contacts are probed again."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence type='unavailable'/>")
        yield self.idle()
        self.captured[:] = []
        alice.receive("<presence/>")
        yield self.idle()
        self.assertRouted(f"<presence from='{ALICE}/a' to='{CAROL}'/>", f"<presence type='probe' from='{ALICE}' to='{DAVE}'/>")


class PriorityTests(PresenceTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def check(self, xml: str, expected: int):
        alice = yield self.online(f"{ALICE}/a", presence=xml)
        self.assertEqual(alice.priority, expected)

    def test_default(self):
        """Without <priority/> the priority is 0."""
        return self.check("<presence/>", 0)

    def test_negative(self):
        """A negative priority is kept."""
        return self.check("<presence><priority>-3</priority></presence>", -3)

    def test_clamped(self):
        """A priority outside -128..127 is clamped."""
        return self.check("<presence><priority>1000</priority></presence>", 127)

    def test_clampedLow(self):
        """A priority below -128 is clamped to -128."""
        return self.check("<presence><priority>-1000</priority></presence>", -128)

    def test_invalid(self):
        """A priority that is not an integer counts as 0."""
        return self.check("<presence><priority>high</priority></presence>", 0)

    @defer.inlineCallbacks
    def test_update(self):
        """A presence update changes the priority and the stored presence, without probing again (§4.4)."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive("<presence><priority>-1</priority><show>xa</show></presence>")
        yield self.idle()
        self.assertEqual(alice.priority, -1)
        self.assertEqual(alice.presence.show.children, ["xa"])
        self.assertRouted(f"<presence from='{ALICE}/a' to='{CAROL}'><priority>-1</priority><show>xa</show></presence>")


class UnavailableTests(PresenceTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_explicitUnavailable(self):
        """Unavailable presence goes to 'from'/'both' contacts, the user's other resources and back to the sender (§4.5.2)."""
        bob = yield self.online(f"{BOB}/b")
        other = yield self.online(f"{ALICE}/o")
        alice = yield self.online(f"{ALICE}/a")
        other.link.pop()
        bob.link.pop()
        self.captured[:] = []
        alice.receive("<presence type='unavailable'><status>bye</status></presence>")
        yield self.idle()
        bye = "<status>bye</status></presence>"
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'>{bye}")
        self.assertReceived(bob, f"<presence type='unavailable' from='{ALICE}/a' to='{BOB}'>{bye}")
        self.assertReceived(other, f"<presence type='unavailable' from='{ALICE}/a' to='{ALICE}/o'>{bye}")
        self.assertReceived(alice, f"<presence type='unavailable' from='{ALICE}/a' to='{ALICE}/a'>{bye}")
        self.assertEqual((alice.available, alice.presence), (False, None))

    @defer.inlineCallbacks
    def test_sessionEndWithoutUnavailable(self):
        """A session that ends without unavailable presence is announced unavailable to contacts and the user's other resources."""
        bob = yield self.online(f"{BOB}/b")
        other = yield self.online(f"{ALICE}/o")
        alice = yield self.online(f"{ALICE}/a")
        other.link.pop()
        bob.link.pop()
        self.captured[:] = []
        alice.disconnect()
        yield self.idle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")
        self.assertReceived(bob, f"<presence type='unavailable' from='{ALICE}/a' to='{BOB}'/>")
        self.assertReceived(other, f"<presence type='unavailable' from='{ALICE}/a' to='{ALICE}/o'/>")

    @defer.inlineCallbacks
    def test_sessionEndNeverAvailable(self):
        """A session that never sent presence ends silently."""
        bob = yield self.online(f"{BOB}/b")
        alice = yield self.online(f"{ALICE}/a", available=False)
        self.captured[:] = []
        alice.disconnect()
        yield self.idle()
        self.assertRouted()
        self.assertReceived(bob)

    @defer.inlineCallbacks
    def test_unavailableWhenNotAvailable(self):
        """Unavailable presence from a resource that was not available is not broadcast."""
        bob = yield self.online(f"{BOB}/b")
        alice = yield self.online(f"{ALICE}/a", available=False)
        self.captured[:] = []
        alice.receive("<presence type='unavailable'/>")
        yield self.idle()
        self.assertRouted()
        self.assertReceived(bob)
        self.assertReceived(alice)


class DirectedPresenceTests(PresenceTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_directedPresenceIsRoutedAndTracked(self):
        """Directed available presence is routed from the full JID and its recipient remembered (§4.6)."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        alice.receive("<presence to='room@remote.example/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        yield self.idle()
        self.assertRouted(f"<presence from='{ALICE}/a' to='room@remote.example/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
        self.assertEqual(alice.directed, {"room@remote.example/Alice"})

    @defer.inlineCallbacks
    def test_directedUnavailableForgetsRecipient(self):
        """Directed unavailable presence is routed and removes the recipient from the directed set."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='room@remote.example/Alice'/>")
        alice.receive("<presence to='room@remote.example/Alice' type='unavailable'/>")
        yield self.idle()
        self.assertEqual(alice.directed, set())
        self.captured[:] = []
        alice.receive("<presence type='unavailable'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>")

    @defer.inlineCallbacks
    def test_unavailableBroadcastReachesDirectedRecipients(self):
        """Broadcast unavailable presence also goes to every directed recipient, and the set is emptied."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='room@remote.example/Alice'/>")
        alice.receive(f"<presence to='{EVE}'/>")
        yield self.idle()
        self.captured[:] = []
        alice.receive("<presence type='unavailable'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='{CAROL}'/>",
                          f"<presence type='unavailable' from='{ALICE}/a' to='{EVE}'/>",
                          f"<presence type='unavailable' from='{ALICE}/a' to='room@remote.example/Alice'/>")
        self.assertIsNone(alice.directed)

    @defer.inlineCallbacks
    def test_sessionEndReachesDirectedRecipients(self):
        """A lost session sends unavailable to its directed recipients, even one that never sent broadcast presence."""
        alice = yield self.online(f"{ALICE}/a", available=False)
        alice.receive("<presence to='room@remote.example/Alice'/>")
        yield self.idle()
        self.captured[:] = []
        alice.disconnect()
        yield self.idle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}/a' to='room@remote.example/Alice'/>")

    @defer.inlineCallbacks
    def test_directedToLocalFullJID(self):
        """Directed presence to a local full JID reaches that resource only."""
        z1 = yield self.online("zed@localhost/1")
        z2 = yield self.online("zed@localhost/2")
        z1.link.pop()
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='zed@localhost/2'><show>chat</show></presence>")
        yield self.idle()
        self.assertReceived(z2, f"<presence from='{ALICE}/a' to='zed@localhost/2'><show>chat</show></presence>")
        self.assertReceived(z1)

    @defer.inlineCallbacks
    def test_directedToLocalBareJID(self):
        """Presence to a bare JID reaches every available resource with 'to' left as the bare JID (§8.5.2.1.2)."""
        z1 = yield self.online("zed@localhost/1")
        z2 = yield self.online("zed@localhost/2")
        z3 = yield self.online("zed@localhost/3", available=False)
        z1.link.pop()
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='zed@localhost'/>")
        yield self.idle()
        self.assertReceived(z1, f"<presence from='{ALICE}/a' to='zed@localhost'/>")
        self.assertReceived(z2, f"<presence from='{ALICE}/a' to='zed@localhost'/>")
        self.assertReceived(z3)

    @defer.inlineCallbacks
    def test_presenceToOfflineAccountIgnored(self):
        """Presence to an account with no available resource, or to an unbound resource, is silently dropped (§8.5.2.2, §8.5.3.2)."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='zed@localhost'/>")
        alice.receive("<presence to='zed@localhost/none'/>")
        alice.receive("<presence to='nobody@localhost'/>")
        yield self.idle()
        self.assertReceived(alice)

    @defer.inlineCallbacks
    def test_remotePresenceToBareJID(self):
        """A contact's presence from another server reaches all available resources (§4.2.3)."""
        a = yield self.online(f"{ALICE}/a")
        b = yield self.online(f"{ALICE}/b")
        a.link.pop()
        self.route(f"<presence from='{DAVE}/x' to='{ALICE}'><show>away</show></presence>")
        self.assertReceived(a, f"<presence from='{DAVE}/x' to='{ALICE}'><show>away</show></presence>")
        self.assertReceived(b, f"<presence from='{DAVE}/x' to='{ALICE}'><show>away</show></presence>")


class ProbeTests(PresenceTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_probeAnsweredForOnlineContact(self):
        """A probe from a subscriber is answered with the last presence of each available resource (§4.3.2)."""
        b1 = yield self.online(f"{BOB}/1", presence="<presence><show>away</show></presence>")
        b2 = yield self.online(f"{BOB}/2", presence="<presence><priority>-1</priority></presence>")
        alice = yield self.online(f"{ALICE}/a", available=False)
        alice.receive("<presence/>")
        yield self.idle()
        self.assertReceived(alice,
                            f"<presence from='{ALICE}/a' to='{ALICE}/a'/>",
                            f"<presence from='{BOB}/1' to='{ALICE}'><show>away</show></presence>",
                            f"<presence from='{BOB}/2' to='{ALICE}'><priority>-1</priority></presence>")
        b1.link.pop()
        b2.link.pop()

    @defer.inlineCallbacks
    def test_probeForOfflineContactWithoutLoadingIt(self):
        """At login a local contact that is offline is answered with unavailable from the prober's roster, without loading the contact's."""
        alice = yield self.online(f"{ALICE}/a", available=False)
        alice.receive("<presence/>")
        yield self.idle()
        self.assertReceived(alice, f"<presence from='{ALICE}/a' to='{ALICE}/a'/>", f"<presence type='unavailable' from='{BOB}' to='{ALICE}'/>")
        self.assertNotIn(BOB, self.roster._accounts)

    @defer.inlineCallbacks
    def test_probeAnswerNotRepeatingBroadcast(self):
        """A contact that becomes available while a probe waits for its roster is announced to the prober once, by its own broadcast, not again by the probe answer (§4.3.2)."""
        alice = yield self.online(f"{ALICE}/a", available=False)
        bob = self.bind(f"{BOB}/b")
        bob.receive("<presence><show>away</show></presence>")  # waits for Bob's roster
        alice.receive("<presence/>")  # probes Bob, whose roster is still loading
        yield self.idle()
        self.assertReceived(alice, f"<presence from='{ALICE}/a' to='{ALICE}/a'/>",
                            f"<presence from='{BOB}/b' to='{ALICE}'><show>away</show></presence>")
        self.assertReceived(bob, f"<presence from='{BOB}/b' to='{BOB}/b'><show>away</show></presence>",
                            f"<presence from='{ALICE}/a' to='{BOB}'/>")

    @defer.inlineCallbacks
    def test_probeAnswerCarriesLastUnavailable(self):
        """For an offline contact the answer carries the status of its last unavailable presence and when it was (§4.3.2)."""
        bob = yield self.online(f"{BOB}/b")
        bob.receive("<presence type='unavailable'><status>gone fishing</status></presence>")
        yield self.idle()
        bob.disconnect()
        yield self.idle()
        alice = yield self.online(f"{ALICE}/a", available=False)
        alice.receive("<presence/>")
        yield self.idle()
        self.assertReceived(alice, f"<presence from='{ALICE}/a' to='{ALICE}/a'/>",
                            f"<presence type='unavailable' from='{BOB}' to='{ALICE}'><status>gone fishing</status><delay xmlns='urn:xmpp:delay' from='localhost' stamp='*'/></presence>")

    @defer.inlineCallbacks
    def test_probeFromRemoteSubscriberForOfflineAccount(self):
        """A probe from another server's subscriber for an offline account is answered with unavailable after reading the roster."""
        self.route(f"<presence type='probe' from='{CAROL}' to='{ALICE}'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='unavailable' from='{ALICE}' to='{CAROL}'/>")

    @defer.inlineCallbacks
    def test_probeFromNonSubscriber(self):
        """A probe from someone without a subscription ('to', 'none' or not in the roster) gets "unsubscribed", online or not (§4.3.2)."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        for who in (DAVE, EVE, "stranger@remote.example"):
            self.route(f"<presence type='probe' from='{who}' to='{ALICE}'/>")
        self.route(f"<presence type='probe' from='{DAVE}' to='{BOB}'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='unsubscribed' from='{ALICE}' to='{DAVE}'/>",
                          f"<presence type='unsubscribed' from='{ALICE}' to='{EVE}'/>",
                          f"<presence type='unsubscribed' from='{ALICE}' to='stranger@remote.example'/>",
                          f"<presence type='unsubscribed' from='{BOB}' to='{DAVE}'/>")
        self.assertReceived(alice)

    @defer.inlineCallbacks
    def test_probeToUnknownAccount(self):
        """A probe for an account that does not exist gets "unsubscribed" (§8.5.1)."""
        self.route(f"<presence type='probe' from='{CAROL}' to='nobody@localhost'/>")
        yield self.idle()
        self.assertRouted(f"<presence type='unsubscribed' from='nobody@localhost' to='{CAROL}'/>")

    @defer.inlineCallbacks
    def test_probeToFullJID(self):
        """A probe to a full JID is answered with that resource's presence, or unavailable from it."""
        yield self.online(f"{ALICE}/a", presence="<presence><show>chat</show></presence>")
        self.captured[:] = []
        self.route(f"<presence type='probe' from='{CAROL}' to='{ALICE}/a'/>")
        self.route(f"<presence type='probe' from='{CAROL}' to='{ALICE}/gone'/>")
        yield self.idle()
        self.assertRouted(f"<presence from='{ALICE}/a' to='{CAROL}'><show>chat</show></presence>",
                          f"<presence type='unavailable' from='{ALICE}/gone' to='{CAROL}'/>")

    @defer.inlineCallbacks
    def test_probeFromOwnAccountAndServer(self):
        """The account's own resources and the server itself (a hosted domain) may probe without a subscription."""
        z = yield self.online("zed@localhost/z", presence="<presence><show>chat</show></presence>")
        other = yield self.online("zed@localhost/other", available=False)
        z.link.pop()
        atHost = []
        self.server.bus.on(B.presence("host"), lambda s, f, t: atHost.append(s) or True)
        self.route("<presence type='probe' from='zed@localhost/other' to='zed@localhost'/>")
        self.route("<presence type='probe' from='localhost' to='zed@localhost'/>")
        yield self.idle()
        self.assertReceived(other, "<presence from='zed@localhost/z' to='zed@localhost/other'><show>chat</show></presence>")
        self.assertStanzas(atHost, "<presence from='zed@localhost/z' to='localhost'><show>chat</show></presence>")


class PresenceErrorTests(PresenceTestMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_unknownTypeIsBadRequest(self):
        """Presence with a type RFC 6121 does not define gets bad-request, broadcast or directed."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence type='invisible'/>")
        alice.receive(f"<presence type='invisible' to='{BOB}'/>")
        yield self.idle()
        replies = alice.link.pop()
        self.assertEqual([(r["type"], next(r.error.elements()).name) for r in replies], [("error", "bad-request")] * 2)

    @defer.inlineCallbacks
    def test_subscriptionTypeWithoutToIsIgnored(self):
        """A subscription stanza or probe without 'to' names nobody and is dropped."""
        alice = yield self.online(f"{ALICE}/a")
        self.captured[:] = []
        for t in ("subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"):
            alice.receive(f"<presence type='{t}'/>")
        yield self.idle()
        self.assertReceived(alice)
        self.assertRouted()

    @defer.inlineCallbacks
    def test_inboundErrorDelivered(self):
        """A presence error for the user's bare JID (an answer to an outbound subscription) reaches the available resources."""
        alice = yield self.online(f"{ALICE}/a")
        error = (f"<presence type='error' from='{EVE}' to='{ALICE}'><error type='cancel'>"
                 "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>")
        self.route(error)
        self.assertReceived(alice, error)

    @defer.inlineCallbacks
    def test_outboundErrorForgetsDirectedRecipient(self):
        """A presence error sent to a directed recipient is routed and ends the directed presence."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='room@remote.example/A'/>")
        alice.receive("<presence to='room@remote.example/A' type='error'/>")
        yield self.idle()
        self.assertEqual(alice.directed, set())

    @defer.inlineCallbacks
    def test_malformedToIsJidMalformed(self):
        """Presence to a malformed JID gets jid-malformed from the Router."""
        alice = yield self.online(f"{ALICE}/a")
        alice.receive("<presence to='a@b@c'/>")
        yield self.idle()
        self.assertEqual(next(alice.link.popOne().error.elements()).name, "jid-malformed")
