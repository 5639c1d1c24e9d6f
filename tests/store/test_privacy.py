"""Tests for jabberd.store.privacy (privacy lists, the default list), on SQLite and on PostgreSQL."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from jabberd.privacy import ALL, IQ, MESSAGE, PRESENCE_IN, PRESENCE_OUT, PrivacyItem
from jabberd.store.accounts import Accounts
from jabberd.store.privacy import (
    PrivacyData,
    accounts_with_default_txn,
    apply_privacy_changes_txn,
    load_privacy_txn,
)
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

HOST = "example.org"

PUBLIC = (
    PrivacyItem(1, False, "jid", "tybalt@example.com"),
    PrivacyItem(2, True, "group", "Friends", MESSAGE | PRESENCE_IN),
    PrivacyItem(3, False, "subscription", "none", IQ | PRESENCE_OUT),
    PrivacyItem(2**32 - 1, True, None, None, ALL),
)


class PrivacyStoreTestsMixin:
    """The privacy tables and their txn functions, on whatever makeStore() gives."""

    @inlineCallbacks
    def setUp(self):
        self.store = self.makeStore()
        self.accounts = Accounts(self.store)
        yield self.accounts.create(HOST, "alice", [])
        yield self.accounts.create(HOST, "bob", [])

    def txn(self, fn, *args):
        return self.store.runInteraction(fn.__name__, fn, *args)

    @inlineCallbacks
    def test_emptyAndUnknown(self):
        """An account without lists loads as empty; an unknown account loads as None and takes no changes."""
        self.assertEqual((yield self.txn(load_privacy_txn, HOST, "alice")), PrivacyData())
        self.assertIsNone((yield self.txn(load_privacy_txn, HOST, "nobody")))
        self.assertFalse((yield self.txn(apply_privacy_changes_txn, HOST, "nobody", [("list", "l", PUBLIC)])))

    @inlineCallbacks
    def test_roundTrip(self):
        """Lists come back with every item field, in 'order' (the largest unsignedInt included), and the default."""
        ok = yield self.txn(apply_privacy_changes_txn, HOST, "alice", [
            ("list", "public", tuple(reversed(PUBLIC))),
            ("list", "private", (PrivacyItem(10, True, "subscription", "both"), PrivacyItem(15, False))),
            ("default", "public"),
        ])
        self.assertTrue(ok)
        data = yield self.txn(load_privacy_txn, HOST, "alice")
        self.assertEqual(data.lists, {"public": PUBLIC, "private": (PrivacyItem(10, True, "subscription", "both"), PrivacyItem(15, False))})
        self.assertEqual(data.default, "public")
        self.assertEqual((yield self.txn(load_privacy_txn, HOST, "bob")), PrivacyData())

    @inlineCallbacks
    def test_replaceIsNotADelta(self):
        """Setting a list replaces all of its items."""
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("list", "public", PUBLIC)])
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("list", "public", (PrivacyItem(5, False, "jid", "paris@example.org"),))])
        data = yield self.txn(load_privacy_txn, HOST, "alice")
        self.assertEqual(data.lists, {"public": (PrivacyItem(5, False, "jid", "paris@example.org"),)})

    @inlineCallbacks
    def test_emptyListIsKept(self):
        """A list may be stored without items (a blocklist after unblocking everything)."""
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("list", "blocklist", ()), ("default", "blocklist")])
        data = yield self.txn(load_privacy_txn, HOST, "alice")
        self.assertEqual((data.lists, data.default), ({"blocklist": ()}, "blocklist"))

    @inlineCallbacks
    def test_removeListClearsDefault(self):
        """Removing the default list removes the default too; removing another list leaves it."""
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [
            ("list", "a", PUBLIC), ("list", "b", PUBLIC), ("default", "a"),
        ])
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("remove", "b")])
        data = yield self.txn(load_privacy_txn, HOST, "alice")
        self.assertEqual((sorted(data.lists), data.default), (["a"], "a"))
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("remove", "a")])
        self.assertEqual((yield self.txn(load_privacy_txn, HOST, "alice")), PrivacyData())

    @inlineCallbacks
    def test_changeAndDeclineDefault(self):
        """The default can be changed and declined."""
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("list", "a", PUBLIC), ("list", "b", PUBLIC), ("default", "a")])
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("default", "b")])
        self.assertEqual((yield self.txn(load_privacy_txn, HOST, "alice")).default, "b")
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("default", None)])
        self.assertIsNone((yield self.txn(load_privacy_txn, HOST, "alice")).default)

    @inlineCallbacks
    def test_accountsWithDefault(self):
        """Exactly the accounts that have a default list are listed, as bare JIDs."""
        yield self.accounts.create("other.example", "carol", [])
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("list", "a", PUBLIC), ("default", "a")])
        yield self.txn(apply_privacy_changes_txn, HOST, "bob", [("list", "a", PUBLIC)])
        yield self.txn(apply_privacy_changes_txn, "other.example", "carol", [("list", "x", PUBLIC), ("default", "x")])
        self.assertEqual(sorted((yield self.txn(accounts_with_default_txn))), ["alice@example.org", "carol@other.example"])

    @inlineCallbacks
    def test_listsGoWithTheAccount(self):
        """Deleting an account removes its lists and default; a new account by that name starts empty."""
        yield self.txn(apply_privacy_changes_txn, HOST, "alice", [("list", "a", PUBLIC), ("default", "a")])
        yield self.accounts.delete(HOST, "alice")
        yield self.accounts.create(HOST, "alice", [])
        self.assertEqual((yield self.txn(load_privacy_txn, HOST, "alice")), PrivacyData())
        self.assertEqual((yield self.txn(accounts_with_default_txn)), [])


class SQLitePrivacyStoreTests(SQLiteStoreMixin, PrivacyStoreTestsMixin, TestCase):
    pass


class PostgreSQLPrivacyStoreTests(PostgreSQLStoreMixin, PrivacyStoreTestsMixin, TestCase):
    pass
