"""Tests for jabberd.store.userdata (vCards, private XML, last activity), on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from jabberd.store.accounts import Accounts
from jabberd.store.roster import RosterItem, set_item_txn
from jabberd.store.schema import accounts
from jabberd.store.userdata import (
    QuotaExceeded,
    get_last_activity_txn,
    get_private_txn,
    get_vcard_txn,
    last_activity,
    last_activity_for_txn,
    presence_authorized_txn,
    set_last_activity_txn,
    set_private_txn,
    set_vcard_txn,
)
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

HOST = "example.org"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
LATER = datetime(2024, 5, 2, 8, 30, tzinfo=timezone.utc)


class UserDataStoreTestsMixin:
    """The userdata tables and their txn functions, on whatever makeStore() gives."""

    @inlineCallbacks
    def setUp(self):
        self.store = self.makeStore()
        self.accounts = Accounts(self.store)
        yield self.accounts.create(HOST, "alice", [])
        yield self.accounts.create(HOST, "bob", [])

    def txn(self, fn, *args):
        return self.store.runInteraction(fn.__name__, fn, *args)

    @inlineCallbacks
    def test_vcardRoundTripAndReplace(self):
        """A vCard is stored per account, replaced by the next set, and None when absent or no account."""
        self.assertIsNone((yield self.txn(get_vcard_txn, HOST, "alice")))
        self.assertTrue((yield self.txn(set_vcard_txn, HOST, "alice", "<vCard xmlns='vcard-temp'><FN>é</FN></vCard>")))
        self.assertTrue((yield self.txn(set_vcard_txn, HOST, "alice", "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")))
        self.assertEqual((yield self.txn(get_vcard_txn, HOST, "alice")), "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")
        self.assertIsNone((yield self.txn(get_vcard_txn, HOST, "bob")))
        self.assertFalse((yield self.txn(set_vcard_txn, HOST, "nobody", "<vCard xmlns='vcard-temp'/>")))

    @inlineCallbacks
    def test_privateByNamespace(self):
        """Private XML is kept per account and namespace; a set replaces only the namespaces it names."""
        yield self.txn(set_private_txn, HOST, "alice", {"urn:a": "<a xmlns='urn:a'/>", "urn:b": "<b xmlns='urn:b'/>"}, 1000)
        yield self.txn(set_private_txn, HOST, "alice", {"urn:a": "<a xmlns='urn:a'>2</a>"}, 1000)
        self.assertEqual((yield self.txn(get_private_txn, HOST, "alice", "urn:a")), "<a xmlns='urn:a'>2</a>")
        self.assertEqual((yield self.txn(get_private_txn, HOST, "alice", "urn:b")), "<b xmlns='urn:b'/>")
        self.assertIsNone((yield self.txn(get_private_txn, HOST, "bob", "urn:a")))
        self.assertFalse((yield self.txn(set_private_txn, HOST, "nobody", {"urn:a": "<a xmlns='urn:a'/>"}, 1000)))

    @inlineCallbacks
    def test_privateQuotaCountsBytes(self):
        """The quota counts UTF-8 bytes of everything stored after the write; over it, nothing changes."""
        yield self.txn(set_private_txn, HOST, "alice", {"urn:a": "ééééé"}, 10)  # 10 bytes
        yield self.assertFailure(self.txn(set_private_txn, HOST, "alice", {"urn:b": "x"}, 10), QuotaExceeded)
        self.assertIsNone((yield self.txn(get_private_txn, HOST, "alice", "urn:b")))
        yield self.txn(set_private_txn, HOST, "alice", {"urn:a": "é", "urn:b": "12345678"}, 10)
        self.assertEqual((yield self.txn(get_private_txn, HOST, "alice", "urn:b")), "12345678")

    @inlineCallbacks
    def test_lastActivity(self):
        """Logouts are recorded in one transaction for many accounts, replaced by later ones, unknown accounts skipped."""
        self.assertIsNone((yield self.txn(get_last_activity_txn, HOST, "alice")))
        yield self.txn(set_last_activity_txn, [(HOST, "alice", WHEN, "bye"), (HOST, "bob", WHEN, ""), (HOST, "nobody", WHEN, "x")])
        yield self.txn(set_last_activity_txn, [(HOST, "alice", LATER, "again")])
        self.assertEqual((yield self.txn(get_last_activity_txn, HOST, "alice")), (LATER, "again"))
        self.assertEqual((yield self.txn(get_last_activity_txn, HOST, "bob")), (WHEN, ""))

    @inlineCallbacks
    def test_lastActivityBatch(self):
        """In one batch an account listed twice keeps the later logout, new and existing rows are both written, and an empty batch does nothing."""
        yield self.txn(set_last_activity_txn, [(HOST, "bob", WHEN, "first")])
        yield self.txn(set_last_activity_txn, [])
        yield self.txn(set_last_activity_txn, [
            (HOST, "alice", WHEN, "early"), (HOST, "bob", LATER, "second"), (HOST, "nobody", WHEN, ""), (HOST, "alice", LATER, "late"),
        ])
        self.assertEqual((yield self.txn(get_last_activity_txn, HOST, "alice")), (LATER, "late"))
        self.assertEqual((yield self.txn(get_last_activity_txn, HOST, "bob")), (LATER, "second"))
        self.assertIsNone((yield self.txn(get_last_activity_txn, HOST, "nobody")))

    @inlineCallbacks
    def test_presenceAuthorized(self):
        """A contact may see an account's presence with a 'from' or 'both' subscription only."""
        for i, subscription in enumerate(["none", "to", "from", "both"]):
            yield self.txn(set_item_txn, HOST, "alice", RosterItem(f"{subscription}@example.com", subscription=subscription), i + 1)
        allowed = []
        for contact in ["none", "to", "from", "both", "stranger"]:
            if (yield self.txn(presence_authorized_txn, HOST, "alice", f"{contact}@example.com")):
                allowed.append(contact)
        self.assertEqual(allowed, ["from", "both"])

    @inlineCallbacks
    def test_lastActivityFor(self):
        """The combined query answers the account itself always and others only when authorized."""
        yield self.txn(set_last_activity_txn, [(HOST, "alice", WHEN, "bye")])
        yield self.txn(set_item_txn, HOST, "alice", RosterItem("bob@example.org", subscription="from"), 1)
        self.assertEqual((yield self.txn(last_activity_for_txn, HOST, "alice", None)), (True, (WHEN, "bye")))
        self.assertEqual((yield self.txn(last_activity_for_txn, HOST, "alice", "bob@example.org")), (True, (WHEN, "bye")))
        self.assertEqual((yield self.txn(last_activity_for_txn, HOST, "alice", "carol@example.org")), (False, None))

    @inlineCallbacks
    def test_cascade(self):
        """Deleting an account deletes its vCard, private XML and last activity."""
        yield self.txn(set_vcard_txn, HOST, "alice", "<vCard xmlns='vcard-temp'/>")
        yield self.txn(set_private_txn, HOST, "alice", {"urn:a": "<a xmlns='urn:a'/>"}, 1000)
        yield self.txn(set_last_activity_txn, [(HOST, "alice", WHEN, "")])
        yield self.accounts.delete(HOST, "alice")
        yield self.accounts.create(HOST, "alice", [])
        self.assertIsNone((yield self.txn(get_vcard_txn, HOST, "alice")))
        self.assertIsNone((yield self.txn(get_private_txn, HOST, "alice", "urn:a")))
        self.assertIsNone((yield self.txn(get_last_activity_txn, HOST, "alice")))


class SQLiteUserDataStoreTests(SQLiteStoreMixin, UserDataStoreTestsMixin, TestCase):
    pass


class PostgreSQLUserDataStoreTests(PostgreSQLStoreMixin, UserDataStoreTestsMixin, TestCase):
    @inlineCallbacks
    def test_lastActivityInsertRace(self):
        """A batch whose insert meets a row another transaction inserted meanwhile is written row by row, and wins."""
        other = self.store.engine.connect()
        self.addCleanup(other.close)
        transaction = other.begin()
        alice = other.execute(sa.select(accounts.c.id).where(accounts.c.username == "alice")).scalar_one()
        other.execute(last_activity.insert().values(account_id=alice, logout=WHEN, status="other"))
        writing = self.txn(set_last_activity_txn, [(HOST, "alice", LATER, "batch"), (HOST, "bob", LATER, "")])
        # The batch's insert now waits for the other transaction's row lock.
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertFalse(writing.called)
        transaction.commit()
        yield writing
        self.assertEqual((yield self.txn(get_last_activity_txn, HOST, "alice")), (LATER, "batch"))
        self.assertEqual((yield self.txn(get_last_activity_txn, HOST, "bob")), (LATER, ""))
