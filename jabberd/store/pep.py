"""
Personal eventing (XEP-0163): every account's PEP nodes, their items and
the affiliations the owner gave out (the whitelist).

Four tables hang off an account (deleting the account removes them, and
deleting a node removes its items, affiliations and subscriptions):

- C{pep_nodes}: one row per node, its configuration as JSON (the module's
  L{jabberd.modules.pep.config.NodeConfig} fields; unknown keys are ignored
  when read, so a newer server's options never break an older one);
- C{pep_items}: the published items, the payload serialized exactly as the
  module stored it, with a per-node sequence number giving the order of
  publication (re-publishing an item id moves it to the end);
- C{pep_affiliations}: the bare JIDs the owner made members or outcasts;
- C{pep_subscriptions}: the JIDs (bare or full) explicitly subscribed to a
  node (XEP-0060 §6.1) — contacts with a presence subscription need none.

The module keeps nodes, configurations, affiliations and each node's last
item in memory (L{load_services_txn} reads them for many accounts in one
transaction); the other items are read only when a client asks for them.

The C{*_txn} functions are synchronous and take a connection already in a
transaction (run them through L{Store.runInteraction}); hosts and usernames
arrive prepared, as in L{jabberd.store.accounts}.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple

import sqlalchemy as sa

from jabberd.store.schema import account_id_txn as _accountId
from jabberd.store.schema import UTCDateTime, accounts, metadata

__all__ = [
    "pep_nodes",
    "pep_items",
    "pep_affiliations",
    "pep_subscriptions",
    "StoredItem",
    "StoredNode",
    "load_services_txn",
    "create_node_txn",
    "set_node_config_txn",
    "delete_node_txn",
    "publish_item_txn",
    "retract_item_txn",
    "purge_node_txn",
    "get_items_txn",
    "item_ids_txn",
    "newest_item_txn",
    "set_affiliations_txn",
    "set_subscription_txn",
]

#: NodeIDs and ItemIDs are opaque strings (XEP-0060 §4.6); 1023 keeps them indexable.
NAME_LENGTH = 1023
#: A JID: three parts of at most 1023 bytes (RFC 7622).
JID_LENGTH = 3071

# -- tables ----------------------------------------------------------------------

pep_nodes = sa.Table(
    "pep_nodes",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("node", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
)

pep_items = sa.Table(
    "pep_items",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("node", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("item_id", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("publisher", sa.String(JID_LENGTH), nullable=False),
    sa.Column("published", UTCDateTime, nullable=False),
    sa.Column("xml", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(
        ["account_id", "node"], ["pep_nodes.account_id", "pep_nodes.node"], ondelete="CASCADE"
    ),
    sa.Index(None, "account_id", "node", "seq"),
)

pep_affiliations = sa.Table(
    "pep_affiliations",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("node", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("jid", sa.String(JID_LENGTH), primary_key=True),
    sa.Column("affiliation", sa.String(16), nullable=False),
    sa.ForeignKeyConstraint(
        ["account_id", "node"], ["pep_nodes.account_id", "pep_nodes.node"], ondelete="CASCADE"
    ),
)

pep_subscriptions = sa.Table(
    "pep_subscriptions",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("node", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("jid", sa.String(JID_LENGTH), primary_key=True),
    sa.ForeignKeyConstraint(
        ["account_id", "node"], ["pep_nodes.account_id", "pep_nodes.node"], ondelete="CASCADE"
    ),
)


class StoredItem(NamedTuple):
    """One published item: its id, payload XML, publisher (a full JID) and time."""

    id: str
    xml: str
    publisher: str
    published: datetime


class StoredNode(NamedTuple):
    """A node as stored: configuration (a dict), affiliations by bare JID, newest item, subscribed JIDs (sorted)."""

    config: dict[str, Any]
    affiliations: dict[str, str]
    last: StoredItem | None
    subscriptions: tuple[str, ...] = ()


# -- helpers -----------------------------------------------------------------------



def _item(row: Any) -> StoredItem:
    return StoredItem(row.item_id, row.xml, row.publisher, row.published)


def _config(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# -- loading -------------------------------------------------------------------------


def load_services_txn(
    conn: sa.Connection, owners: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, StoredNode] | None]:
    """
    The nodes of each C{(host, username)} in C{owners}, with their
    configuration, affiliations and newest item, in one transaction: a
    user logging in needs the PEP nodes of every contact at once.  An
    account that does not exist maps to None.
    """
    wanted = list(dict.fromkeys(owners))
    found: dict[tuple[str, str], dict[str, StoredNode] | None] = {owner: None for owner in wanted}
    ids: dict[int, tuple[str, str]] = {}
    for chunk in _chunks(wanted):
        rows = conn.execute(
            sa.select(accounts.c.id, accounts.c.host, accounts.c.username).where(
                sa.tuple_(accounts.c.host, accounts.c.username).in_(chunk)
            )
        )
        for row in rows:
            ids[row.id] = (row.host, row.username)
            found[(row.host, row.username)] = {}
    if not ids:
        return found
    n, i, a, sub = pep_nodes.c, pep_items.c, pep_affiliations.c, pep_subscriptions.c
    configs: dict[tuple[int, str], dict[str, Any]] = {}
    affiliations: dict[tuple[int, str], dict[str, str]] = {}
    subscriptions: dict[tuple[int, str], list[str]] = {}
    lasts: dict[tuple[int, str], StoredItem] = {}
    for chunk in _chunks(list(ids)):
        for row in conn.execute(sa.select(n.account_id, n.node, n.config).where(n.account_id.in_(chunk))):
            configs[(row.account_id, row.node)] = _config(row.config)
        for row in conn.execute(sa.select(a.account_id, a.node, a.jid, a.affiliation).where(a.account_id.in_(chunk))):
            affiliations.setdefault((row.account_id, row.node), {})[row.jid] = row.affiliation
        for row in conn.execute(sa.select(sub.account_id, sub.node, sub.jid).where(sub.account_id.in_(chunk))):
            subscriptions.setdefault((row.account_id, row.node), []).append(row.jid)
        newest = (
            sa.select(i.account_id, i.node, sa.func.max(i.seq).label("seq"))
            .where(i.account_id.in_(chunk))
            .group_by(i.account_id, i.node)
            .subquery()
        )
        rows = conn.execute(
            sa.select(i.account_id, i.node, i.item_id, i.xml, i.publisher, i.published).join(
                newest,
                sa.and_(i.account_id == newest.c.account_id, i.node == newest.c.node, i.seq == newest.c.seq),
            )
        )
        for row in rows:
            lasts[(row.account_id, row.node)] = _item(row)
    for (accountId, node), config in configs.items():
        nodes = found[ids[accountId]]
        assert nodes is not None
        key = (accountId, node)
        nodes[node] = StoredNode(config, affiliations.get(key, {}), lasts.get(key), tuple(sorted(subscriptions.get(key, ()))))
    return found


# -- nodes ----------------------------------------------------------------------------


def create_node_txn(conn: sa.Connection, host: str, username: str, node: str, config: Mapping[str, Any]) -> bool:
    """Create C{node} with C{config}; False when there is no such account."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    conn.execute(pep_nodes.insert().values(account_id=accountId, node=node, config=json.dumps(dict(config), sort_keys=True)))
    return True


