"""
The client against Prosody from Debian (a server we did not write): every
mechanism it offers, the roster and subscription flow between two accounts,
messages, disco, entity caps, vCards and ping. Prosody runs from a config
written into a temp folder, on loopback only, with its own data folder and
a certificate generated here; the tests skip if it is not installed.

Prosody 0.12 stores one SCRAM hash per host ("localhost": SHA-1, its
default; "sha256.localhost": SHA-256), supports only tls-unique channel
binding (so -PLUS needs TLS 1.2) and sends no XEP-0474 attribute.
"""

from __future__ import annotations

import itertools

from twisted.internet import defer
from twisted.words.xish import domish

from jabberd.client import AuthenticationFailed, Client, StreamError
from jabberd.client.caps import NS_CAPS
from jabberd.client.cli import stanzaLine
from jabberd.client.roster import subscription
from jabberd.client.vcard import NS_VCARD, fields
from tests.client.support import Inbox, ProsodyTestCase, eventually

_counter = itertools.count(1)


def fresh(name: str, host: str = "localhost") -> str:
    """A new account address for this run (the Prosody instance is shared by all tests)."""
    return f"{name}{next(_counter)}@{host}"


class ProsodyLoginTests(ProsodyTestCase):
    """Each mechanism Prosody offers, with and without channel binding."""

    @defer.inlineCallbacks
    def loginWith(self, host, **kw):
        client = yield self.login(fresh("login", host) + "/r", **kw)
        return (client.mechanism, client.authenticator.channelBinding, client.authenticator.downgradeProtected)

    @defer.inlineCallbacks
    def test_scramSha1(self):
        """SCRAM-SHA-1 on TLS 1.3 (where Prosody offers no -PLUS)."""
        self.assertEqual((yield self.loginWith("localhost")), ("SCRAM-SHA-1", None, False))

    @defer.inlineCallbacks
    def test_scramSha1Plus(self):
        """SCRAM-SHA-1-PLUS with tls-unique on TLS 1.2, chosen unprompted as the strongest offer."""
        self.assertEqual((yield self.loginWith("localhost", tlsMaxVersion="1.2")), ("SCRAM-SHA-1-PLUS", "tls-unique", False))

    @defer.inlineCallbacks
    def test_scramSha256(self):
        """SCRAM-SHA-256 on the host that stores SHA-256 credentials."""
        self.assertEqual((yield self.loginWith("sha256.localhost")), ("SCRAM-SHA-256", None, False))

    @defer.inlineCallbacks
    def test_scramSha256Plus(self):
        """SCRAM-SHA-256-PLUS with tls-unique on TLS 1.2."""
        result = yield self.loginWith("sha256.localhost", tlsMaxVersion="1.2")
        self.assertEqual(result, ("SCRAM-SHA-256-PLUS", "tls-unique", False))

    @defer.inlineCallbacks
    def test_plain(self):
        """PLAIN over TLS on both hosts."""
        self.assertEqual((yield self.loginWith("localhost", mechanisms=["PLAIN"])), ("PLAIN", None, False))
        self.assertEqual((yield self.loginWith("sha256.localhost", mechanisms=["PLAIN"])), ("PLAIN", None, False))

    @defer.inlineCallbacks
    def test_directTLS(self):
        """Direct TLS (XEP-0368) to Prosody's c2s_direct_tls port."""
        self.assertEqual((yield self.loginWith("localhost", directTLS=True, tlsMaxVersion="1.2")), ("SCRAM-SHA-1-PLUS", "tls-unique", False))

    @defer.inlineCallbacks
    def test_wrongPassword(self):
        """A wrong password: AuthenticationFailed('not-authorized')."""
        address = self.prosody.register(fresh("wrong"), "right")
        client = Client(address, "not-right", self.prosody.options())
        e = yield self.assertFailure(defer.ensureDeferred(client.connect()), AuthenticationFailed)
        self.assertEqual(e.condition, "not-authorized")

    @defer.inlineCallbacks
    def test_hostUnknown(self):
        """A domain Prosody does not serve: StreamError('host-unknown')."""
        client = Client("alice@nowhere.example", "x", self.prosody.options())
        e = yield self.assertFailure(defer.ensureDeferred(client.connect()), StreamError)
        self.assertEqual(e.condition, "host-unknown")


