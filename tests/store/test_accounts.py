"""Tests for jabberd.store.accounts, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from jabberd.store.accounts import (
    Accounts,
    AccountExists,
    NoSuchAccount,
    ScramCredential,
    create_account_txn,
)
from jabberd.store.schema import account_credentials, accounts
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

SHA1 = ScramCredential(
    mechanism="SCRAM-SHA-1",
    salt=b"\x00salt\xff\x80",
    iterations=4096,
    stored_key=bytes(range(20)),
    server_key=bytes(range(255, 235, -1)),
)
SHA256 = ScramCredential(
    mechanism="SCRAM-SHA-256",
    salt=b"\xfe\x00" * 8,
    iterations=10000,
    stored_key=b"\x00" * 32,
    server_key=bytes(range(100, 132)),
)


class AccountsTestsMixin:
    """The Accounts facade and its txn functions, on whatever makeStore() gives."""

    def setUp(self) -> None:
        self.store = self.makeStore()
        self.accounts = Accounts(self.store)

    def countCredentials(self, accountId: int) -> Deferred[int]:
        """How many credential rows reference C{accountId}, read straight from the table."""

        def count(conn: sa.Connection) -> int:
            return conn.execute(
                sa.select(sa.func.count()).where(account_credentials.c.account_id == accountId)
            ).scalar_one()

        return self.store.runInteraction("count", count)

    @inlineCallbacks
    def test_createExistsListDelete(self):
        """An account is there after create, listed, and gone after delete."""
        self.assertFalse((yield self.accounts.exists("example.org", "alice")))
        accountId = yield self.accounts.create("example.org", "alice", [SHA1])
        self.assertIsInstance(accountId, int)
        self.assertTrue((yield self.accounts.exists("example.org", "alice")))
        self.assertEqual((yield self.accounts.list()), [("alice", "example.org")])
        yield self.accounts.delete("example.org", "alice")
        self.assertFalse((yield self.accounts.exists("example.org", "alice")))
        self.assertEqual((yield self.accounts.list()), [])

    @inlineCallbacks
    def test_listSortedAndByHost(self):
        """list() gives sorted (username, host) pairs, all or of one host."""
        for host, username in [("b.example", "zed"), ("a.example", "bob"), ("b.example", "amy")]:
            yield self.accounts.create(host, username, [])
        self.assertEqual(
            (yield self.accounts.list()),
            [("amy", "b.example"), ("bob", "a.example"), ("zed", "b.example")],
        )
        self.assertEqual(
            (yield self.accounts.list("b.example")), [("amy", "b.example"), ("zed", "b.example")]
        )
        self.assertEqual((yield self.accounts.list("nowhere.example")), [])

    @inlineCallbacks
    def test_storedAsGiven(self):
        """Names are stored exactly as given: non-ASCII survives and case matters."""
        yield self.accounts.create("exämple.org", "ñandú", [])
        yield self.accounts.create("exämple.org", "Ñandú", [])
        self.assertEqual(
            (yield self.accounts.list()), [("Ñandú", "exämple.org"), ("ñandú", "exämple.org")]
        )
        self.assertFalse((yield self.accounts.exists("exämple.org", "NANDU")))

    @inlineCallbacks
    def test_duplicate(self):
        """Creating an account twice fails with AccountExists and keeps the first."""
        yield self.accounts.create("example.org", "alice", [SHA1])
        yield self.assertFailure(
            self.accounts.create("example.org", "alice", [SHA256]), AccountExists
        )
        self.assertEqual(
            (yield self.accounts.getCredentials("example.org", "alice")), {"SCRAM-SHA-1": SHA1}
        )

    @inlineCallbacks
    def test_sameUsernameOtherHost(self):
        """The same username on two hosts is two accounts."""
        yield self.accounts.create("a.example", "alice", [])
        yield self.accounts.create("b.example", "alice", [])
        self.assertEqual(
            (yield self.accounts.list()), [("alice", "a.example"), ("alice", "b.example")]
        )

    @inlineCallbacks
    def test_duplicateLeavesTransactionUsable(self):
        """After catching AccountExists the same transaction can still write and commit."""

        def txn(conn: sa.Connection) -> None:
            create_account_txn(conn, "example.org", "alice", [])
            try:
                create_account_txn(conn, "example.org", "alice", [])
            except AccountExists:
                pass
            create_account_txn(conn, "example.org", "bob", [])

        yield self.store.runInteraction("dup", txn)
        self.assertEqual(
            (yield self.accounts.list()), [("alice", "example.org"), ("bob", "example.org")]
        )

    @inlineCallbacks
    def test_credentialsRoundTrip(self):
        """Credentials come back byte for byte, keyed by mechanism."""
        yield self.accounts.create("example.org", "alice", [SHA1, SHA256])
        creds = yield self.accounts.getCredentials("example.org", "alice")
        self.assertEqual(creds, {"SCRAM-SHA-1": SHA1, "SCRAM-SHA-256": SHA256})
        for cred in creds.values():
            self.assertIs(type(cred.salt), bytes)
            self.assertIs(type(cred.stored_key), bytes)
            self.assertIs(type(cred.server_key), bytes)

    @inlineCallbacks
    def test_credentialsOfUnknownAndEmpty(self):
        """getCredentials gives None for no account and {} for an account without any."""
        self.assertIsNone((yield self.accounts.getCredentials("example.org", "nobody")))
        yield self.accounts.create("example.org", "alice", [])
        self.assertEqual((yield self.accounts.getCredentials("example.org", "alice")), {})

    @inlineCallbacks
    def test_setCredentialsReplaces(self):
        """setCredentials replaces every credential of the account."""
        yield self.accounts.create("example.org", "alice", [SHA1, SHA256])
        newer = ScramCredential("SCRAM-SHA-256", b"new salt", 20000, b"k" * 32, b"s" * 32)
        yield self.accounts.setCredentials("example.org", "alice", [newer])
        self.assertEqual(
            (yield self.accounts.getCredentials("example.org", "alice")), {"SCRAM-SHA-256": newer}
        )

    def test_setCredentialsUnknown(self):
        """setCredentials on a missing account fails with NoSuchAccount."""
        return self.assertFailure(
            self.accounts.setCredentials("example.org", "nobody", [SHA1]), NoSuchAccount
        )

    def test_duplicateMechanism(self):
        """Two credentials for one mechanism are refused with ValueError."""
        return self.assertFailure(
            self.accounts.create("example.org", "alice", [SHA1, SHA1]), ValueError
        )

    def test_deleteUnknown(self):
        """Deleting a missing account fails with NoSuchAccount."""
        return self.assertFailure(self.accounts.delete("example.org", "nobody"), NoSuchAccount)

    @inlineCallbacks
    def test_deleteCascades(self):
        """Deleting an account deletes its credential rows, and no one else's."""
        aliceId = yield self.accounts.create("example.org", "alice", [SHA1, SHA256])
        bobId = yield self.accounts.create("example.org", "bob", [SHA1])
        self.assertEqual((yield self.countCredentials(aliceId)), 2)
        yield self.accounts.delete("example.org", "alice")
        self.assertEqual((yield self.countCredentials(aliceId)), 0)
        self.assertEqual((yield self.countCredentials(bobId)), 1)

    @inlineCallbacks
    def test_createdIsUTC(self):
        """The creation time is stored and read back as an aware UTC datetime."""
        created = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
        yield self.accounts.create("example.org", "alice", [], created=created)
        stored = yield self.store.runInteraction(
            "created", lambda conn: conn.execute(sa.select(accounts.c.created)).scalar_one()
        )
        self.assertEqual(stored, created)
        self.assertEqual(stored.utcoffset(), timedelta(0))


class SQLiteAccountsTests(SQLiteStoreMixin, AccountsTestsMixin, TestCase):
    """Accounts on a real SQLite file."""


class PostgreSQLAccountsTests(PostgreSQLStoreMixin, AccountsTestsMixin, TestCase):
    """Accounts on the loopback PostgreSQL server."""