def set_node_config_txn(
    conn: sa.Connection,
    host: str,
    username: str,
    node: str,
    config: Mapping[str, Any],
    keep: int | None,
    last: StoredItem | None = None,
) -> None:
    """
    Replace the configuration of C{node}.  C{keep}: how many of the newest
    items stay stored (0 when the node no longer persists items; None: all).
    C{last}: an item to store, the one kept in memory while the node did
    not persist items.
    """
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return
    n = pep_nodes.c
    conn.execute(
        pep_nodes.update()
        .where(n.account_id == accountId, n.node == node)
        .values(config=json.dumps(dict(config), sort_keys=True))
    )
    if last is not None:
        _storeItem(conn, accountId, node, last)
    if keep is not None:
        _trim(conn, accountId, node, keep)


def delete_node_txn(conn: sa.Connection, host: str, username: str, node: str) -> bool:
    """Delete C{node} with its items, affiliations and subscriptions; False when there was none."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    # Items and affiliations go first explicitly: the schema cascades, but
    # XEP-0060 §8.4 asks for it and it costs nothing.
    conn.execute(pep_items.delete().where(pep_items.c.account_id == accountId, pep_items.c.node == node))
    conn.execute(
        pep_affiliations.delete().where(pep_affiliations.c.account_id == accountId, pep_affiliations.c.node == node)
    )
    conn.execute(
        pep_subscriptions.delete().where(pep_subscriptions.c.account_id == accountId, pep_subscriptions.c.node == node)
    )
    n = pep_nodes.c
    return conn.execute(pep_nodes.delete().where(n.account_id == accountId, n.node == node)).rowcount > 0


# -- items -------------------------------------------------------------------------------


def _storeItem(conn: sa.Connection, accountId: int, node: str, item: StoredItem) -> None:
    c = pep_items.c
    seq = conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(c.seq), 0)).where(c.account_id == accountId, c.node == node)
    ).scalar_one()
    values = {"seq": int(seq) + 1, "publisher": item.publisher, "published": item.published, "xml": item.xml}
    where = (c.account_id == accountId, c.node == node, c.item_id == item.id)
    if conn.execute(pep_items.update().where(*where).values(**values)).rowcount == 0:
        conn.execute(pep_items.insert().values(account_id=accountId, node=node, item_id=item.id, **values))


def _trim(conn: sa.Connection, accountId: int, node: str, keep: int) -> None:
    """Delete all but the C{keep} newest items of C{node}."""
    c = pep_items.c
    threshold = conn.execute(
        sa.select(c.seq)
        .where(c.account_id == accountId, c.node == node)
        .order_by(c.seq.desc())
        .offset(keep)
        .limit(1)
    ).scalar_one_or_none()
    if threshold is not None:
        conn.execute(pep_items.delete().where(c.account_id == accountId, c.node == node, c.seq <= threshold))


def publish_item_txn(
    conn: sa.Connection, host: str, username: str, node: str, item: StoredItem, keep: int
) -> bool:
    """
    Store C{item} as the newest of C{node} (replacing an item with the same
    id) and keep only the C{keep} newest; False when there is no such account.
    """
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    _storeItem(conn, accountId, node, item)
    _trim(conn, accountId, node, keep)
    return True


def newest_item_txn(conn: sa.Connection, host: str, username: str, node: str) -> StoredItem | None:
    """The newest item of C{node}, or None."""
    c = pep_items.c
    row = conn.execute(
        sa.select(c.item_id, c.xml, c.publisher, c.published)
        .select_from(pep_items.join(accounts, accounts.c.id == c.account_id))
        .where(accounts.c.host == host, accounts.c.username == username, c.node == node)
        .order_by(c.seq.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else _item(row)


def retract_item_txn(
    conn: sa.Connection, host: str, username: str, node: str, itemId: str
) -> tuple[bool, StoredItem | None]:
    """Delete one item: (whether it existed, the newest item left)."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False, None
    c = pep_items.c
    deleted = conn.execute(
        pep_items.delete().where(c.account_id == accountId, c.node == node, c.item_id == itemId)
    ).rowcount > 0
    return deleted, newest_item_txn(conn, host, username, node)


