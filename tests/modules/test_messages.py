"""
RFC 6121 §8.5 message delivery to local accounts (jabberd.modules.messages),
type by type, to bare and full JIDs, through real sessions.

Presence is simulated the way the presence module leaves it (C{available},
C{priority}, C{presence} on the session, then C{PRESENCE_AVAILABLE}), so
these tests do not depend on that module.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd import bus as B
from jabberd.modules.messages import OFFLINE
from tests.fakes import ModuleTestMixin, element

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def canonical(e: domish.Element) -> tuple:
    """An element as comparable data: names, attributes, children (text joined, blank text ignored)."""
    attrs = tuple(sorted(((k if isinstance(k, str) else "{%s}%s" % k), v) for k, v in e.attributes.items()))
    children: list = []
    for c in e.children:
        if isinstance(c, domish.Element):
            children.append(canonical(c))
        elif children and isinstance(children[-1], str):
            children[-1] += str(c)
        else:
            children.append(str(c))
    children = [c for c in children if not (isinstance(c, str) and not c.strip())]
    return (e.uri, e.name, attrs, tuple(children))


class StanzaAssertions:
    def assertStanza(self, got: domish.Element, expected: str) -> None:
        """C{got} is exactly the stanza written as C{expected} (attribute order aside)."""
        self.assertEqual(canonical(got), canonical(element(expected)), f"\n got: {got.toXml()}\nwant: {expected}")  # type: ignore[attr-defined]

    def assertNothing(self, *sessions) -> None:
        """None of C{sessions} received anything."""
        for s in sessions:
            self.assertEqual([e.toXml() for e in s.link.pop()], [], f"{s!r} received something")  # type: ignore[attr-defined]


class PresenceSimulation:
    def online(self, fullJID: str, priority: int = 0):
        """Bind C{fullJID} and make it available with C{priority}, as the presence module would."""
        return self.makeAvailable(self.bind(fullJID), priority)  # type: ignore[attr-defined]

    def makeAvailable(self, session, priority: int = 0):
        """Give a bound session its initial presence, as the presence module would."""
        session.presence = element(f"<presence><priority>{priority}</priority></presence>")
        session.priority = priority
        session.available = True
        self.server.bus.notify(B.PRESENCE_AVAILABLE, session)  # type: ignore[attr-defined]
        return session


class MessageRulesBase(ModuleTestMixin, PresenceSimulation, StanzaAssertions):
    modules = ["messages"]

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startModules(modules=self.modules)
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        self.alice = self.online("alice@localhost/a")
        self.offline: list[tuple[str, str, str]] = []

    def recordOffline(self):
        """Take the offline hand-over ourselves and record what reaches it."""
        self.server.bus.on(OFFLINE, lambda m, f, t: self.offline.append((m.getAttribute("id"), str(f), str(t))) or True)

    def error(self, condition: str, id_: str, to: str, errorType: str = "cancel", payload: str = "<body>hi</body>") -> str:
        """The error Alice gets back for her message C{id_} to C{to}, as XML."""
        return (
            f"<message from='{to}' to='alice@localhost/a' id='{id_}' type='error'>{payload}"
            f"<error type='{errorType}'><{condition} xmlns='{STANZAS}'/></error></message>"
        )


class BareJIDTests(MessageRulesBase, unittest.TestCase):
    """RFC 6121 §8.5.2: messages to user@host."""

    def test_chatToOnlyResource(self):
        """A chat message to the bare JID reaches the only available resource, 'to' left bare (§8.5.2.1.1)."""
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
        self.assertStanza(bob.link.popOne(), "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='m1'><body>hi</body></message>")
        self.assertNothing(self.alice)

    def test_chatToHighestPriority(self):
        """A chat message goes to every resource sharing the highest priority, and only those."""
        b1, b2, b3 = self.online("bob@localhost/b1", 5), self.online("bob@localhost/b2", 5), self.online("bob@localhost/b3", 1)
        self.alice.receive("<message to='bob@localhost' type='chat' id='m2'><body>hi</body></message>")
        expected = "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='m2'><body>hi</body></message>"
        self.assertStanza(b1.link.popOne(), expected)
        self.assertStanza(b2.link.popOne(), expected)
        self.assertNothing(b3, self.alice)

    def test_chatSkipsNegativePriority(self):
        """A resource with a negative priority never receives a bare-JID chat, even with a higher absolute value."""
        high, negative = self.online("bob@localhost/zero", 0), self.online("bob@localhost/neg", -5)
        self.alice.receive("<message to='bob@localhost' type='chat' id='m3'><body>hi</body></message>")
        self.assertStanza(high.link.popOne(), "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='m3'><body>hi</body></message>")
        self.assertNothing(negative)

    def test_chatOnlyNegativeGoesOffline(self):
        """When every available resource has a negative priority, a chat message is handed to offline handling (§8.5.2.1.1)."""
        self.recordOffline()
        negative = self.online("bob@localhost/neg", -1)
        self.alice.receive("<message to='bob@localhost' type='chat' id='m4'><body>hi</body></message>")
        self.assertEqual(self.offline, [("m4", "alice@localhost/a", "bob@localhost")])
        self.assertNothing(negative, self.alice)

    def test_chatBoundButNotAvailableGoesOffline(self):
        """A resource that is bound but sent no available presence does not take bare-JID messages."""
        self.recordOffline()
        silent = self.bind("bob@localhost/silent")
        self.alice.receive("<message to='bob@localhost' type='chat' id='m5'><body>hi</body></message>")
        self.assertEqual(self.offline, [("m5", "alice@localhost/a", "bob@localhost")])
        self.assertNothing(silent, self.alice)

    def test_chatNoResourcesGoesOffline(self):
        """A chat message to an account without resources is handed to offline handling (§8.5.2.2.1)."""
        self.recordOffline()
        self.alice.receive("<message to='bob@localhost' type='chat' id='m6'><body>hi</body></message>")
        self.assertEqual(self.offline, [("m6", "alice@localhost/a", "bob@localhost")])
        self.assertNothing(self.alice)

    def test_chatWithoutOfflineStorageBounces(self):
        """Without offline storage, a chat message nobody can take gets service-unavailable with its payload."""
        self.alice.receive("<message to='bob@localhost' type='chat' id='m7'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "m7", "bob@localhost"))

    def test_chatToUnknownAccountWithoutOfflineStorageBounces(self):
        """A chat message to an account that does not exist gets service-unavailable (§8.5.1)."""
        self.alice.receive("<message to='nobody@localhost' type='chat' id='m8'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "m8", "nobody@localhost"))

    def test_normalToHighestPriority(self):
        """A message without a type is normal and goes to the highest-priority resource only."""
        high, low = self.online("bob@localhost/high", 3), self.online("bob@localhost/low", 2)
        self.alice.receive("<message to='bob@localhost' id='n1'><body>hi</body></message>")
        self.assertStanza(high.link.popOne(), "<message to='bob@localhost' from='alice@localhost/a' id='n1'><body>hi</body></message>")
        self.assertNothing(low, self.alice)

    def test_explicitNormalToHighestPriority(self):
        """type='normal' follows the same rule as a missing type."""
        high, low = self.online("bob@localhost/high", 0), self.online("bob@localhost/low", -1)
        self.alice.receive("<message to='bob@localhost' type='normal' id='n2'><body>hi</body></message>")
        self.assertStanza(high.link.popOne(), "<message to='bob@localhost' from='alice@localhost/a' type='normal' id='n2'><body>hi</body></message>")
        self.assertNothing(low)

    def test_unknownTypeIsNormal(self):
        """An unknown type value is treated as normal (RFC 6121 §5.2.2) and delivered unchanged."""
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost' type='fancy' id='n3'><body>hi</body></message>")
        self.assertStanza(bob.link.popOne(), "<message to='bob@localhost' from='alice@localhost/a' type='fancy' id='n3'><body>hi</body></message>")

    def test_normalNoResourcesGoesOffline(self):
        """A normal message to an account without available resources is handed to offline handling."""
        self.recordOffline()
        self.alice.receive("<message to='bob@localhost' id='n4'><body>hi</body></message>")
        self.assertEqual(self.offline, [("n4", "alice@localhost/a", "bob@localhost")])

    def test_headlineToAllNonNegative(self):
        """A headline goes to every available resource with a non-negative priority, whatever their priorities."""
        b1, b2, neg = self.online("bob@localhost/b1", 7), self.online("bob@localhost/b2", 0), self.online("bob@localhost/neg", -1)
        silent = self.bind("bob@localhost/silent")
        self.alice.receive("<message to='bob@localhost' type='headline' id='h1'><body>news</body></message>")
        expected = "<message to='bob@localhost' from='alice@localhost/a' type='headline' id='h1'><body>news</body></message>"
        self.assertStanza(b1.link.popOne(), expected)
        self.assertStanza(b2.link.popOne(), expected)
        self.assertNothing(neg, silent, self.alice)

    def test_headlineNoResourcesDropped(self):
        """A headline to an account without available resources is dropped silently and never stored (§8.5.2.2.1)."""
        self.recordOffline()
        neg = self.online("bob@localhost/neg", -1)
        self.alice.receive("<message to='bob@localhost' type='headline' id='h2'><body>news</body></message>")
        self.assertEqual(self.offline, [])
        self.assertNothing(neg, self.alice)

    def test_headlineToUnknownAccountDropped(self):
        """A headline to an account that does not exist is dropped silently (§8.5.1 allows it; no lookup)."""
        self.alice.receive("<message to='nobody@localhost' type='headline' id='h3'><body>news</body></message>")
        self.assertNothing(self.alice)

    def test_groupchatBounced(self):
        """A groupchat message to a bare JID is never delivered: service-unavailable, even with resources online (§8.5.2.1.1)."""
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost' type='groupchat' id='g1'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "g1", "bob@localhost"))
        self.assertNothing(bob)

    def test_groupchatNoResourcesBounced(self):
        """A groupchat message to an offline account gets service-unavailable and is not stored (§8.5.2.2.1)."""
        self.recordOffline()
        self.alice.receive("<message to='bob@localhost' type='groupchat' id='g2'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "g2", "bob@localhost"))
        self.assertEqual(self.offline, [])

    def test_errorDropped(self):
        """An error message to a bare JID is dropped silently, online or not, and never answered."""
        bob = self.online("bob@localhost/b")
        self.recordOffline()
        self.alice.receive(
            "<message to='bob@localhost' type='error' id='e1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )
        self.alice.receive("<message to='carol@localhost' type='error' id='e2'/>")
        self.assertNothing(bob, self.alice)
        self.assertEqual(self.offline, [])

    def test_messageToOwnBareJID(self):
        """A message to one's own bare JID follows the same rules: the other highest resource gets it."""
        other = self.online("alice@localhost/other", 1)
        self.alice.receive("<message to='alice@localhost' type='chat' id='self'><body>note</body></message>")
        self.assertStanza(other.link.popOne(), "<message to='alice@localhost' from='alice@localhost/a' type='chat' id='self'><body>note</body></message>")
        self.assertNothing(self.alice)


