"""
Offline messages (XEP-0160, jabberd.modules.offline and jabberd.store.offline):
what is stored, delivery with XEP-0203 delays, order, quota, exactly-once
delivery, store failures and restarts; the txn functions on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.trial import unittest

from jabberd.c2s.session import BOUND
from jabberd.service import XMPPServer
from jabberd.store.accounts import Accounts, NoSuchAccount
from jabberd.store.offline import (
    OfflineMessages,
    OfflineQuotaExceeded,
    offline_messages,
)
from tests.fakes import CollectingLink, ModuleTestMixin
from tests.harness import makeConfig
from tests.modules.test_messages import STANZAS, PresenceSimulation, StanzaAssertions
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

#: 2023-11-14T22:13:20Z, plus a quarter second that the stamp leaves out.
T0 = 1700000000.25
STAMP0 = "2023-11-14T22:13:20Z"
CHATSTATES = "http://jabber.org/protocol/chatstates"


def delay(stamp: str = STAMP0) -> str:
    return f"<delay xmlns='urn:xmpp:delay' from='localhost' stamp='{stamp}'>Offline Storage</delay>"


class AnsweringLink(CollectingLink):
    """
    A client that answers the server's pings as every client must answer an
    iq get (RFC 6120 §8.2.3), a moment later, as a real client would; the
    pings are kept apart from the collected elements.
    """

    def __init__(self, session, answer: str | None = "result", withTo: bool = True) -> None:
        super().__init__()
        self.session = session
        self.answer = answer
        self.withTo = withTo
        self.pings: list = []

    def sendBytes(self, data: bytes) -> None:
        before = len(self.elements)
        super().sendBytes(data)
        for e in self.elements[before:]:
            if e.name == "iq" and e.getAttribute("type") == "get":
                self.elements.remove(e)
                self.pings.append(e)
                if self.answer:
                    reactor.callLater(0, self.answerPing, e, self.answer)

    def answerPing(self, ping, answer: str = "result") -> None:
        """Answer C{ping} from this link's session (if it is still there)."""
        if self.session.state != BOUND:
            return
        to = f" to='{ping['from']}'" if self.withTo else ""
        if answer == "result":
            self.session.receive(f"<iq type='result' id='{ping['id']}'{to}/>")
        else:
            self.session.receive(
                f"<iq type='error' id='{ping['id']}'{to}><ping xmlns='urn:xmpp:ping'/><error type='cancel'>"
                f"<service-unavailable xmlns='{STANZAS}'/></error></iq>"
            )


class DisconnectingLink(AnsweringLink):
    """A client that vanishes right after it has received C{after} messages."""

    def __init__(self, session, after: int) -> None:
        super().__init__(session)
        self.after = after

    def sendBytes(self, data: bytes) -> None:
        super().sendBytes(data)
        if len(self.elements) >= self.after and self.session.state == BOUND:
            self.session.disconnect()


