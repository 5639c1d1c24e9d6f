"""Tests for jabberd.store.roster, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from jabberd.store.accounts import Accounts, NoSuchAccount
from jabberd.store.roster import (
    RosterItem,
    apply_changes_txn,
    get_roster_txn,
    get_subscription_txn,
    load_roster_txn,
    remove_item_txn,
    remove_pending_txn,
    set_item_txn,
    set_pending_txn,
    set_version_txn,
)
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
HOST = "example.org"


class RosterStoreTestsMixin:
    """The roster tables and their txn functions, on whatever makeStore() gives."""

    @inlineCallbacks
    def setUp(self):
        self.store = self.makeStore()
        self.accounts = Accounts(self.store)
        yield self.accounts.create(HOST, "alice", [])
        yield self.accounts.create(HOST, "bob", [])

    def txn(self, fn, *args):
        return self.store.runInteraction(fn.__name__, fn, *args)

    @inlineCallbacks
    def test_itemsRoundTrip(self):
        """Items with name, subscription, flags and groups come back exactly, sorted by JID, groups sorted."""
        carol = RosterItem("carol@example.com", "Carol", "both", groups=("Work", "Friends"))
        dave = RosterItem("dave@example.com", None, "none", ask=True, approved=True)
        yield self.txn(set_item_txn, HOST, "alice", carol, 1)
        yield self.txn(set_item_txn, HOST, "alice", dave, 2)
        items = yield self.txn(get_roster_txn, HOST, "alice")
        self.assertEqual(items, [RosterItem("carol@example.com", "Carol", "both", groups=("Friends", "Work")), dave])
        self.assertEqual((yield self.txn(get_roster_txn, HOST, "bob")), [])
        self.assertEqual((yield self.txn(get_roster_txn, HOST, "nobody")), [])

    @inlineCallbacks
    def test_updateReplacesGroups(self):
        """Setting an item again replaces its fields and its groups."""
        yield self.txn(set_item_txn, HOST, "alice", RosterItem("c@x", "C", "to", groups=("A", "B")), 1)
        yield self.txn(set_item_txn, HOST, "alice", RosterItem("c@x", None, "from", groups=("C",)), 2)
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual(state.items, {"c@x": RosterItem("c@x", None, "from", groups=("C",))})
        self.assertEqual(state.itemVersions, {"c@x": 2})

    @inlineCallbacks
    def test_getSubscription(self):
        """get_subscription_txn gives the stored subscription, 'none' for an unknown contact or account."""
        yield self.txn(set_item_txn, HOST, "alice", RosterItem("c@x", None, "from"), 1)
        self.assertEqual((yield self.txn(get_subscription_txn, HOST, "alice", "c@x")), "from")
        self.assertEqual((yield self.txn(get_subscription_txn, HOST, "alice", "d@x")), "none")
        self.assertEqual((yield self.txn(get_subscription_txn, HOST, "bob", "c@x")), "none")
        self.assertEqual((yield self.txn(get_subscription_txn, HOST, "nobody", "c@x")), "none")

    @inlineCallbacks
    def test_removeLeavesTombstone(self):
        """Removing an item deletes it and its groups and records the version it was removed at; adding it back clears that."""
        yield self.txn(set_item_txn, HOST, "alice", RosterItem("c@x", groups=("G",)), 1)
        yield self.txn(remove_item_txn, HOST, "alice", "c@x", 2)
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual((state.items, state.tombstones), ({}, {"c@x": 2}))
        yield self.txn(set_item_txn, HOST, "alice", RosterItem("c@x"), 3)
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual((list(state.items), state.tombstones), (["c@x"], {}))

    @inlineCallbacks
    def test_pending(self):
        """Pending requests are stored with the stanza, replaced, listed oldest first and removed."""
        later = datetime(2024, 5, 2, tzinfo=timezone.utc)
        yield self.txn(set_pending_txn, HOST, "alice", "z@x", "<presence type='subscribe'/>", WHEN)
        yield self.txn(set_pending_txn, HOST, "alice", "a@x", "<presence/>", later)
        yield self.txn(set_pending_txn, HOST, "alice", "a@x", "<presence type='subscribe' from='a@x'/>", later)
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual(list(state.pending.items()), [("z@x", "<presence type='subscribe'/>"), ("a@x", "<presence type='subscribe' from='a@x'/>")])
        yield self.txn(remove_pending_txn, HOST, "alice", "z@x")
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual(list(state.pending), ["a@x"])

    @inlineCallbacks
    def test_version(self):
        """The version row is created then updated; tombstones at or below the floor are dropped."""
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual((state.version, state.floor, state.stored, len(state.epoch)), (0, 0, False, 8))
        yield self.txn(remove_item_txn, HOST, "alice", "old@x", 3)
        yield self.txn(remove_item_txn, HOST, "alice", "new@x", 5)
        yield self.txn(set_version_txn, HOST, "alice", "ep", 5, 0)
        yield self.txn(set_version_txn, HOST, "alice", "ep", 6, 3)
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual((state.epoch, state.version, state.floor, state.stored, state.tombstones), ("ep", 6, 3, True, {"new@x": 5}))

    @inlineCallbacks
    def test_applyChangesIsOneTransaction(self):
        """apply_changes_txn applies everything, or nothing when one change fails."""
        changes = [("item", RosterItem("c@x", None, "to"), 1), ("pending", "d@x", "<presence/>", WHEN), ("version", "ep", 1, 0)]
        self.assertTrue((yield self.txn(apply_changes_txn, HOST, "alice", changes)))
        bad = [("item", RosterItem("e@x"), 2), ("item", RosterItem("f@x", subscription="bogus"), 3)]
        with self.assertRaises(ValueError):
            yield self.txn(apply_changes_txn, HOST, "alice", bad)
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual((list(state.items), list(state.pending), state.version), (["c@x"], ["d@x"], 1))

    @inlineCallbacks
    def test_loadEverything(self):
        """One load gives every item with all its groups, the pending requests oldest first, the tombstones and the version."""
        later = datetime(2024, 5, 2, tzinfo=timezone.utc)
        yield self.txn(apply_changes_txn, HOST, "alice", [
            ("item", RosterItem("c@x", "C", "both", groups=("B", "A", "C")), 1),
            ("item", RosterItem("d@x", None, "to", ask=True), 2),
            ("item", RosterItem("e@x", "E", "from", approved=True, groups=("A",)), 3),
            ("remove", "gone@x", 4), ("remove", "old@x", 5),
            ("pending", "z@x", "<presence from='z@x'/>", WHEN), ("pending", "b@x", "<presence from='b@x'/>", later),
            ("pending", "a@x", "<presence from='a@x'/>", later),
            ("version", "ep", 5, 0),
        ])
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual(state.items, {
            "c@x": RosterItem("c@x", "C", "both", groups=("A", "B", "C")),
            "d@x": RosterItem("d@x", None, "to", ask=True),
            "e@x": RosterItem("e@x", "E", "from", approved=True, groups=("A",)),
        })
        self.assertEqual(state.itemVersions, {"c@x": 1, "d@x": 2, "e@x": 3})
        self.assertEqual(list(state.pending), ["z@x", "a@x", "b@x"])
        self.assertEqual(state.pending["b@x"], "<presence from='b@x'/>")
        self.assertEqual(state.tombstones, {"gone@x": 4, "old@x": 5})
        self.assertEqual((state.epoch, state.version, state.floor, state.stored), ("ep", 5, 0, True))

    @inlineCallbacks
    def test_unknownAccount(self):
        """Loading an unknown account gives None; apply_changes_txn reports False; the single writers raise NoSuchAccount."""
        self.assertIsNone((yield self.txn(load_roster_txn, HOST, "nobody")))
        self.assertFalse((yield self.txn(apply_changes_txn, HOST, "nobody", [("unpending", "x@y")])))
        with self.assertRaises(NoSuchAccount):
            yield self.txn(set_item_txn, HOST, "nobody", RosterItem("c@x"), 1)

    @inlineCallbacks
    def test_deletedWithAccount(self):
        """Deleting the account deletes its roster, groups, requests, versions and tombstones."""
        yield self.txn(apply_changes_txn, HOST, "alice", [
            ("item", RosterItem("c@x", groups=("G",)), 1), ("remove", "d@x", 2),
            ("pending", "e@x", "<presence/>", WHEN), ("version", "ep", 2, 0),
        ])
        yield self.accounts.delete(HOST, "alice")
        yield self.accounts.create(HOST, "alice", [])
        state = yield self.txn(load_roster_txn, HOST, "alice")
        self.assertEqual((state.items, state.pending, state.tombstones, state.stored), ({}, {}, {}, False))


class SQLiteRosterStoreTests(SQLiteStoreMixin, RosterStoreTestsMixin, TestCase):
    pass


class PostgreSQLRosterStoreTests(PostgreSQLStoreMixin, RosterStoreTestsMixin, TestCase):
    pass
