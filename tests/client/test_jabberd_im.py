"""
The client against jabberd's own server: messages, the roster and its
versioning, presence and the subscription flow between two accounts,
service discovery (ours and the server's), entity capabilities, ping and
vCards. Written as transcripts: who sends what, who receives what.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.xish import domish

from jabberd.client import StanzaError
from jabberd.client.caps import CapsMismatch
from jabberd.client.cli import stanzaLine
from jabberd.client.roster import subscription
from jabberd.client.vcard import NS_VCARD, fields
from tests.client.support import Inbox, eventually, loginJabberd
from tests.harness import ServerMixin


class TwoUsers(ServerMixin):
    """alice and bob (and carol) with accounts; C{online()} logs them in."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        for user in ("alice", "bob", "carol"):
            yield self.addUser(f"{user}@localhost", "secret")

    @defer.inlineCallbacks
    def online(self, address, presence=False):
        """A logged-in client with inboxes for messages, presence and roster pushes."""
        client = yield loginJabberd(self, address)
        client.inbox = Inbox()
        client.messages.addListener(client.inbox)
        client.presences = Inbox()
        client.presence.addListener(client.presences)
        client.pushes = Inbox()
        client.roster.addListener(client.pushes)
        if presence:
            client.presence.available()
            # Our own presence comes back once the server has processed it.
            yield client.presences.next(lambda p: p.sender == client.jid)
        return client


class MessageTests(TwoUsers, unittest.TestCase):
    """RFC 6121 §5 between two clients."""

    @defer.inlineCallbacks
    def test_chatToFullJID(self):
        """alice sends bob/b a chat message; bob receives exactly that stanza, stamped from alice/a."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        sent = alice.messages.send("bob@localhost/b", "hello bob", type="chat")
        m = yield bob.inbox.next()
        self.assertEqual(
            stanzaLine(m.element),
            f"<message from='alice@localhost/a' to='bob@localhost/b' type='chat' id='{sent}'><body>hello bob</body></message>",
        )
        self.assertEqual((m.sender.full(), m.type, m.body), ("alice@localhost/a", "chat", "hello bob"))

    @defer.inlineCallbacks
    def test_normalAndHeadline(self):
        """Normal (with subject and thread) and headline messages arrive with their type and children."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        alice.messages.send("bob@localhost/b", "body 1", type="normal", subject="re: tea", thread="t1")
        alice.messages.send("bob@localhost/b", "news", type="headline")
        first = yield bob.inbox.next()
        second = yield bob.inbox.next()
        self.assertEqual(
            [(m.type, m.subject, m.body, m.thread) for m in (first, second)],
            [("normal", "re: tea", "body 1", "t1"), ("headline", None, "news", None)],
        )

    @defer.inlineCallbacks
    def test_bareJIDToAvailableResource(self):
        """A chat message to bob's bare JID reaches his available resource (RFC 6121 §8.5.2.1.1)."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b", presence=True)
        sent = alice.messages.send("bob@localhost", "to the bare JID", type="chat")
        m = yield bob.inbox.next()
        self.assertEqual(
            stanzaLine(m.element),
            f"<message from='alice@localhost/a' to='bob@localhost' type='chat' id='{sent}'><body>to the bare JID</body></message>",
        )

    @defer.inlineCallbacks
    def test_bounceComesBackAsError(self):
        """An iq to a resource that is not online comes back as service-unavailable (RFC 6121 §8.5.3.2.1)."""
        alice = yield self.online("alice@localhost/a")
        iq = domish.Element((None, "iq"))
        iq["type"], iq["to"] = "get", "bob@localhost/nowhere"
        iq.addElement(("urn:xmpp:ping", "ping"))
        e = yield self.assertFailure(alice.request(iq), StanzaError)
        self.assertEqual(e.condition, "service-unavailable")


class ClientToClientTests(TwoUsers, unittest.TestCase):
    """What our client answers for itself: disco#info, ping, unknown iqs."""

    @defer.inlineCallbacks
    def test_discoInfoOfClient(self):
        """bob asks alice/a for disco#info: client/pc named jabberd-client, with its features."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        info = yield bob.disco.info("alice@localhost/a")
        self.assertEqual(
            info.toElement().toXml(),
            "<query xmlns='http://jabber.org/protocol/disco#info'>"
            "<identity category='client' type='pc' name='jabberd-client'/>"
            "<feature var='http://jabber.org/protocol/disco#info'/>"
            "<feature var='http://jabber.org/protocol/disco#items'/>"
            "<feature var='urn:xmpp:ping'/>"
            "<feature var='http://jabber.org/protocol/caps'/>"
            "</query>",
        )
        self.assertTrue(alice.connected)

    @defer.inlineCallbacks
    def test_discoInfoAtCapsNode(self):
        """disco#info at our node#ver answers with that node (XEP-0115 §6.2); another node is item-not-found."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        node = f"{alice.caps.node}#{alice.caps.ver}"
        info = yield bob.disco.info("alice@localhost/a", node)
        self.assertEqual(info.nodeIdentifier, node)
        e = yield self.assertFailure(bob.disco.info("alice@localhost/a", "other"), StanzaError)
        self.assertEqual(e.condition, "item-not-found")

    @defer.inlineCallbacks
    def test_discoItemsOfClient(self):
        """A client has no items: an empty disco#items result."""
        yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        items = yield bob.disco.items("alice@localhost/a")
        self.assertEqual(items.toElement().toXml(), "<query xmlns='http://jabber.org/protocol/disco#items'/>")

    @defer.inlineCallbacks
    def test_pingClient(self):
        """bob pings alice/a and gets the round trip in seconds."""
        yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        seconds = yield bob.ping("alice@localhost/a")
        self.assertTrue(0 <= seconds < 5)

    @defer.inlineCallbacks
    def test_unknownIQAnsweredServiceUnavailable(self):
        """An iq our client has no handler for gets service-unavailable (RFC 6120 §8.4)."""
        yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        iq = domish.Element((None, "iq"))
        iq["type"], iq["to"] = "get", "alice@localhost/a"
        iq.addElement(("urn:example:unknown", "query"))
        e = yield self.assertFailure(bob.request(iq), StanzaError)
        self.assertEqual(e.condition, "service-unavailable")