class OfflineBase(ModuleTestMixin, PresenceSimulation, StanzaAssertions):
    modules = ["messages", "offline"]
    overrides: dict = {}

    @defer.inlineCallbacks
    def setUp(self):
        yield self.startModules(modules=self.modules, **self.overrides)
        yield self.addUser("alice@localhost")
        yield self.addUser("bob@localhost")
        self.alice = self.online("alice@localhost/a")
        self.useModule()

    def online(self, fullJID: str, priority: int = 0, link=AnsweringLink, **kw):
        """Bind C{fullJID} over a client link that answers pings, then send its initial presence."""
        session = self.bind(fullJID)
        session.link = link(session, **kw)
        return self.makeAvailable(session, priority)

    def useModule(self):
        self.offline = self.server.modules.modules["offline"]
        self.clock = Clock()
        self.clock.advance(T0)
        self.offline.clock = self.clock

    def settle(self):
        """Wait until every queued store and delivery is done."""
        return self.offline.idle()

    def stored(self, user: str = "bob"):
        return OfflineMessages(self.server.store).count("localhost", user)

    def totalRows(self):
        def count(conn):
            return conn.execute(sa.select(sa.func.count()).select_from(offline_messages)).scalar_one()

        return self.server.store.runInteraction("count all", count)

    @defer.inlineCallbacks
    def restart(self):
        """Stop the server and start a new one on the same data folder."""
        dataDir = self.server.config.data_dir
        yield self.server.stopService()
        overrides = {"c2s": {"listen": [], "listen_tls": []}, "modules": {"enabled": list(self.modules)}, **self.overrides}
        self.server = XMPPServer(makeConfig(dataDir, **overrides), reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        yield self.server.ready
        self.useModule()

    def send(self, id_: str, body: str = "hi", to: str = "bob@localhost", type_: str | None = "chat", extra: str = ""):
        typeAttr = f" type='{type_}'" if type_ else ""
        self.alice.receive(f"<message to='{to}'{typeAttr} id='{id_}'><body>{body}</body>{extra}</message>")

    def expected(self, id_: str, body: str = "hi", to: str = "bob@localhost", type_: str | None = "chat", stamp: str = STAMP0, extra: str = "") -> str:
        typeAttr = f" type='{type_}'" if type_ else ""
        return f"<message to='{to}' from='alice@localhost/a'{typeAttr} id='{id_}'><body>{body}</body>{extra}{delay(stamp)}</message>"


class StoreAndDeliverTests(OfflineBase, unittest.TestCase):
    """A message to an offline account is stored and delivered at the next non-negative initial presence."""

    @defer.inlineCallbacks
    def test_chatStoredThenDelivered(self):
        """A chat message is stored silently and delivered with a delay stamped by the server, then deleted."""
        self.send("o1")
        yield self.settle()
        self.assertNothing(self.alice)
        self.assertEqual((yield self.stored()), 1)
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("o1"))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_normalStored(self):
        """A message without a type is stored and delivered unchanged but for the delay."""
        self.send("o2", type_=None)
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("o2", type_=None))

    @defer.inlineCallbacks
    def test_chatToGoneResourceStored(self):
        """A chat message to a full JID of an offline account is stored and delivered with its 'to' unchanged."""
        self.send("o3", to="bob@localhost/gone")
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("o3", to="bob@localhost/gone"))

    @defer.inlineCallbacks
    def test_orderAndStamps(self):
        """Stored messages arrive in the order they were accepted, each with its own acceptance time."""
        for i in range(5):
            self.send(f"m{i}", body=str(i))
            self.clock.advance(61)
        yield self.settle()
        self.clock.advance(86400)  # delivery time does not matter
        bob = self.online("bob@localhost/b")
        yield self.settle()
        got = bob.link.pop()
        self.assertEqual(len(got), 5)
        for i, stanza in enumerate(got):
            when = datetime.fromtimestamp(T0 + 61 * i, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.assertStanza(stanza, self.expected(f"m{i}", body=str(i), stamp=when))

    @defer.inlineCallbacks
    def test_stampIsUTC(self):
        """The delay stamp is XEP-0082 UTC to the second, whatever the fraction of the clock."""
        self.clock.advance(0.7)
        self.send("utc")
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("utc", stamp="2023-11-14T22:13:20Z"))

    @defer.inlineCallbacks
    def test_negativeInitialPresenceKeepsThem(self):
        """An initial presence with a negative priority gets nothing; the messages stay stored."""
        self.send("neg")
        yield self.settle()
        bob = self.online("bob@localhost/neg", -1)
        yield self.settle()
        self.assertNothing(bob)
        self.assertEqual((yield self.stored()), 1)

    @defer.inlineCallbacks
    def test_onlyPresentingResourceReceives(self):
        """Only the resource that sent the presence gets the stored messages (XEP-0160 §3)."""
        neg = self.online("bob@localhost/neg", -1)
        self.send("only")
        yield self.settle()
        bob = self.online("bob@localhost/b", 0)
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("only"))
        self.assertNothing(neg)

    @defer.inlineCallbacks
    def test_deliveredOnce(self):
        """Delivered messages are gone: a second resource and a new login get nothing."""
        self.send("once")
        yield self.settle()
        b1 = self.online("bob@localhost/b1")
        yield self.settle()
        self.assertStanza(b1.link.popOne(), self.expected("once"))
        b2 = self.online("bob@localhost/b2")
        yield self.settle()
        b1.disconnect()
        b3 = self.online("bob@localhost/b3")
        yield self.settle()
        self.assertNothing(b1, b2, b3)

    @defer.inlineCallbacks
    def test_twoResourcesAtOnce(self):
        """Two resources coming online together get the stored messages exactly once between them."""
        for i in range(3):
            self.send(f"t{i}", body=str(i))
        yield self.settle()
        b1 = self.online("bob@localhost/b1")
        b2 = self.online("bob@localhost/b2")
        yield self.settle()
        got = b1.link.pop() + b2.link.pop()
        self.assertEqual(sorted(e["id"] for e in got), ["t0", "t1", "t2"])
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_liveMessageWaitsForStoredOnes(self):
        """A message arriving while stored ones are being delivered comes after them, without a delay."""
        self.send("old1", body="1")
        self.send("old2", body="2")
        yield self.settle()
        bob = self.online("bob@localhost/b")
        self.send("new", body="3")  # the stored messages are still being read
        self.assertNothing(bob)
        yield self.settle()
        got = bob.link.pop()
        self.assertEqual(len(got), 3)
        self.assertStanza(got[0], self.expected("old1", body="1"))
        self.assertStanza(got[1], self.expected("old2", body="2"))
        self.assertStanza(got[2], "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='new'><body>3</body></message>")

    @defer.inlineCallbacks
    def test_storeInFlightIsDelivered(self):
        """A message still being stored when the account comes online is delivered, not left behind."""
        self.send("racing")
        bob = self.online("bob@localhost/b")  # the store has not committed yet
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("racing"))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_sessionEndingMidwayKeepsTheRest(self):
        """If the session ends during delivery, only confirmed batches are deleted; the rest comes at the next login."""
        self.offline.batch = 2
        for i in range(5):
            self.send(f"s{i}", body=str(i))
        yield self.settle()
        bob = self.online("bob@localhost/b", link=DisconnectingLink, after=3)
        yield self.settle()
        self.assertEqual([e["id"] for e in bob.link.pop()], ["s0", "s1", "s2"])
        self.assertEqual((yield self.stored()), 3)
        again = self.online("bob@localhost/again")
        yield self.settle()
        got = again.link.pop()
        self.assertEqual(len(got), 3)
        for stanza, i in zip(got, (2, 3, 4)):
            self.assertStanza(stanza, self.expected(f"s{i}", body=str(i)))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_manyMessagesInBatches(self):
        """More messages than one batch are all delivered, in order, and all deleted."""
        self.offline.batch = 3
        for i in range(10):
            self.send(f"b{i}", body=str(i))
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertEqual([e["id"] for e in bob.link.pop()], [f"b{i}" for i in range(10)])
        self.assertEqual((yield self.stored()), 0)

    def test_discoFeature(self):
        """The server advertises msgoffline (XEP-0160 §4)."""
        self.assertIn("msgoffline", self.server.modules.features())


