"""
Last Activity (XEP-0012) through real sessions: server uptime, accounts'
last logout with its status, and who may ask (a presence subscription).

Roster state is written straight into the store with the roster store's
own functions (the roster module is not loaded), which is what this module
reads: L{jabberd.store.roster.get_subscription_txn}.
"""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from jabberd import bus as B

from jabberd.store.userdata import get_last_activity_txn
from tests.fakes import SettableClock, element
from tests.modules.test_disco import ServiceTestMixin, error

QUERY = "<query xmlns='jabber:iq:last'/>"
START = 1_700_000_000.0


def last(id_: str, frm: str, seconds: int, status: str = "", to: str = "alice@localhost/a") -> str:
    return f"<iq type='result' id='{id_}' from='{frm}' to='{to}'><query xmlns='jabber:iq:last' seconds='{seconds}'>{status}</query></iq>"


def refused(id_: str, frm: str, condition: str, type_: str, text: str | None = None, to: str = "alice@localhost/a") -> str:
    return f"<iq type='error' id='{id_}' from='{frm}' to='{to}'>{error(condition, type_, text)}</iq>"


class LastActivityTests(ServiceTestMixin, unittest.TestCase):
    """Uptime, last logout and who may know it."""

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = SettableClock(START)
        yield self.startWith(["last"], users=("alice@localhost", "bob@localhost", "carol@localhost"), clock=self.clock)
        self.alice = self.bind("alice@localhost/a")

    @property
    def module(self):
        return self.server.modules.modules["last"]

    @defer.inlineCallbacks
    def logout(self, session, status: str | None = None, presence: bool = True):
        """C{session} sends unavailable presence (with C{status}) unless not C{presence}, then disconnects."""
        if presence:
            body = f"<status>{status}</status>" if status is not None else ""
            session.receive(f"<presence type='unavailable'>{body}</presence>")
        session.disconnect()
        yield self.module.whenIdle()

    def stored(self, bare: str):
        user, _, host = bare.partition("@")
        return self.server.store.runInteraction("get", get_last_activity_txn, host, user)

    @defer.inlineCallbacks
    def test_uptime(self):
        """Asked of the domain, the answer is the seconds since the server started, without text (§5)."""
        self.clock.advance(123456)
        yield self.assertReply(self.alice, f"<iq type='get' id='last3' to='localhost'>{QUERY}</iq>", last("last3", "localhost", 123456))

    @defer.inlineCallbacks
    def test_ownIsZero(self):
        """Asked of one's own account (no 'to' or the bare JID), the answer is 0: the account is online (§3)."""
        yield self.assertReply(self.alice, f"<iq type='get' id='o'>{QUERY}</iq>", last("o", "alice@localhost", 0))
        yield self.assertReply(self.alice, f"<iq type='get' id='p' to='alice@localhost'>{QUERY}</iq>", last("p", "alice@localhost", 0))

    @defer.inlineCallbacks
    def test_offlineContact(self):
        """A subscribed contact learns the seconds since the last logout and its status text (§3)."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        bob = self.bind("bob@localhost/b")
        self.clock.advance(10)
        yield self.logout(bob, "Heading Home")
        self.clock.advance(903)
        yield self.assertReply(
            self.alice, f"<iq type='get' id='last1' to='bob@localhost'>{QUERY}</iq>", last("last1", "bob@localhost", 903, "Heading Home")
        )

    @defer.inlineCallbacks
    def test_bothSubscription(self):
        """A 'both' subscription allows the query as 'from' does."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "both")
        yield self.logout(self.bind("bob@localhost/b"), "bye")
        self.clock.advance(5)
        yield self.assertReply(self.alice, f"<iq type='get' id='l' to='bob@localhost'>{QUERY}</iq>", last("l", "bob@localhost", 5, "bye"))

    @defer.inlineCallbacks
    def test_onlineContactIsZero(self):
        """A contact with a connected resource is reported with 0 seconds and no text (§3)."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        yield self.logout(self.bind("bob@localhost/old"), "old status")
        self.bind("bob@localhost/b")
        self.clock.advance(60)
        yield self.assertReply(self.alice, f"<iq type='get' id='l' to='bob@localhost'>{QUERY}</iq>", last("l", "bob@localhost", 0))

    @defer.inlineCallbacks
    def test_withoutSubscriptionForbidden(self):
        """Without a 'from' or 'both' subscription the answer is forbidden, whether the account exists or not (§3, §7)."""
        yield self.logout(self.bind("bob@localhost/b"), "secret")
        request = f"<iq type='get' id='l' to='bob@localhost'>{QUERY}</iq>"
        yield self.assertReply(self.alice, request, refused("l", "bob@localhost", "forbidden", "auth"))
        yield self.seedSubscription("bob@localhost", "alice@localhost", "to")
        yield self.assertReply(self.alice, request, refused("l", "bob@localhost", "forbidden", "auth"))
        yield self.assertReply(
            self.alice, f"<iq type='get' id='n' to='nobody@localhost'>{QUERY}</iq>", refused("n", "nobody@localhost", "forbidden", "auth")
        )

    @defer.inlineCallbacks
    def test_neverLoggedIn(self):
        """An authorized query about an account that never logged out is item-not-found."""
        yield self.seedSubscription("carol@localhost", "alice@localhost", "from")
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='l' to='carol@localhost'>{QUERY}</iq>",
            refused("l", "carol@localhost", "item-not-found", "cancel", "no logout recorded"),
        )

    @defer.inlineCallbacks
    def test_recordedWhenTheLastResourceLeaves(self):
        """Only the end of the account's last session is a logout; its time and status are kept."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        phone, laptop = self.bind("bob@localhost/phone"), self.bind("bob@localhost/laptop")
        yield self.logout(phone, "phone off")
        self.assertIsNone((yield self.stored("bob@localhost")))
        self.clock.advance(100)
        yield self.logout(laptop, "laptop off")
        when, status = yield self.stored("bob@localhost")
        self.assertEqual((when.timestamp(), status), (START + 100, "laptop off"))

    @defer.inlineCallbacks
    def test_droppedConnectionHasNoStatus(self):
        """A session that ends without unavailable presence is recorded with an empty status."""
        yield self.logout(self.bind("bob@localhost/b"), presence=False)
        when, status = yield self.stored("bob@localhost")
        self.assertEqual((when.timestamp(), status), (START, ""))

    @defer.inlineCallbacks
    def test_availableAgainForgetsStatus(self):
        """Becoming available again after an unavailable presence forgets its status."""
        bob = self.bind("bob@localhost/b")
        bob.receive("<presence type='unavailable'><status>away for good</status></presence>")
        bob.receive("<presence/>")
        yield self.logout(bob, presence=False)
        _, status = yield self.stored("bob@localhost")
        self.assertEqual(status, "")

    def spyWrites(self) -> list[str]:
        """The descriptions of the store interactions run from now on."""
        calls: list[str] = []
        original = self.server.store.runInteraction

        def spy(desc, *args, **kw):
            calls.append(desc)
            return original(desc, *args, **kw)

        self.server.store.runInteraction = spy
        return calls

    @defer.inlineCallbacks
    def test_logoutsWaitForTheInterval(self):
        """Logouts wait in memory for the flush interval, then are written together in one transaction."""
        self.module.flushInterval = 0.2
        calls = self.spyWrites()
        bob, carol = self.bind("bob@localhost/b"), self.bind("carol@localhost/c")
        bob.disconnect()
        yield task.deferLater(reactor, 0.1, lambda: None)
        carol.disconnect()
        self.assertEqual(calls, [])
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(calls, ["set_last_activity"])
        yield self.module.whenIdle()
        self.assertIsNotNone((yield self.stored("bob@localhost")))
        self.assertIsNotNone((yield self.stored("carol@localhost")))

    @defer.inlineCallbacks
    def test_fullBatchWrittenAtOnce(self):
        """As many logouts as the batch size are written at once, without waiting for the interval."""
        self.module.flushInterval, self.module.flushBatch = 3600, 2
        calls = self.spyWrites()
        bob, carol = self.bind("bob@localhost/b"), self.bind("carol@localhost/c")
        bob.disconnect()
        self.assertEqual(calls, [])
        carol.disconnect()
        self.assertEqual(calls, ["set_last_activity"])
        yield self.module.whenIdle()
        self.assertIsNotNone((yield self.stored("carol@localhost")))

    @defer.inlineCallbacks
    def test_waitingLogoutAnswered(self):
        """A query about a logout not yet written is answered from memory, with its time and status."""
        self.module.flushInterval = 3600
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        bob = self.bind("bob@localhost/b")
        bob.receive("<presence type='unavailable'><status>brb</status></presence>")
        bob.disconnect()
        self.clock.advance(42)
        yield self.assertReply(self.alice, f"<iq type='get' id='w' to='bob@localhost'>{QUERY}</iq>", last("w", "bob@localhost", 42, "brb"))
        self.assertIsNone((yield self.stored("bob@localhost")))

    @defer.inlineCallbacks
    def test_recreatedAccountForgetsWaitingLogout(self):
        """A waiting logout of an account deleted and created again under the same name is not written for the new one."""
        self.module.flushInterval = 3600
        self.bind("bob@localhost/b").disconnect()
        yield self.server.accounts.delete("localhost", "bob")
        yield self.server.accounts.create("localhost", "bob", [])
        self.server.bus.notify(B.ACCOUNT_CREATED, "localhost", "bob")
        yield self.module.whenIdle()
        self.assertIsNone((yield self.stored("bob@localhost")))

    @defer.inlineCallbacks
    def test_oneWritePerBatchOfLogouts(self):
        """Logouts in the same reactor turn are written in one transaction, never one per stanza."""
        calls = []
        original = self.server.store.runInteraction

        def spy(desc, *args, **kw):
            calls.append(desc)
            return original(desc, *args, **kw)

        self.server.store.runInteraction = spy
        bob, carol = self.bind("bob@localhost/b"), self.bind("carol@localhost/c")
        bob.receive("<presence type='unavailable'><status>b</status></presence>")
        carol.receive("<presence type='unavailable'/>")
        bob.disconnect()
        carol.disconnect()
        yield self.module.whenIdle()
        self.assertEqual(calls, ["set_last_activity"])
        self.assertEqual([s for _, s in [(yield self.stored("bob@localhost")), (yield self.stored("carol@localhost"))]], ["b", ""])

    @defer.inlineCallbacks
    def test_shutdownRecordsOnlineAccounts(self):
        """Accounts still online when the server stops are recorded as logging out then."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        self.bind("bob@localhost/b")
        self.clock.advance(50)
        yield self.restart()
        self.clock.advance(7)
        alice = self.bind("alice@localhost/again")
        yield self.assertReply(
            alice, f"<iq type='get' id='l' to='bob@localhost'>{QUERY}</iq>", last("l", "bob@localhost", 7, to="alice@localhost/again")
        )

    @defer.inlineCallbacks
    def test_fullJIDWithoutSubscriptionForbidden(self):
        """A query to a full JID from an entity not allowed to see presence never reaches the client: forbidden (§4)."""
        bob = self.bind("bob@localhost/b")
        yield self.assertReply(
            self.alice,
            f"<iq type='get' id='last2' to='bob@localhost/b'>{QUERY}</iq>",
            refused("last2", "bob@localhost/b", "forbidden", "auth"),
        )
        self.assertEqual(bob.link.pop(), [])

    @defer.inlineCallbacks
    def test_fullJIDWithSubscriptionDelivered(self):
        """With a subscription the query reaches the client, which answers itself (§4)."""
        yield self.seedSubscription("bob@localhost", "alice@localhost", "from")
        bob = self.bind("bob@localhost/b")
        self.alice.receive(f"<iq type='get' id='last2' to='bob@localhost/b'>{QUERY}</iq>")
        (got,) = yield self.received(bob)
        self.assertStanza(got, f"<iq type='get' id='last2' from='alice@localhost/a' to='bob@localhost/b'>{QUERY}</iq>")
        bob.receive("<iq type='result' id='last2' to='alice@localhost/a'><query xmlns='jabber:iq:last' seconds='123'/></iq>")
        (answer,) = yield self.received(self.alice)
        self.assertStanza(answer, last("last2", "bob@localhost/b", 123))

    @defer.inlineCallbacks
    def test_fullJIDOwnResourceDelivered(self):
        """An account's own resources may ask each other."""
        other = self.bind("alice@localhost/other")
        self.alice.receive(f"<iq type='get' id='x' to='alice@localhost/other'>{QUERY}</iq>")
        (got,) = yield self.received(other)
        self.assertStanza(got, f"<iq type='get' id='x' from='alice@localhost/a' to='alice@localhost/other'>{QUERY}</iq>")

    def test_fullJIDFromOwnServerDelivered(self):
        """The account's own server may ask its clients (it sees their presence anyway)."""
        bob = self.bind("bob@localhost/b")
        self.server.router.route(element(f"<iq type='get' id='s' from='localhost' to='bob@localhost/b'>{QUERY}</iq>"))
        self.assertEqual([e["id"] for e in bob.link.pop()], ["s"])

    def test_fullJIDOtherStanzasUntouched(self):
        """Other iqs, and last-activity results, to full JIDs pass the filter at once."""
        bob = self.bind("bob@localhost/b")
        self.alice.receive("<iq type='get' id='p' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.alice.receive("<iq type='result' id='r' to='bob@localhost/b'><query xmlns='jabber:iq:last' seconds='1'/></iq>")
        self.assertEqual([e["id"] for e in bob.link.pop()], ["p", "r"])