class CapsTests(TwoUsers, unittest.TestCase):
    """XEP-0115 between two live clients."""

    @defer.inlineCallbacks
    def test_capsVerifiedAndCached(self):
        """bob's presence carries caps; alice asks bob at node#ver, verifies the hash and caches it."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        bob.presence.available(to="alice@localhost/a")
        presence = yield alice.presences.next()
        self.assertEqual(presence.caps.toXml(), bob.caps.element().toXml())
        yield eventually(lambda: alice.caps.infoFor(bob.jid) is not None)
        self.assertEqual(sorted(alice.caps.infoFor(bob.jid).features), sorted(bob.disco.features))
        self.assertIn(("sha-1", bob.caps.ver), alice.caps.cache)

    @defer.inlineCallbacks
    def test_forgedVerNotCached(self):
        """A ver that does not match the disco#info behind it fails with CapsMismatch and is not cached."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        # Without a node (legacy entities) bob answers with his real info, which hashes elsewhere.
        e = yield self.assertFailure(alice.caps.lookup(bob.jid, "", "Zm9yZ2Vk"), CapsMismatch)
        self.assertEqual((e.ver, e.computed), ("Zm9yZ2Vk", bob.caps.ver))
        self.assertEqual(len(alice.caps.cache), 0)


class RosterTests(TwoUsers, unittest.TestCase):
    """RFC 6121 §2 against jabberd's roster module."""

    @defer.inlineCallbacks
    def test_addVersionRemove(self):
        """Get (empty), add bob (push), fetch again by version (unchanged), remove (push)."""
        alice = yield self.online("alice@localhost/a")
        self.assertTrue(alice.roster.versioning)
        items = yield alice.roster.get()
        self.assertEqual(items, {})
        yield alice.roster.add("bob@localhost", "Bob", ["Friends", "Work"])
        push = yield alice.pushes.next()
        self.assertEqual(
            (push.entity.full(), push.name, push.groups, subscription(push), push.pendingOut),
            ("bob@localhost", "Bob", {"Friends", "Work"}, "none", False),
        )
        self.assertEqual(list(alice.roster.items), ["bob@localhost"])
        version, cached = alice.roster.version, dict(alice.roster.items)
        self.assertIsNotNone(version)

        again = yield self.online("alice@localhost/again")
        items = yield again.roster.get(version, cached)
        self.assertEqual((list(items), again.roster.version), (["bob@localhost"], version))

        yield alice.roster.remove("bob@localhost")
        push = yield alice.pushes.next(lambda item: item.remove)
        self.assertEqual((push.entity.full(), alice.roster.items), ("bob@localhost", {}))