def purge_node_txn(conn: sa.Connection, host: str, username: str, node: str) -> None:
    """Delete every item of C{node}."""
    accountId = _accountId(conn, host, username)
    if accountId is not None:
        c = pep_items.c
        conn.execute(pep_items.delete().where(c.account_id == accountId, c.node == node))


def get_items_txn(
    conn: sa.Connection,
    host: str,
    username: str,
    node: str,
    ids: list[str] | None = None,
    newest: int | None = None,
) -> list[StoredItem]:
    """
    Items of C{node} in the order they were published: those with the ids
    in C{ids} (when given), at most the C{newest} most recent ones (when given).
    """
    c = pep_items.c
    query = (
        sa.select(c.item_id, c.xml, c.publisher, c.published, c.seq)
        .select_from(pep_items.join(accounts, accounts.c.id == c.account_id))
        .where(accounts.c.host == host, accounts.c.username == username, c.node == node)
    )
    if ids is not None:
        query = query.where(c.item_id.in_(ids))
    query = query.order_by(c.seq.desc())
    if newest is not None:
        query = query.limit(newest)
    rows = list(conn.execute(query))
    rows.reverse()
    return [_item(row) for row in rows]


def item_ids_txn(conn: sa.Connection, host: str, username: str, node: str) -> list[str]:
    """The ids of the items of C{node}, oldest first (disco#items of a node)."""
    c = pep_items.c
    return list(
        conn.execute(
            sa.select(c.item_id)
            .select_from(pep_items.join(accounts, accounts.c.id == c.account_id))
            .where(accounts.c.host == host, accounts.c.username == username, c.node == node)
            .order_by(c.seq)
        ).scalars()
    )


# -- affiliations ---------------------------------------------------------------------


def set_affiliations_txn(
    conn: sa.Connection, host: str, username: str, node: str, changes: Mapping[str, str | None]
) -> None:
    """Set the affiliation of each bare JID in C{changes}; None (or "none") removes it."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return
    c = pep_affiliations.c
    for jid, affiliation in changes.items():
        where = (c.account_id == accountId, c.node == node, c.jid == jid)
        if affiliation in (None, "none"):
            conn.execute(pep_affiliations.delete().where(*where))
        elif conn.execute(pep_affiliations.update().where(*where).values(affiliation=affiliation)).rowcount == 0:
            conn.execute(
                pep_affiliations.insert().values(account_id=accountId, node=node, jid=jid, affiliation=affiliation)
            )


# -- subscriptions ---------------------------------------------------------------------


def set_subscription_txn(conn: sa.Connection, host: str, username: str, node: str, jid: str, subscribed: bool) -> None:
    """Subscribe (or unsubscribe) C{jid}, a bare or full JID, to C{node}."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return
    c = pep_subscriptions.c
    where = (c.account_id == accountId, c.node == node, c.jid == jid)
    if not subscribed:
        conn.execute(pep_subscriptions.delete().where(*where))
        return
    if conn.execute(sa.select(c.jid).where(*where)).one_or_none() is None:
        try:
            with conn.begin_nested():
                conn.execute(pep_subscriptions.insert().values(account_id=accountId, node=node, jid=jid))
        except sa.exc.IntegrityError:
            pass