class ConfirmationTests(OfflineBase, unittest.TestCase):
    """Stored messages are deleted only once the client confirmed it has read them."""

    @defer.inlineCallbacks
    def storeOne(self, id_: str = "c1"):
        self.send(id_)
        yield self.settle()

    @defer.inlineCallbacks
    def test_pingAfterBatch(self):
        """After a batch the server pings the client from its domain; the answer deletes the batch."""
        yield self.storeOne()
        bob = self.online("bob@localhost/b", answer=None)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertStanza(bob.link.popOne(), self.expected("c1"))
        [ping] = bob.link.pings
        self.assertStanza(ping, f"<iq type='get' id='{ping['id']}' from='localhost' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertTrue(ping["id"].startswith("offline-"))
        self.assertEqual((yield self.stored()), 1)
        bob.link.answerPing(ping)
        yield self.settle()
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_noAnswerKeepsThemStored(self):
        """A client that never answers gets the messages, but they stay stored and come again next login."""
        yield self.storeOne()
        bob = self.online("bob@localhost/b", answer=None)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertStanza(bob.link.popOne(), self.expected("c1"))
        self.send("live")  # held behind the delivery until it ends
        self.clock.advance(self.offline.ackTimeout)
        yield self.settle()
        self.assertStanza(bob.link.popOne(), "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='live'><body>hi</body></message>")
        self.assertEqual((yield self.stored()), 1)
        bob.disconnect()
        again = self.online("bob@localhost/again")
        yield self.settle()
        self.assertStanza(again.link.popOne(), self.expected("c1"))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_sessionEndingBeforeAnswerKeepsThem(self):
        """A session that ends before answering leaves its batch stored, and the delivery ends at once."""
        yield self.storeOne()
        bob = self.online("bob@localhost/b", answer=None)
        yield task.deferLater(reactor, 0.05, lambda: None)
        bob.disconnect()
        yield self.settle()
        self.assertEqual((yield self.stored()), 1)

    @defer.inlineCallbacks
    def test_errorAnswerConfirms(self):
        """An error answer to the ping (a client without XEP-0199) confirms just as well."""
        yield self.storeOne()
        bob = self.online("bob@localhost/b", answer="error")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("c1"))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_answerWithoutToConfirms(self):
        """An answer that leaves out 'to' (so it is addressed to the account) confirms too."""
        yield self.storeOne()
        bob = self.online("bob@localhost/b", withTo=False)
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("c1"))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_onlyThatSessionCanConfirm(self):
        """An answer with the right id from another session, even of the same account, confirms nothing."""
        yield self.storeOne()
        other = self.online("bob@localhost/other", -1)
        bob = self.online("bob@localhost/b", answer=None)
        yield task.deferLater(reactor, 0.05, lambda: None)
        [ping] = bob.link.pings
        self.alice.receive(f"<iq type='result' id='{ping['id']}' to='localhost'/>")
        other.receive(f"<iq type='result' id='{ping['id']}' to='localhost'/>")
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual((yield self.stored()), 1)
        bob.link.answerPing(ping)
        yield self.settle()
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_failedDeleteMeansRedelivery(self):
        """If deleting a confirmed batch fails, the messages come again next login: repeated, never lost."""
        yield self.storeOne()

        class FailingDelete(OfflineMessages):
            def delete(self, host, username, ids):
                return defer.fail(RuntimeError("the database went away"))

        self.offline.messages = FailingDelete(self.server.store)
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("c1"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.offline.messages = OfflineMessages(self.server.store)
        bob.disconnect()
        again = self.online("bob@localhost/again")
        yield self.settle()
        self.assertStanza(again.link.popOne(), self.expected("c1"))
        self.assertEqual((yield self.stored()), 0)


class WhatIsStoredTests(OfflineBase, unittest.TestCase):
    """XEP-0160 §3: which messages are kept, which refused, which dropped."""

    @defer.inlineCallbacks
    def test_headlineNotStored(self):
        """A headline to an offline account is dropped silently."""
        self.send("h", type_="headline")
        yield self.settle()
        self.assertNothing(self.alice)
        self.assertEqual((yield self.totalRows()), 0)

    @defer.inlineCallbacks
    def test_groupchatBouncedNotStored(self):
        """A groupchat message to an offline account gets service-unavailable and is not stored."""
        self.send("g", type_="groupchat")
        yield self.settle()
        self.assertStanza(
            self.alice.link.popOne(),
            f"<message from='bob@localhost' to='alice@localhost/a' id='g' type='error'><body>hi</body><error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></message>",
        )
        self.assertEqual((yield self.totalRows()), 0)

    @defer.inlineCallbacks
    def test_errorNotStored(self):
        """An error message to an offline account is dropped silently."""
        self.alice.receive("<message to='bob@localhost' type='error' id='e'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        yield self.settle()
        self.assertNothing(self.alice)
        self.assertEqual((yield self.totalRows()), 0)

    @defer.inlineCallbacks
    def test_chatStatesOnlyNotStored(self):
        """A chat state notification without a body (with thread, hints or ids) is dropped silently (XEP-0160 §3)."""
        self.alice.receive(f"<message to='bob@localhost' type='chat' id='cs1'><composing xmlns='{CHATSTATES}'/></message>")
        self.alice.receive(
            f"<message to='bob@localhost' type='chat' id='cs2'><paused xmlns='{CHATSTATES}'/><thread>t1</thread>"
            "<no-permanent-store xmlns='urn:xmpp:hints'/><origin-id xmlns='urn:xmpp:sid:0' id='x'/></message>"
        )
        self.alice.receive(f"<message to='bob@localhost' id='cs3'><gone xmlns='{CHATSTATES}'/></message>")
        yield self.settle()
        self.assertNothing(self.alice)
        self.assertEqual((yield self.totalRows()), 0)

    @defer.inlineCallbacks
    def test_chatStateWithBodyStored(self):
        """A message with a body and a chat state is stored whole."""
        self.send("cs4", extra=f"<active xmlns='{CHATSTATES}'/>")
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("cs4", extra=f"<active xmlns='{CHATSTATES}'/>"))

    @defer.inlineCallbacks
    def test_receiptStored(self):
        """A delivery receipt (XEP-0184) has a payload of its own and is stored."""
        self.alice.receive("<message to='bob@localhost' id='r1'><received xmlns='urn:xmpp:receipts' id='o1'/></message>")
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), f"<message to='bob@localhost' from='alice@localhost/a' id='r1'><received xmlns='urn:xmpp:receipts' id='o1'/>{delay()}</message>")

    @defer.inlineCallbacks
    def test_noStoreHintRefused(self):
        """A message asking not to be stored (XEP-0334) gets service-unavailable instead of vanishing."""
        self.send("ns", extra="<no-store xmlns='urn:xmpp:hints'/>")
        yield self.settle()
        self.assertStanza(
            self.alice.link.popOne(),
            f"<message from='bob@localhost' to='alice@localhost/a' id='ns' type='error'><body>hi</body><no-store xmlns='urn:xmpp:hints'/>"
            f"<error type='cancel'><service-unavailable xmlns='{STANZAS}'/>"
            f"<text xmlns='{STANZAS}' xml:lang='en'>the recipient is offline and the message asks not to be stored</text></error></message>",
        )
        self.assertEqual((yield self.totalRows()), 0)

    @defer.inlineCallbacks
    def test_unknownAccountBounced(self):
        """A chat message to an account that does not exist gets service-unavailable after the store says so."""
        self.send("u", to="nobody@localhost")
        yield self.settle()
        self.assertStanza(
            self.alice.link.popOne(),
            f"<message from='nobody@localhost' to='alice@localhost/a' id='u' type='error'><body>hi</body><error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></message>",
        )
        self.assertEqual((yield self.totalRows()), 0)

    @defer.inlineCallbacks
    def test_forgedDelayNotKept(self):
        """A delay forged in the server's name is removed before storing; only the real one is delivered."""
        self.send("fd", extra="<delay xmlns='urn:xmpp:delay' from='localhost' stamp='1999-01-01T00:00:00Z'/>")
        yield self.settle()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("fd"))

    @defer.inlineCallbacks
    def test_accountDeletionRemovesStored(self):
        """Deleting the account deletes its stored messages (ON DELETE CASCADE)."""
        self.send("del")
        yield self.settle()
        self.assertEqual((yield self.totalRows()), 1)
        yield self.server.accounts.delete("localhost", "bob")
        self.assertEqual((yield self.totalRows()), 0)


