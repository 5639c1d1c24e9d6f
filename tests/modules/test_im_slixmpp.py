"""
Rosters, subscriptions and presence end to end: slixmpp clients log in to
the real server over loopback and go through RFC 6121 as a user would.

Transcripts, by who does what:

- Alice asks Bob for his presence, Bob approves and asks back, Alice
  approves: each sees the other come online and go offline.
- Alice is online first; Bob logs in later and sees her at once (the
  server answers his probe for her).
- Alice adds Carol from her laptop; the roster push reaches her phone.
"""

from __future__ import annotations

import asyncio

from twisted.internet import defer, reactor
from twisted.trial import unittest

from jabberd.store.roster import RosterItem, apply_changes_txn
from tests.harness import ServerMixin, connectSlixmpp, deferred, slixmppClient


def waitFor(client, event: str, predicate=lambda stanza: True, timeout: float = 5.0) -> defer.Deferred:
    """A Deferred for the next C{event} of C{client} whose stanza matches C{predicate}."""
    future = asyncio.get_event_loop().create_future()

    def handler(stanza):
        if not future.done() and predicate(stanza):
            future.set_result(stanza)
            client.del_event_handler(event, handler)

    client.add_event_handler(event, handler)
    return defer.Deferred.fromFuture(future).addTimeout(timeout, reactor)


def availableFrom(bare: str):
    """Matches available presence from C{bare} (slixmpp gives the <show/> as the type)."""
    return lambda p: p["from"].bare == bare and p["type"] in ("available", "away", "chat", "dnd", "xa")


def unavailableFrom(bare: str):
    """Matches unavailable presence from C{bare}."""
    return lambda p: p["from"].bare == bare and p["type"] == "unavailable"