class SubscriptionTests(TwoUsers, unittest.TestCase):
    """RFC 6121 §3 end to end: request, approve, presence, deny, cancel, unsubscribe."""

    @defer.inlineCallbacks
    def test_requestApprovePresence(self):
        """alice asks, bob approves: both rosters update, alice sees bob's presence and his later 'away'."""
        alice = yield self.online("alice@localhost/a", presence=True)
        bob = yield self.online("bob@localhost/b", presence=True)
        yield alice.roster.get()
        yield bob.roster.get()

        alice.presence.subscribe("bob@localhost")
        push = yield alice.pushes.next()
        self.assertEqual((push.entity.full(), subscription(push), push.pendingOut), ("bob@localhost", "none", True))
        request = yield bob.presences.next(lambda p: p.type == "subscribe")
        self.assertEqual(request.sender.full(), "alice@localhost")

        bob.presence.approve("alice@localhost")
        push = yield bob.pushes.next()
        self.assertEqual((push.entity.full(), subscription(push)), ("alice@localhost", "from"))
        approved = yield alice.presences.next(lambda p: p.type == "subscribed")
        self.assertEqual(approved.sender.full(), "bob@localhost")
        push = yield alice.pushes.next()
        self.assertEqual((push.entity.full(), subscription(push), push.pendingOut), ("bob@localhost", "to", False))
        seen = yield alice.presences.next(lambda p: p.type == "available" and p.sender.full() == "bob@localhost/b")
        self.assertIsNotNone(seen.caps)

        bob.presence.available(show="away", status="tea", priority=5)
        away = yield alice.presences.next(lambda p: p.sender.full() == "bob@localhost/b" and p.show == "away")
        self.assertEqual((away.status, away.priority), ("tea", 5))
        self.assertEqual(list(alice.presence.resources("bob@localhost")), ["b"])

    @defer.inlineCallbacks
    def test_deny(self):
        """carol asks alice, alice denies: carol receives 'unsubscribed' and her item is no longer pending."""
        alice = yield self.online("alice@localhost/a", presence=True)
        carol = yield self.online("carol@localhost/c", presence=True)
        yield carol.roster.get()
        carol.presence.subscribe("alice@localhost")
        yield alice.presences.next(lambda p: p.type == "subscribe")
        alice.presence.deny("carol@localhost")
        denied = yield carol.presences.next(lambda p: p.type == "unsubscribed")
        self.assertEqual(denied.sender.full(), "alice@localhost")
        push = yield carol.pushes.next(lambda item: not item.pendingOut)
        self.assertEqual((push.entity.full(), subscription(push)), ("alice@localhost", "none"))

    @defer.inlineCallbacks
    def test_cancelAndUnsubscribe(self):
        """After a mutual subscription, bob cancels alice's, then unsubscribes from her: both end at 'none'."""
        alice = yield self.online("alice@localhost/a", presence=True)
        bob = yield self.online("bob@localhost/b", presence=True)
        yield alice.roster.get()
        yield bob.roster.get()
        # Pre-approve, then subscribe, both ways (RFC 6121 §3.4).
        bob.presence.approve("alice@localhost")
        alice.presence.approve("bob@localhost")
        alice.presence.subscribe("bob@localhost")
        bob.presence.subscribe("alice@localhost")
        yield eventually(lambda: subscription(alice.roster.items.get("bob@localhost") or _none()) == "both")
        yield eventually(lambda: subscription(bob.roster.items.get("alice@localhost") or _none()) == "both")

        bob.presence.cancel("alice@localhost")
        cancelled = yield alice.presences.next(lambda p: p.type == "unsubscribed")
        self.assertEqual(cancelled.sender.full(), "bob@localhost")
        yield eventually(lambda: subscription(alice.roster.items["bob@localhost"]) == "from")
        yield eventually(lambda: subscription(bob.roster.items["alice@localhost"]) == "to")

        bob.presence.unsubscribe("alice@localhost")
        unsubscribe = yield alice.presences.next(lambda p: p.type == "unsubscribe")
        self.assertEqual(unsubscribe.sender.full(), "bob@localhost")
        yield eventually(lambda: subscription(alice.roster.items["bob@localhost"]) == "none")
        yield eventually(lambda: subscription(bob.roster.items["alice@localhost"]) == "none")


def _none():
    from tx_xmpp.xmppim import RosterItem
    from twisted.words.protocols.jabber.jid import JID

    return RosterItem(JID("nobody@localhost"))


class ServerFeatureTests(TwoUsers, unittest.TestCase):
    """The server's own disco, ping and vCard storage, seen by the client."""

    @defer.inlineCallbacks
    def test_serverDiscoInfo(self):
        """The server says it is server/im and lists disco, ping and roster versioning among its features."""
        alice = yield self.online("alice@localhost/a")
        info = yield alice.disco.info("localhost")
        identities = {(i.category, i.type) for i in info if hasattr(i, "category")}
        self.assertIn(("server", "im"), identities)
        for feature in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping"):
            self.assertIn(feature, info.features)

    @defer.inlineCallbacks
    def test_pingServer(self):
        """Pinging the server (no JID) answers with a round trip."""
        alice = yield self.online("alice@localhost/a")
        seconds = yield alice.ping()
        self.assertTrue(0 <= seconds < 5)

    @defer.inlineCallbacks
    def test_vcardRoundTrip(self):
        """alice publishes a vCard; bob reads it back field by field."""
        alice = yield self.online("alice@localhost/a")
        bob = yield self.online("bob@localhost/b")
        vcard = domish.Element((NS_VCARD, "vCard"))
        vcard.addElement("FN", content="Alice Liddell")
        vcard.addElement("N").addElement("GIVEN", content="Alice")
        yield alice.vcard.set(vcard)
        got = yield bob.vcard.get("alice@localhost")
        self.assertEqual(fields(got), [("FN", "Alice Liddell"), ("N/GIVEN", "Alice")])