class QuotaTests(OfflineBase, unittest.TestCase):
    """limits.max_offline_messages: beyond it the sender gets service-unavailable."""

    overrides = {"limits": {"max_offline_messages": 3}}

    @defer.inlineCallbacks
    def test_quota(self):
        """The fourth message to a full store is refused with service-unavailable; the first three are delivered."""
        for i in range(4):
            self.send(f"q{i}", body=str(i))
        yield self.settle()
        self.assertStanza(
            self.alice.link.popOne(),
            f"<message from='bob@localhost' to='alice@localhost/a' id='q3' type='error'><body>3</body>"
            f"<error type='cancel'><service-unavailable xmlns='{STANZAS}'/>"
            f"<text xmlns='{STANZAS}' xml:lang='en'>the recipient&apos;s offline message storage is full</text></error></message>",
        )
        self.assertEqual((yield self.stored()), 3)
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertEqual([e["id"] for e in bob.link.pop()], ["q0", "q1", "q2"])

    @defer.inlineCallbacks
    def test_quotaIsPerAccount(self):
        """One account's full store does not refuse messages for another."""
        yield self.addUser("carol@localhost")
        for i in range(3):
            self.send(f"q{i}")
        self.send("c", to="carol@localhost")
        yield self.settle()
        self.assertNothing(self.alice)
        self.assertEqual(((yield self.stored("bob")), (yield self.stored("carol"))), (3, 1))