class FullJIDTests(MessageRulesBase, unittest.TestCase):
    """RFC 6121 §8.5.3: messages to user@host/resource."""

    def test_chatToBoundResource(self):
        """A chat message to a full JID reaches that resource only, not the higher-priority one (§8.5.3.1)."""
        low, high = self.online("bob@localhost/low", 0), self.online("bob@localhost/high", 9)
        self.alice.receive("<message to='bob@localhost/low' type='chat' id='f1'><body>hi</body></message>")
        self.assertStanza(low.link.popOne(), "<message to='bob@localhost/low' from='alice@localhost/a' type='chat' id='f1'><body>hi</body></message>")
        self.assertNothing(high, self.alice)

    def test_everyTypeReachesNegativeResource(self):
        """A resource with a negative priority gets every type addressed to its full JID, groupchat and error included."""
        neg = self.online("bob@localhost/neg", -1)
        for type_ in ("chat", "normal", "headline", "groupchat"):
            self.alice.receive(f"<message to='bob@localhost/neg' type='{type_}' id='{type_}'><body>x</body></message>")
            self.assertStanza(neg.link.popOne(), f"<message to='bob@localhost/neg' from='alice@localhost/a' type='{type_}' id='{type_}'><body>x</body></message>")
        self.alice.receive("<message to='bob@localhost/neg' type='error' id='err'/>")
        self.assertStanza(neg.link.popOne(), "<message to='bob@localhost/neg' from='alice@localhost/a' type='error' id='err'/>")
        self.assertNothing(self.alice)

    def test_boundButUnavailableResourceReceives(self):
        """A bound resource that sent no presence still gets messages to its full JID (§8.5.3.1, connected resource)."""
        silent = self.bind("bob@localhost/silent")
        self.alice.receive("<message to='bob@localhost/silent' id='f2'><body>hi</body></message>")
        self.assertStanza(silent.link.popOne(), "<message to='bob@localhost/silent' from='alice@localhost/a' id='f2'><body>hi</body></message>")

    def test_chatNoMatchGoesToHighestResources(self):
        """A chat message to a resource that is gone goes to the highest-priority resources, 'to' unchanged (§8.5.3.2.1)."""
        high, low, neg = self.online("bob@localhost/high", 2), self.online("bob@localhost/low", 1), self.online("bob@localhost/neg", -1)
        self.alice.receive("<message to='bob@localhost/gone' type='chat' id='f3'><body>hi</body></message>")
        self.assertStanza(high.link.popOne(), "<message to='bob@localhost/gone' from='alice@localhost/a' type='chat' id='f3'><body>hi</body></message>")
        self.assertNothing(low, neg, self.alice)

    def test_chatNoMatchOnlyNegativeGoesOffline(self):
        """A chat message to a gone resource, with only negative resources left, is handed to offline handling."""
        self.recordOffline()
        neg = self.online("bob@localhost/neg", -1)
        self.alice.receive("<message to='bob@localhost/gone' type='chat' id='f4'><body>hi</body></message>")
        self.assertEqual(self.offline, [("f4", "alice@localhost/a", "bob@localhost/gone")])
        self.assertNothing(neg, self.alice)

    def test_chatNoMatchNoResourcesGoesOffline(self):
        """A chat message to a full JID of an offline account is handed to offline handling."""
        self.recordOffline()
        self.alice.receive("<message to='bob@localhost/gone' type='chat' id='f5'><body>hi</body></message>")
        self.assertEqual(self.offline, [("f5", "alice@localhost/a", "bob@localhost/gone")])

    def test_chatNoMatchWithoutOfflineStorageBounces(self):
        """Without offline storage, a chat message to a gone resource of an offline account gets service-unavailable."""
        self.alice.receive("<message to='bob@localhost/gone' type='chat' id='f6'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "f6", "bob@localhost/gone"))

    def test_normalNoMatchBounced(self):
        """A normal message to a gone resource is not redirected: service-unavailable, other resources get nothing (§8.5.3.2.1)."""
        self.recordOffline()
        bob = self.online("bob@localhost/b", 5)
        self.alice.receive("<message to='bob@localhost/gone' id='f7'><body>hi</body></message>")
        self.assertStanza(
            self.alice.link.popOne(),
            f"<message from='bob@localhost/gone' to='alice@localhost/a' id='f7' type='error'><body>hi</body><error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></message>",
        )
        self.assertNothing(bob)
        self.assertEqual(self.offline, [])

    def test_groupchatNoMatchBounced(self):
        """A groupchat message to a gone resource gets service-unavailable (so a room can drop the ghost occupant)."""
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost/gone' type='groupchat' id='f8'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "f8", "bob@localhost/gone"))
        self.assertNothing(bob)

    def test_headlineNoMatchDropped(self):
        """A headline to a gone resource is dropped silently, not redirected (§8.5.3.2.1)."""
        self.recordOffline()
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost/gone' type='headline' id='f9'><body>news</body></message>")
        self.assertNothing(bob, self.alice)
        self.assertEqual(self.offline, [])

    def test_errorNoMatchDropped(self):
        """An error message to a gone resource is dropped silently."""
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost/gone' type='error' id='f10'/>")
        self.assertNothing(bob, self.alice)

    def test_fullJIDOfUnknownAccount(self):
        """To a full JID of an account that does not exist: chat and normal get service-unavailable, headline nothing."""
        self.alice.receive("<message to='nobody@localhost/r' type='chat' id='u1'><body>hi</body></message>")
        self.assertStanza(self.alice.link.popOne(), self.error("service-unavailable", "u1", "nobody@localhost/r"))
        self.alice.receive("<message to='nobody@localhost/r' id='u2'><body>hi</body></message>")
        self.assertEqual(next(self.alice.link.popOne().error.elements()).name, "service-unavailable")
        self.alice.receive("<message to='nobody@localhost/r' type='headline' id='u3'><body>hi</body></message>")
        self.assertNothing(self.alice)


class DelayTests(MessageRulesBase, unittest.TestCase):
    """XEP-0203 §5: only this server may say it delayed a stanza for its users."""

    def test_forgedDelayRemoved(self):
        """A delay claiming to come from the recipient's server is removed; one from another entity is kept."""
        bob = self.online("bob@localhost/b")
        self.alice.receive(
            "<message to='bob@localhost' type='chat' id='d1'><body>hi</body>"
            "<delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'>Offline Storage</delay>"
            "<delay xmlns='urn:xmpp:delay' from='room@muc.example' stamp='2002-02-02T00:00:00Z'/></message>"
        )
        self.assertStanza(
            bob.link.popOne(),
            "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='d1'><body>hi</body>"
            "<delay xmlns='urn:xmpp:delay' from='room@muc.example' stamp='2002-02-02T00:00:00Z'/></message>",
        )

    def test_forgedDelayRemovedOnFullJID(self):
        """The same holds for a message to a full JID."""
        bob = self.online("bob@localhost/b")
        self.alice.receive("<message to='bob@localhost/b' id='d2'><body>hi</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'/></message>")
        self.assertStanza(bob.link.popOne(), "<message to='bob@localhost/b' from='alice@localhost/a' id='d2'><body>hi</body></message>")

    def test_serverOwnDelayKept(self):
        """A delay in a message the server itself sends is left alone."""
        bob = self.online("bob@localhost/b")
        msg = element("<message from='localhost' to='bob@localhost' id='d3'><body>motd</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'/></message>")
        self.server.router.route(msg)
        self.assertStanza(bob.link.popOne(), "<message from='localhost' to='bob@localhost' id='d3'><body>motd</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'/></message>")