class ProsodyIMTests(ProsodyTestCase):
    """Two accounts on Prosody: messages, roster, subscriptions, presence."""

    @defer.inlineCallbacks
    def online(self, address, presence=True):
        client = yield self.login(address)
        client.inbox, client.presences, client.pushes = Inbox(), Inbox(), Inbox()
        client.messages.addListener(client.inbox)
        client.presence.addListener(client.presences)
        client.roster.addListener(client.pushes)
        if presence:
            yield client.roster.get()
            client.presence.available()
            yield client.presences.next(lambda p: p.sender == client.jid)
        return client

    @defer.inlineCallbacks
    def test_messagesBareAndFull(self):
        """chat to the full JID, normal and headline to the bare JID: all arrive as sent, stamped by Prosody."""
        a, b = fresh("ma"), fresh("mb")
        alice = yield self.online(a + "/a")
        bob = yield self.online(b + "/b")
        first = alice.messages.send(b + "/b", "to full", type="chat")
        second = alice.messages.send(b, "to bare", type="normal", subject="subj")
        third = alice.messages.send(b, "news", type="headline")
        got = []
        for _ in range(3):
            got.append((yield bob.inbox.next()))
        self.assertEqual(
            [stanzaLine(m.element) for m in got],
            [
                # Prosody adds the stream's xml:lang to stanzas that have none (RFC 6120 §4.7.4).
                f"<message from='{a}/a' to='{b}/b' type='chat' id='{first}' xml:lang='en'><body>to full</body></message>",
                f"<message from='{a}/a' to='{b}' type='normal' id='{second}' xml:lang='en'><subject>subj</subject><body>to bare</body></message>",
                f"<message from='{a}/a' to='{b}' type='headline' id='{third}' xml:lang='en'><body>news</body></message>",
            ],
        )

    @defer.inlineCallbacks
    def test_rosterAddVersionRemove(self):
        """Add a contact (push), refetch by version (unchanged), remove it (push)."""
        a, b = fresh("ra"), fresh("rb")
        alice = yield self.online(a + "/a")
        self.assertTrue(alice.roster.versioning)
        yield alice.roster.add(b, "Bob", ["Friends"])
        push = yield alice.pushes.next()
        self.assertEqual((push.entity.full(), push.name, push.groups, subscription(push)), (b, "Bob", {"Friends"}, "none"))
        version, cached = alice.roster.version, dict(alice.roster.items)

        again = yield self.online(a + "/again", presence=False)
        items = yield again.roster.get(version, cached)
        self.assertEqual((list(items), again.roster.version), ([b], version))

        yield alice.roster.remove(b)
        removed = yield alice.pushes.next(lambda item: item.remove)
        self.assertEqual((removed.entity.full(), alice.roster.items), (b, {}))

    @defer.inlineCallbacks
    def test_subscriptionFlow(self):
        """alice subscribes, bob approves: rosters become to/from and alice sees bob's presence, then his 'dnd'."""
        a, b = fresh("sa"), fresh("sb")
        alice = yield self.online(a + "/a")
        bob = yield self.online(b + "/b")
        alice.presence.subscribe(b)
        push = yield alice.pushes.next()
        self.assertEqual((push.entity.full(), subscription(push), push.pendingOut), (b, "none", True))
        request = yield bob.presences.next(lambda p: p.type == "subscribe")
        self.assertEqual(request.sender.full(), a)

        bob.presence.approve(a)
        approved = yield alice.presences.next(lambda p: p.type == "subscribed")
        self.assertEqual(approved.sender.full(), b)
        yield eventually(lambda: subscription(alice.roster.items[b]) == "to")
        yield eventually(lambda: subscription(bob.roster.items[a]) == "from")
        seen = yield alice.presences.next(lambda p: p.type == "available" and p.sender.full() == b + "/b")
        self.assertEqual(seen.caps.attributes, bob.caps.element().attributes)

        bob.presence.available(show="dnd", status="busy", priority=3)
        dnd = yield alice.presences.next(lambda p: p.show == "dnd")
        self.assertEqual((dnd.sender.full(), dnd.status, dnd.priority), (b + "/b", "busy", 3))

        # Caps from that presence were looked up through Prosody and verified.
        yield eventually(lambda: alice.caps.infoFor(bob.jid) is not None)
        self.assertEqual(sorted(alice.caps.infoFor(bob.jid).features), sorted(bob.disco.features))

    @defer.inlineCallbacks
    def test_denyAndCancel(self):
        """bob denies carol; later bob cancels alice's approved subscription: each gets 'unsubscribed'."""
        a, b, c = fresh("da"), fresh("db"), fresh("dc")
        alice = yield self.online(a + "/a")
        bob = yield self.online(b + "/b")
        carol = yield self.online(c + "/c")

        carol.presence.subscribe(b)
        yield bob.presences.next(lambda p: p.type == "subscribe")
        bob.presence.deny(c)
        denied = yield carol.presences.next(lambda p: p.type == "unsubscribed")
        self.assertEqual(denied.sender.full(), b)

        alice.presence.subscribe(b)
        yield bob.presences.next(lambda p: p.type == "subscribe")
        bob.presence.approve(a)
        yield eventually(lambda: subscription(alice.roster.items[b]) == "to")
        bob.presence.cancel(a)
        cancelled = yield alice.presences.next(lambda p: p.type == "unsubscribed")
        self.assertEqual(cancelled.sender.full(), b)
        yield eventually(lambda: subscription(alice.roster.items[b]) == "none")

    @defer.inlineCallbacks
    def test_directedPresence(self):
        """Directed presence reaches a full JID without any subscription (RFC 6121 §4.6)."""
        a, b = fresh("pa"), fresh("pb")
        alice = yield self.online(a + "/a")
        bob = yield self.online(b + "/b")
        alice.presence.available(show="chat", to=b + "/b")
        p = yield bob.presences.next(lambda p: p.sender == alice.jid)
        self.assertEqual((p.show, p.recipient.full()), ("chat", b + "/b"))