class StoreFailureTests(OfflineBase, unittest.TestCase):
    """When the database cannot take a message, the sender is told; nothing vanishes."""

    @defer.inlineCallbacks
    def test_storeDownBounces(self):
        """With the store closed, a message for an offline account comes back as internal-server-error of type wait."""
        yield self.server.store.close()
        self.send("down")
        yield self.settle()
        self.assertStanza(
            self.alice.link.popOne(),
            f"<message from='bob@localhost' to='alice@localhost/a' id='down' type='error'><body>hi</body>"
            f"<error type='wait'><internal-server-error xmlns='{STANZAS}'/>"
            f"<text xmlns='{STANZAS}' xml:lang='en'>offline storage is unavailable: the message was not stored</text></error></message>",
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @defer.inlineCallbacks
    def test_storeDownDuringBurstBouncesEach(self):
        """Every message of a burst to a dead store is answered with its own error, in order."""
        yield self.server.store.close()
        for i in range(3):
            self.send(f"x{i}")
        yield self.settle()
        self.assertEqual([(e["id"], e["type"]) for e in self.alice.link.pop()], [("x0", "error"), ("x1", "error"), ("x2", "error")])
        self.flushLoggedErrors(RuntimeError)


class RestartTests(OfflineBase, unittest.TestCase):
    """Nothing accepted is lost across a restart."""

    @defer.inlineCallbacks
    def test_deliveredAfterRestart(self):
        """Messages stored before a restart are delivered after it, in order, with their original stamps."""
        self.send("r1", body="1")
        self.clock.advance(1)
        self.send("r2", body="2")
        yield self.settle()
        yield self.restart()
        bob = self.online("bob@localhost/b")
        yield self.settle()
        got = bob.link.pop()
        self.assertEqual(len(got), 2)
        self.assertStanza(got[0], self.expected("r1", body="1"))
        self.assertStanza(got[1], self.expected("r2", body="2", stamp="2023-11-14T22:13:21Z"))
        self.assertEqual((yield self.stored()), 0)

    @defer.inlineCallbacks
    def test_stopWaitsForQueuedStores(self):
        """Stopping the server right after a burst still commits every message of it."""
        for i in range(20):
            self.send(f"burst{i}", body=str(i))
        yield self.restart()  # no settle(): stop must wait for the queue
        self.assertEqual((yield self.stored()), 20)
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertEqual([e["id"] for e in bob.link.pop()], [f"burst{i}" for i in range(20)])


    @defer.inlineCallbacks
    def test_stopDoesNotWaitForConfirmation(self):
        """Stopping while a client's confirmation is awaited gives it up at once and keeps the batch stored."""
        self.send("pending")
        yield self.settle()
        self.online("bob@localhost/b", answer=None)
        yield task.deferLater(reactor, 0.05, lambda: None)
        yield self.restart()  # the Clock never reaches the timeout: only giving up ends the delivery
        self.assertEqual((yield self.stored()), 1)
        bob = self.online("bob@localhost/b")
        yield self.settle()
        self.assertStanza(bob.link.popOne(), self.expected("pending"))


class OfflineStoreTestsMixin:
    """The txn functions, on whatever makeStore() gives."""

    @defer.inlineCallbacks
    def setUp(self):
        self.store = self.makeStore()
        self.offline = OfflineMessages(self.store)
        accounts = Accounts(self.store)
        yield accounts.create("example.org", "bob", [])
        yield accounts.create("example.org", "carol", [])
        self.t0 = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone.utc)

    @defer.inlineCallbacks
    def test_storeAndReadInOrder(self):
        """Messages come back oldest first with their aware UTC stamps and exact XML."""
        ids = []
        for i in range(3):
            ids.append((yield self.offline.add("example.org", "bob", self.t0 + timedelta(seconds=i), f"<message id='{i}'/>", 10)))
        rows = yield self.offline.get("example.org", "bob")
        self.assertEqual([r.id for r in rows], ids)
        self.assertEqual([r.stanza for r in rows], ["<message id='0'/>", "<message id='1'/>", "<message id='2'/>"])
        self.assertEqual([r.stamp for r in rows], [self.t0 + timedelta(seconds=i) for i in range(3)])
        self.assertEqual(rows[0].stamp.tzinfo, timezone.utc)

    @defer.inlineCallbacks
    def test_afterIdAndLimit(self):
        """get() pages with afterId and limit."""
        ids = []
        for i in range(5):
            ids.append((yield self.offline.add("example.org", "bob", self.t0, f"<m{i}/>", 10)))
        page = yield self.offline.get("example.org", "bob", ids[1], 2)
        self.assertEqual([r.id for r in page], ids[2:4])

    @defer.inlineCallbacks
    def test_deleteOnlyGivenIdsOfTheAccount(self):
        """delete() removes the given ids of that account only, never another account's rows."""
        b1 = yield self.offline.add("example.org", "bob", self.t0, "<b1/>", 10)
        b2 = yield self.offline.add("example.org", "bob", self.t0, "<b2/>", 10)
        c1 = yield self.offline.add("example.org", "carol", self.t0, "<c1/>", 10)
        self.assertEqual((yield self.offline.delete("example.org", "bob", [b1, c1])), 1)
        self.assertEqual([r.id for r in (yield self.offline.get("example.org", "bob"))], [b2])
        self.assertEqual([r.id for r in (yield self.offline.get("example.org", "carol"))], [c1])
        self.assertEqual((yield self.offline.delete("example.org", "bob", [])), 0)

    @defer.inlineCallbacks
    def test_quota(self):
        """A store at its limit refuses with OfflineQuotaExceeded and writes nothing."""
        for i in range(2):
            yield self.offline.add("example.org", "bob", self.t0, "<m/>", 2)
        yield self.assertFailure(self.offline.add("example.org", "bob", self.t0, "<m/>", 2), OfflineQuotaExceeded)
        self.assertEqual((yield self.offline.count("example.org", "bob")), 2)

    @defer.inlineCallbacks
    def test_noSuchAccount(self):
        """Storing for an account that does not exist fails with NoSuchAccount; reading it gives nothing."""
        yield self.assertFailure(self.offline.add("example.org", "nobody", self.t0, "<m/>", 2), NoSuchAccount)
        self.assertEqual((yield self.offline.get("example.org", "nobody")), [])
        self.assertEqual((yield self.offline.count("example.org", "nobody")), 0)
        self.assertEqual((yield self.offline.delete("example.org", "nobody", [1])), 0)

    @defer.inlineCallbacks
    def test_cascade(self):
        """Deleting the account deletes its messages."""
        yield self.offline.add("example.org", "bob", self.t0, "<m/>", 2)
        yield Accounts(self.store).delete("example.org", "bob")

        def count(conn):
            return conn.execute(sa.select(sa.func.count()).select_from(offline_messages)).scalar_one()

        self.assertEqual((yield self.store.runInteraction("count", count)), 0)


class SQLiteOfflineStoreTests(SQLiteStoreMixin, OfflineStoreTestsMixin, unittest.TestCase):
    pass


class PostgreSQLOfflineStoreTests(PostgreSQLStoreMixin, OfflineStoreTestsMixin, unittest.TestCase):
    pass