class SlixmppIMTests(ServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        for user in ("alice", "bob", "carol"):
            yield self.addUser(f"{user}@localhost", "secret")

    @defer.inlineCallbacks
    def login(self, jid: str, presence: dict | None = None):
        """Connect, fetch the roster and send initial presence, as a client does after login."""
        client = slixmppClient(jid, "secret", sslContext=self.clientSSLContext())
        client.roster.auto_authorize = None  # the test answers requests itself
        client.roster.auto_subscribe = False
        self.addCleanup(client.disconnect)
        yield connectSlixmpp(client, self.server.port("c2s"))
        yield deferred(client.get_roster())
        client.send_presence(**(presence or {}))
        return client

    @defer.inlineCallbacks
    def settle(self):
        yield self.server.modules.modules["roster"].whenIdle()

    def subscription(self, client, contact: str) -> str:
        return client.client_roster[contact]["subscription"]

    @defer.inlineCallbacks
    def test_subscriptionHandshakeAndPresence(self):
        """Alice and Bob subscribe to each other and then see each other come online and go offline."""
        alice = yield self.login("alice@localhost/home", {"pstatus": "reading"})
        bob = yield self.login("bob@localhost/work", {"pshow": "dnd"})

        request = waitFor(bob, "presence_subscribe")
        alice.send_presence_subscription(pto="bob@localhost", ptype="subscribe")
        got = yield request
        self.assertEqual(str(got["from"]), "alice@localhost")

        approved = waitFor(alice, "presence_subscribed")
        bobOnline = waitFor(alice, "presence", availableFrom("bob@localhost"))
        bob.send_presence_subscription(pto="alice@localhost", ptype="subscribed")
        got = yield approved
        self.assertEqual(str(got["from"]), "bob@localhost")
        seen = yield bobOnline
        self.assertEqual((str(seen["from"]), seen["show"]), ("bob@localhost/work", "dnd"))

        request = waitFor(alice, "presence_subscribe")
        bob.send_presence_subscription(pto="alice@localhost", ptype="subscribe")
        yield request
        aliceOnline = waitFor(bob, "presence", availableFrom("alice@localhost"))
        alice.send_presence_subscription(pto="bob@localhost", ptype="subscribed")
        seen = yield aliceOnline
        self.assertEqual((str(seen["from"]), seen["status"]), ("alice@localhost/home", "reading"))
        yield self.settle()
        self.assertEqual(self.subscription(alice, "bob@localhost"), "both")
        self.assertEqual(self.subscription(bob, "alice@localhost"), "both")

        # Bob leaves without saying goodbye: Alice sees him offline.
        gone = waitFor(alice, "presence", unavailableFrom("bob@localhost"))
        bob.disconnect()
        seen = yield gone
        self.assertEqual(str(seen["from"]), "bob@localhost/work")

        # Bob comes back: each sees the other again.
        bobBack = waitFor(alice, "presence", availableFrom("bob@localhost"))
        bob2 = slixmppClient("bob@localhost/work", "secret", sslContext=self.clientSSLContext())
        self.addCleanup(bob2.disconnect)
        aliceSeen = waitFor(bob2, "presence", availableFrom("alice@localhost"))
        yield connectSlixmpp(bob2, self.server.port("c2s"))
        yield deferred(bob2.get_roster())
        self.assertEqual(self.subscription(bob2, "alice@localhost"), "both")
        bob2.send_presence()
        yield bobBack
        seen = yield aliceSeen
        self.assertEqual((str(seen["from"]), seen["status"]), ("alice@localhost/home", "reading"))

    @defer.inlineCallbacks
    def test_probeAnsweredAtLogin(self):
        """Bob, subscribed to Alice, logs in after her and receives her presence in answer to the server's probe."""
        for user, contact in (("alice", "bob@localhost"), ("bob", "alice@localhost")):
            yield self.server.store.runInteraction("seed", apply_changes_txn, "localhost", user, [("item", RosterItem(contact, None, "both"), 1)])
        alice = yield self.login("alice@localhost/home", {"pshow": "away", "pstatus": "lunch"})
        bob = slixmppClient("bob@localhost/work", "secret", sslContext=self.clientSSLContext())
        self.addCleanup(bob.disconnect)
        aliceSeen = waitFor(bob, "presence", availableFrom("alice@localhost"))
        bobSeen = waitFor(alice, "presence", availableFrom("bob@localhost"))
        yield connectSlixmpp(bob, self.server.port("c2s"))
        yield deferred(bob.get_roster())
        bob.send_presence()
        seen = yield aliceSeen
        self.assertEqual((str(seen["from"]), seen["show"], seen["status"]), ("alice@localhost/home", "away", "lunch"))
        seen = yield bobSeen
        self.assertEqual(str(seen["from"]), "bob@localhost/work")

    @defer.inlineCallbacks
    def test_rosterPushReachesSecondResource(self):
        """A roster item added from one resource is pushed to the account's other resource."""
        laptop = yield self.login("alice@localhost/laptop")
        phone = yield self.login("alice@localhost/phone")
        pushed = waitFor(phone, "roster_update", lambda iq: "carol@localhost" in iq["roster"]["items"])
        yield deferred(laptop.update_roster("carol@localhost", name="Carol", groups=["Friends"]))
        yield pushed
        self.assertEqual(phone.client_roster["carol@localhost"]["name"], "Carol")
        self.assertEqual(phone.client_roster["carol@localhost"]["groups"], ["Friends"])
        self.assertEqual(phone.client_roster["carol@localhost"]["subscription"], "none")

        removed = waitFor(phone, "roster_update", lambda iq: iq["roster"]["items"].get("carol@localhost", {}).get("subscription") == "remove")
        yield deferred(laptop.del_roster_item("carol@localhost"))
        yield removed
        self.assertNotIn("carol@localhost", phone.client_roster)

    @defer.inlineCallbacks
    def test_rosterVersioning(self):
        """slixmpp sees the roster versioning feature and, logging in again with the version it has, gets only an empty result."""
        alice = yield self.login("alice@localhost/home")
        self.assertIn("rosterver", alice.features)
        yield deferred(alice.update_roster("carol@localhost", name="Carol"))
        yield self.settle()
        version = alice.client_roster.version
        self.assertTrue(version)
        again = slixmppClient("alice@localhost/other", "secret", sslContext=self.clientSSLContext())
        self.addCleanup(again.disconnect)
        yield connectSlixmpp(again, self.server.port("c2s"))
        again.client_roster.version = version
        result = yield deferred(again.get_roster())
        self.assertEqual(list(result["roster"]["items"]), [])
        self.assertEqual(result["type"], "result")