class ProsodyServiceTests(ProsodyTestCase):
    """Service discovery, caps, vCard and ping with Prosody's own modules."""

    @defer.inlineCallbacks
    def test_serverDisco(self):
        """Prosody is server/im, lists ping, vcard-temp and version among its features, and sha256.localhost as an item."""
        client = yield self.login(fresh("disco") + "/r")
        info = yield client.disco.info("localhost")
        self.assertIn(("server", "im", "Prosody"), [(i.category, i.type, i.name) for i in info if hasattr(i, "category")])
        for feature in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping", "vcard-temp", "jabber:iq:version"):
            self.assertIn(feature, info.features)
        items = yield client.disco.items("localhost")
        # Prosody lists hosted subdomains of the host as items.
        self.assertEqual([(i.entity.full(), i.nodeIdentifier, i.name) for i in items], [("sha256.localhost", "", None)])

    @defer.inlineCallbacks
    def test_serverCapsVerified(self):
        """The caps Prosody puts in its stream features verify against its disco#info and are cached."""
        client = yield self.login(fresh("caps") + "/r")
        c = client.features[(NS_CAPS, "c")]
        info = yield client.caps.lookup(client.jid.host, c["node"], c["ver"], c["hash"])
        self.assertIn("urn:xmpp:ping", info.features)
        self.assertIn((c["hash"], c["ver"]), client.caps.cache)

    @defer.inlineCallbacks
    def test_clientDiscoThroughProsody(self):
        """Another Prosody user asks our client for disco#info and gets our identity and features."""
        alice = yield self.login(fresh("ca") + "/a")
        bob = yield self.login(fresh("cb") + "/b")
        info = yield bob.disco.info(alice.jid)
        self.assertEqual(info.toElement().toXml(), alice.disco.ownInfo().toElement().toXml())

    @defer.inlineCallbacks
    def test_vcard(self):
        """A vCard stored in Prosody (vcard_legacy) reads back field by field."""
        address = fresh("vc")
        alice = yield self.login(address + "/a")
        vcard = domish.Element((NS_VCARD, "vCard"))
        vcard.addElement("FN", content="Alice Liddell")
        vcard.addElement("NICKNAME", content="alice")
        yield alice.vcard.set(vcard)
        bob = yield self.login(fresh("vr") + "/b")
        got = yield bob.vcard.get(address)
        self.assertEqual([f for f in fields(got) if f[0] in ("FN", "NICKNAME")], [("FN", "Alice Liddell"), ("NICKNAME", "alice")])

    @defer.inlineCallbacks
    def test_ping(self):
        """Pinging Prosody answers with a round trip."""
        client = yield self.login(fresh("ping") + "/r")
        seconds = yield client.ping()
        self.assertTrue(0 <= seconds < 5)
