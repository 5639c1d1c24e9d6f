"""
Blocking (XEP-0191) and privacy lists (XEP-0016) end to end: slixmpp
clients for Alice, Bob and Carol log in to the real server over loopback.
Blocking goes through slixmpp's xep_0191 plugin; privacy lists, which
slixmpp has no plugin for, are raw iqs.

Transcripts, by who does what:

- Alice blocks Bob: Bob sees her go offline; his message bounces with
  service-unavailable, his ping gets service-unavailable, his presence
  never reaches her, while Carol's message and presence do; Alice's own
  message to Bob comes back not-acceptable with <blocked/>.  Alice
  unblocks Bob: each sees the other again, and his ping is answered.
- Alice denies Carol with a privacy list made default over raw iq: the
  blocklist slixmpp reads shows Carol, and Carol cannot reach Alice.
- Alice blocks Carol from her laptop: her phone, which asked for the
  blocklist, gets the push.
"""

from __future__ import annotations

import asyncio

from twisted.internet import defer, reactor
from twisted.trial import unittest

from jabberd.store.roster import RosterItem, apply_changes_txn
from tests.harness import ServerMixin, connectSlixmpp, deferred, slixmppClient

NS_PRIVACY = "jabber:iq:privacy"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


def waitFor(client, event: str, predicate=lambda stanza: True, timeout: float = 5.0) -> defer.Deferred:
    """A Deferred for the next C{event} of C{client} whose stanza matches C{predicate}."""
    future = asyncio.get_event_loop().create_future()

    def handler(stanza):
        if not future.done() and predicate(stanza):
            future.set_result(stanza)
            client.del_event_handler(event, handler)

    client.add_event_handler(event, handler)
    return defer.Deferred.fromFuture(future).addTimeout(timeout, reactor)


def collect(client, event: str) -> list:
    """Every C{event} stanza C{client} gets from now on."""
    seen: list = []
    client.add_event_handler(event, seen.append)
    return seen


def availableFrom(bare: str):
    return lambda p: p["from"].bare == bare and p["type"] in ("available", "away", "chat", "dnd", "xa")


def unavailableFrom(bare: str):
    return lambda p: p["from"].bare == bare and p["type"] == "unavailable"


def fromBare(bare: str):
    return lambda s: s["from"].bare == bare


