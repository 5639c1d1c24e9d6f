"""Tests for jabberd.store.pep (PEP nodes, items, affiliations) and jabberd.store.caps, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from jabberd.store.accounts import Accounts
from jabberd.store.caps import get_caps_txn, set_caps_txn
from jabberd.store.pep import (
    StoredItem,
    StoredNode,
    create_node_txn,
    delete_node_txn,
    get_items_txn,
    item_ids_txn,
    load_services_txn,
    newest_item_txn,
    publish_item_txn,
    purge_node_txn,
    retract_item_txn,
    set_affiliations_txn,
    set_node_config_txn,
    set_subscription_txn,
)
from tests.store.mixin import PostgreSQLStoreMixin, SQLiteStoreMixin

HOST = "example.org"
WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
NODE = "http://jabber.org/protocol/tune"


def item(id_: str, n: int = 0) -> StoredItem:
    return StoredItem(id_, f"<tune xmlns='{NODE}'><track>{id_}</track></tune>", f"alice@{HOST}/phone", WHEN + timedelta(minutes=n))


class PepStoreTestsMixin:
    """The PEP and caps tables and their txn functions, on whatever makeStore() gives."""

    @inlineCallbacks
    def setUp(self):
        self.store = self.makeStore()
        self.accounts = Accounts(self.store)
        yield self.accounts.create(HOST, "alice", [])
        yield self.accounts.create(HOST, "bob", [])

    def txn(self, fn, *args):
        return self.store.runInteraction(fn.__name__, fn, *args)

    @inlineCallbacks
    def publish(self, *ids: str, keep: int = 10, node: str = NODE):
        for n, id_ in enumerate(ids):
            yield self.txn(publish_item_txn, HOST, "alice", node, item(id_, n), keep)

    @inlineCallbacks
    def ids(self, node: str = NODE, **kw):
        found = yield self.txn(get_items_txn, HOST, "alice", node, kw.get("ids"), kw.get("newest"))
        return [i.id for i in found]

    @inlineCallbacks
    def test_loadManyAccounts(self):
        """One load returns each account's nodes with configuration, affiliations and newest item; no nodes is {}; no account is None."""
        self.assertTrue((yield self.txn(create_node_txn, HOST, "alice", NODE, {"max_items": 5})))
        yield self.txn(create_node_txn, HOST, "alice", "urn:empty", {})
        yield self.publish("1", "2")
        yield self.txn(set_affiliations_txn, HOST, "alice", NODE, {"bob@example.org": "member"})
        found = yield self.txn(load_services_txn, [(HOST, "alice"), (HOST, "bob"), (HOST, "nobody")])
        self.assertEqual(
            found,
            {
                (HOST, "alice"): {
                    NODE: StoredNode({"max_items": 5}, {"bob@example.org": "member"}, item("2", 1)),
                    "urn:empty": StoredNode({}, {}, None),
                },
                (HOST, "bob"): {},
                (HOST, "nobody"): None,
            },
        )

    @inlineCallbacks
    def test_noAccount(self):
        """Writes for an account that does not exist report it and change nothing."""
        self.assertFalse((yield self.txn(create_node_txn, HOST, "nobody", NODE, {})))
        self.assertFalse((yield self.txn(publish_item_txn, HOST, "nobody", NODE, item("1"), 1)))
        self.assertEqual((yield self.txn(retract_item_txn, HOST, "nobody", NODE, "1")), (False, None))

    @inlineCallbacks
    def test_publishOrderAndRepublish(self):
        """Items come back in publication order; re-publishing an id replaces it and makes it the newest."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.publish("a", "b", "c")
        yield self.txn(publish_item_txn, HOST, "alice", NODE, StoredItem("a", "<x xmlns='urn:x'/>", "alice@example.org/pc", WHEN), 10)
        self.assertEqual((yield self.ids()), ["b", "c", "a"])
        newest = yield self.txn(newest_item_txn, HOST, "alice", NODE)
        self.assertEqual(newest, StoredItem("a", "<x xmlns='urn:x'/>", "alice@example.org/pc", WHEN))

    @inlineCallbacks
    def test_keepTrims(self):
        """Publishing keeps only the newest 'keep' items."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.publish("1", "2", "3", "4", keep=2)
        self.assertEqual((yield self.ids()), ["3", "4"])

    @inlineCallbacks
    def test_getItems(self):
        """Items by id, and the newest N, oldest first."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.publish("1", "2", "3")
        self.assertEqual((yield self.ids(ids=["3", "1", "9"])), ["1", "3"])
        self.assertEqual((yield self.ids(newest=2)), ["2", "3"])
        self.assertEqual((yield self.txn(item_ids_txn, HOST, "alice", NODE)), ["1", "2", "3"])
        self.assertEqual((yield self.ids(node="urn:none")), [])

    @inlineCallbacks
    def test_retract(self):
        """Retracting reports whether the item existed and which item is now the newest."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.publish("1", "2")
        self.assertEqual((yield self.txn(retract_item_txn, HOST, "alice", NODE, "2")), (True, item("1", 0)))
        self.assertEqual((yield self.txn(retract_item_txn, HOST, "alice", NODE, "2")), (False, item("1", 0)))
        self.assertEqual((yield self.txn(retract_item_txn, HOST, "alice", NODE, "1")), (True, None))

    @inlineCallbacks
    def test_purgeAndDelete(self):
        """Purge empties a node; delete removes it with its items and affiliations."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.txn(create_node_txn, HOST, "alice", "urn:other", {})
        yield self.publish("1", "2")
        yield self.publish("x", node="urn:other")
        yield self.txn(purge_node_txn, HOST, "alice", NODE)
        self.assertEqual(((yield self.ids()), (yield self.ids(node="urn:other"))), ([], ["x"]))
        yield self.txn(set_affiliations_txn, HOST, "alice", "urn:other", {"bob@example.org": "outcast"})
        self.assertTrue((yield self.txn(delete_node_txn, HOST, "alice", "urn:other")))
        self.assertFalse((yield self.txn(delete_node_txn, HOST, "alice", "urn:other")))
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(list(found[(HOST, "alice")]), [NODE])
        self.assertEqual((yield self.ids(node="urn:other")), [])

    @inlineCallbacks
    def test_affiliations(self):
        """Affiliations are inserted, changed and removed ('none' or None)."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.txn(set_affiliations_txn, HOST, "alice", NODE, {"b@x": "member", "c@x": "outcast", "d@x": "member"})
        yield self.txn(set_affiliations_txn, HOST, "alice", NODE, {"b@x": "outcast", "c@x": "none", "d@x": None})
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(found[(HOST, "alice")][NODE].affiliations, {"b@x": "outcast"})

    @inlineCallbacks
    def test_subscriptions(self):
        """Subscriptions (bare or full JIDs) are added once, removed, loaded sorted, and go with their node."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        for jid in ("z@x/r", "b@x", "b@x"):
            yield self.txn(set_subscription_txn, HOST, "alice", NODE, jid, True)
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(found[(HOST, "alice")][NODE].subscriptions, ("b@x", "z@x/r"))
        yield self.txn(set_subscription_txn, HOST, "alice", NODE, "b@x", False)
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(found[(HOST, "alice")][NODE].subscriptions, ("z@x/r",))
        yield self.txn(delete_node_txn, HOST, "alice", NODE)
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(found[(HOST, "alice")][NODE].subscriptions, ())

    @inlineCallbacks
    def test_setConfig(self):
        """A new configuration is stored, items beyond 'keep' go, and an item kept in memory can be stored with it."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {"max_items": 5})
        yield self.publish("1", "2", "3")
        yield self.txn(set_node_config_txn, HOST, "alice", NODE, {"max_items": 2}, 2)
        self.assertEqual((yield self.ids()), ["2", "3"])
        yield self.txn(set_node_config_txn, HOST, "alice", NODE, {"persist_items": False}, 0)
        self.assertEqual((yield self.ids()), [])
        yield self.txn(set_node_config_txn, HOST, "alice", NODE, {"persist_items": True}, 1, item("mem"))
        self.assertEqual((yield self.ids()), ["mem"])
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(found[(HOST, "alice")][NODE].config, {"persist_items": True})

    @inlineCallbacks
    def test_cascade(self):
        """Deleting an account deletes its nodes, items and affiliations."""
        yield self.txn(create_node_txn, HOST, "alice", NODE, {})
        yield self.publish("1")
        yield self.txn(set_affiliations_txn, HOST, "alice", NODE, {"b@x": "member"})
        yield self.accounts.delete(HOST, "alice")
        yield self.accounts.create(HOST, "alice", [])
        found = yield self.txn(load_services_txn, [(HOST, "alice")])
        self.assertEqual(found[(HOST, "alice")], {})

    @inlineCallbacks
    def test_caps(self):
        """A verified disco#info is stored once per (hash, ver) and shared; a second write keeps the first."""
        self.assertIsNone((yield self.txn(get_caps_txn, "sha-1", "abc=")))
        yield self.txn(set_caps_txn, "sha-1", "abc=", "<query xmlns='http://jabber.org/protocol/disco#info'/>", WHEN)
        yield self.txn(set_caps_txn, "sha-1", "abc=", "<other/>", WHEN)
        self.assertEqual((yield self.txn(get_caps_txn, "sha-1", "abc=")), "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        self.assertIsNone((yield self.txn(get_caps_txn, "sha-256", "abc=")))


class SQLitePepStoreTests(SQLiteStoreMixin, PepStoreTestsMixin, TestCase):
    pass


class PostgreSQLPepStoreTests(PostgreSQLStoreMixin, PepStoreTestsMixin, TestCase):
    pass