class SlixmppPrivacyTests(ServerMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.startServer()
        for user in ("alice", "bob", "carol"):
            yield self.addUser(f"{user}@localhost", "secret")
        # Alice and Bob, Alice and Carol: mutual subscriptions.
        for user, contacts in (("alice", ("bob", "carol")), ("bob", ("alice",)), ("carol", ("alice",))):
            changes = [("item", RosterItem(f"{c}@localhost", None, "both"), 1) for c in contacts]
            yield self.server.store.runInteraction("seed", apply_changes_txn, "localhost", user, changes)

    @defer.inlineCallbacks
    def login(self, jid: str, presence: dict | None = None):
        """Connect, fetch the roster, send initial presence."""
        client = slixmppClient(jid, "secret", sslContext=self.clientSSLContext(), plugins=("xep_0030", "xep_0191", "xep_0199"))
        self.addCleanup(client.disconnect)
        yield connectSlixmpp(client, self.server.port("c2s"))
        yield deferred(client.get_roster())
        client.send_presence(**(presence or {}))
        return client

    @defer.inlineCallbacks
    def everyoneOnline(self):
        """Alice, then Bob and Carol, each having seen Alice online."""
        alice = yield self.login("alice@localhost/home", {"pstatus": "reading"})
        bob = slixmppClient("bob@localhost/work", "secret", sslContext=self.clientSSLContext(), plugins=("xep_0030", "xep_0191", "xep_0199"))
        self.addCleanup(bob.disconnect)
        aliceForBob = waitFor(bob, "presence", availableFrom("alice@localhost"))
        yield connectSlixmpp(bob, self.server.port("c2s"))
        yield deferred(bob.get_roster())
        bobOnline = waitFor(alice, "presence", availableFrom("bob@localhost"))
        bob.send_presence()
        yield aliceForBob
        yield bobOnline
        carol = slixmppClient("carol@localhost/phone", "secret", sslContext=self.clientSSLContext(), plugins=("xep_0030", "xep_0191", "xep_0199"))
        self.addCleanup(carol.disconnect)
        aliceForCarol = waitFor(carol, "presence", availableFrom("alice@localhost"))
        yield connectSlixmpp(carol, self.server.port("c2s"))
        yield deferred(carol.get_roster())
        carolOnline = waitFor(alice, "presence", availableFrom("carol@localhost"))
        carol.send_presence()
        yield aliceForCarol
        yield carolOnline
        return alice, bob, carol

    def privacyIQ(self, client, type_: str, payload: str):
        """A raw jabber:iq:privacy iq (slixmpp has no plugin for XEP-0016)."""
        from slixmpp.xmlstream import ET

        iq = client.make_iq_set() if type_ == "set" else client.make_iq_get()
        iq.append(ET.fromstring(f"<query xmlns='{NS_PRIVACY}'>{payload}</query>"))
        return deferred(iq.send(timeout=5))

    @defer.inlineCallbacks
    def expectIqError(self, awaitable) -> defer.Deferred:
        """The condition of the IqError C{awaitable} fails with."""
        from slixmpp.exceptions import IqError

        try:
            yield deferred(awaitable)
        except IqError as e:
            return e.iq["error"]["condition"]
        self.fail("expected an error")

    @defer.inlineCallbacks
    def test_blockAndUnblock(self):
        """Alice blocks Bob with xep_0191: he can no longer reach her by message, presence or iq, and she cannot reach him; unblocking restores both ways."""
        alice, bob, carol = yield self.everyoneOnline()
        self.assertEqual((yield deferred(alice.plugin["xep_0191"].get_blocked_jids())), set())

        # Alice blocks Bob: Bob sees her go offline; she sees him go too.
        aliceGone = waitFor(bob, "presence", unavailableFrom("alice@localhost"))
        bobGone = waitFor(alice, "presence", unavailableFrom("bob@localhost"))
        pushed = waitFor(alice, "blocked")
        yield deferred(alice.plugin["xep_0191"].block("bob@localhost"))
        yield aliceGone
        yield bobGone
        push = yield pushed
        self.assertEqual([str(i["jid"]) for i in push["block"]], ["bob@localhost"])
        blocked = yield deferred(alice.plugin["xep_0191"].get_blocked_jids())
        self.assertEqual({str(j) for j in blocked}, {"bob@localhost"})

        # Bob's message bounces; Carol's, sent after it, arrives alone.
        aliceMessages = collect(alice, "message")
        alicePresence = collect(alice, "presence")
        bounced = waitFor(bob, "message_error")
        bob.send_message(mto="alice@localhost", mbody="Can you hear me?", mtype="chat")
        error = yield bounced
        self.assertEqual((error["from"].bare, error["error"]["condition"], error["body"]), ("alice@localhost", "service-unavailable", "Can you hear me?"))
        # His iq gets service-unavailable, his presence goes nowhere.
        condition = yield self.expectIqError(bob.plugin["xep_0199"].send_ping("alice@localhost/home", timeout=5))
        self.assertEqual(condition, "service-unavailable")
        bob.send_presence(pshow="dnd")
        carolSeen = waitFor(alice, "presence", availableFrom("carol@localhost"))
        carolSays = waitFor(alice, "message", fromBare("carol@localhost"))
        carol.send_presence(pshow="away")
        carol.send_message(mto="alice@localhost", mbody="still here", mtype="chat")
        yield carolSeen
        said = yield carolSays
        self.assertEqual(said["body"], "still here")
        self.assertEqual([m["from"].bare for m in aliceMessages], ["carol@localhost"])
        self.assertEqual({p["from"].bare for p in alicePresence}, {"carol@localhost"})

        # Alice cannot reach Bob either: not-acceptable with <blocked/>.
        refused = waitFor(alice, "message_error")
        alice.send_message(mto="bob@localhost", mbody="Can you hear me now?", mtype="chat")
        error = yield refused
        self.assertEqual((error["from"].bare, error["error"]["condition"]), ("bob@localhost", "not-acceptable"))
        self.assertIsNotNone(error["error"].xml.find(f"{{{NS_BLOCKING_ERRORS}}}blocked"))

        # Unblocked: they see each other again, and Bob gets through.
        aliceBack = waitFor(bob, "presence", availableFrom("alice@localhost"))
        bobBack = waitFor(alice, "presence", availableFrom("bob@localhost"))
        yield deferred(alice.plugin["xep_0191"].unblock("bob@localhost"))
        seen = yield aliceBack
        self.assertEqual(seen["status"], "reading")
        seen = yield bobBack
        self.assertEqual(seen["show"], "dnd")
        arrived = waitFor(alice, "message", fromBare("bob@localhost"))
        bob.send_message(mto="alice@localhost", mbody="back", mtype="chat")
        got = yield arrived
        self.assertEqual(got["body"], "back")
        yield deferred(bob.plugin["xep_0199"].send_ping("alice@localhost/home", timeout=5))

    @defer.inlineCallbacks
    def test_privacyListSeenAsBlocklist(self):
        """A default privacy list set over raw iq denies Carol, shows in the xep_0191 blocklist, and keeps Carol out."""
        alice, bob, carol = yield self.everyoneOnline()
        result = yield self.privacyIQ(alice, "set", "<list name='no-carol'><item type='jid' value='carol@localhost' action='deny' order='1'/></list>")
        self.assertEqual(result["type"], "result")
        carolGone = waitFor(carol, "presence", unavailableFrom("alice@localhost"))
        yield self.privacyIQ(alice, "set", "<default name='no-carol'/>")
        yield carolGone
        names = yield self.privacyIQ(alice, "get", "")
        query = names.xml.find(f"{{{NS_PRIVACY}}}query")
        self.assertEqual([(c.tag.split("}")[1], c.get("name")) for c in query], [("default", "no-carol"), ("list", "no-carol")])
        blocked = yield deferred(alice.plugin["xep_0191"].get_blocked_jids())
        self.assertEqual({str(j) for j in blocked}, {"carol@localhost"})

        bounced = waitFor(carol, "message_error")
        carol.send_message(mto="alice@localhost", mbody="let me in", mtype="chat")
        error = yield bounced
        self.assertEqual(error["error"]["condition"], "service-unavailable")
        condition = yield self.expectIqError(carol.plugin["xep_0199"].send_ping("alice@localhost/home", timeout=5))
        self.assertEqual(condition, "service-unavailable")
        arrived = waitFor(alice, "message", fromBare("bob@localhost"))
        bob.send_message(mto="alice@localhost", mbody="I am fine", mtype="chat")
        self.assertEqual((yield arrived)["body"], "I am fine")

    @defer.inlineCallbacks
    def test_pushToOtherResource(self):
        """A block from Alice's laptop is pushed to her phone, which retrieved the blocklist; Carol is then blocked for both."""
        laptop = yield self.login("alice@localhost/laptop")
        phone = yield self.login("alice@localhost/phone")
        yield deferred(phone.plugin["xep_0191"].get_blocked_jids())
        pushed = waitFor(phone, "blocked")
        yield deferred(laptop.plugin["xep_0191"].block(["carol@localhost", "spam@example.org"]))
        push = yield pushed
        self.assertEqual(sorted(str(i["jid"]) for i in push["block"]), ["carol@localhost", "spam@example.org"])
        unpushed = waitFor(phone, "unblocked")
        yield deferred(laptop.plugin["xep_0191"].unblock("spam@example.org"))
        push = yield unpushed
        self.assertEqual([str(i["jid"]) for i in push["unblock"]], ["spam@example.org"])
        blocked = yield deferred(phone.plugin["xep_0191"].get_blocked_jids())
        self.assertEqual({str(j) for j in blocked}, {"carol@localhost"})
