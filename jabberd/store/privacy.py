"""
Privacy lists (XEP-0016), which also hold the blocklist (XEP-0191: the
default list seen through the blocking command).  One store for both
protocols, as XEP-0191 §5 requires.

Three tables hang off an account (deleting the account removes them):

- C{privacy_lists}: one row per list name;
- C{privacy_items}: the items of a list, keyed by their 'order' (unique in
  a list, XEP-0016 §2.1): type ("jid", "group", "subscription" or NULL for
  the fall-through item), value, action ("allow"/"deny") and the stanza
  kinds as a bit mask (0 = every kind; see L{jabberd.privacy});
- C{privacy_defaults}: the account's default list, if any.  It references
  the list, so removing a list that is the default also removes the
  default.

Active lists belong to sessions and are never stored.

The C{*_txn} functions are synchronous and take a connection already in a
transaction (run them through L{Store.runInteraction}); hosts and usernames
arrive prepared.  The privacy runtime (L{jabberd.modules.privacyrules})
loads an account's lists with L{load_privacy_txn} when they are first
needed, writes every change with L{apply_privacy_changes_txn} (one
transaction per change) and asks L{accounts_with_default_txn} at startup
which accounts have a default list at all, so traffic for everyone else
never waits for the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import sqlalchemy as sa

from jabberd.privacy import PrivacyItem
from jabberd.store.schema import account_id_txn as _accountId
from jabberd.store.schema import accounts, metadata

__all__ = [
    "PrivacyData",
    "privacy_lists",
    "privacy_items",
    "privacy_defaults",
    "load_privacy_txn",
    "accounts_with_default_txn",
    "apply_privacy_changes_txn",
]

#: A list name: the same bound as roster names and groups.
NAME_LENGTH = 1023
#: An item value: a JID (three 1023-byte parts) or a group name.
VALUE_LENGTH = 3071

# -- tables --------------------------------------------------------------------

privacy_lists = sa.Table(
    "privacy_lists",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
)

privacy_items = sa.Table(
    "privacy_items",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("list_name", sa.String(NAME_LENGTH), primary_key=True),
    # xs:unsignedInt goes beyond a signed 32-bit integer.
    sa.Column("item_order", sa.BigInteger, primary_key=True),
    sa.Column("item_type", sa.String(12), nullable=True),
    sa.Column("item_value", sa.String(VALUE_LENGTH), nullable=True),
    sa.Column("action", sa.String(5), nullable=False),
    sa.Column("kinds", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(
        ["account_id", "list_name"],
        ["privacy_lists.account_id", "privacy_lists.name"],
        ondelete="CASCADE",
    ),
)

privacy_defaults = sa.Table(
    "privacy_defaults",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("list_name", sa.String(NAME_LENGTH), nullable=False),
    sa.ForeignKeyConstraint(
        ["account_id", "list_name"],
        ["privacy_lists.account_id", "privacy_lists.name"],
        ondelete="CASCADE",
    ),
)


# -- values --------------------------------------------------------------------


@dataclass
class PrivacyData:
    """Everything stored about an account's privacy lists."""

    lists: dict[str, tuple[PrivacyItem, ...]] = field(default_factory=dict)
    default: str | None = None


# -- queries -------------------------------------------------------------------



def load_privacy_txn(conn: sa.Connection, host: str, username: str) -> PrivacyData | None:
    """Every list of an account with its items in order, and its default; None when there is no such account."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return None
    data = PrivacyData()
    for row in conn.execute(sa.select(privacy_lists.c.name).where(privacy_lists.c.account_id == accountId)):
        data.lists[row.name] = ()
    c = privacy_items.c
    found: dict[str, list[PrivacyItem]] = {}
    for row in conn.execute(
        sa.select(c.list_name, c.item_order, c.item_type, c.item_value, c.action, c.kinds)
        .where(c.account_id == accountId)
        .order_by(c.list_name, c.item_order)
    ):
        found.setdefault(row.list_name, []).append(
            PrivacyItem(int(row.item_order), row.action == "allow", row.item_type, row.item_value, int(row.kinds))
        )
    for name, items in found.items():
        if name in data.lists:
            data.lists[name] = tuple(items)
    data.default = conn.execute(
        sa.select(privacy_defaults.c.list_name).where(privacy_defaults.c.account_id == accountId)
    ).scalar_one_or_none()
    return data


def accounts_with_default_txn(conn: sa.Connection) -> list[str]:
    """The bare JIDs ('user@host') of every account that has a default list."""
    a = accounts.c
    rows = conn.execute(
        sa.select(a.username, a.host).select_from(privacy_defaults.join(accounts, accounts.c.id == privacy_defaults.c.account_id))
    )
    return [f"{row.username}@{row.host}" for row in rows]


def _items(accountId: int, name: str, items: Sequence[PrivacyItem]) -> list[dict]:
    return [
        {
            "account_id": accountId,
            "list_name": name,
            "item_order": item.order,
            "item_type": item.type,
            "item_value": item.value,
            "action": "allow" if item.allow else "deny",
            "kinds": item.kinds,
        }
        for item in items
    ]


def apply_privacy_changes_txn(conn: sa.Connection, host: str, username: str, changes: Sequence[tuple]) -> bool:
    """
    Apply C{changes} in one transaction, in order; False (and nothing
    written) when there is no such account.  Each change is one of:

    - C{("list", name, items)}: create the list or replace all its items;
    - C{("remove", name)}: remove the list (and the default, if it was it);
    - C{("default", name or None)}: make a list the default, or have none.
    """
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    for change in changes:
        kind = change[0]
        if kind == "list":
            _, name, items = change
            exists = conn.execute(
                sa.select(privacy_lists.c.name).where(privacy_lists.c.account_id == accountId, privacy_lists.c.name == name)
            ).first()
            if exists is None:
                conn.execute(privacy_lists.insert().values(account_id=accountId, name=name))
            else:
                conn.execute(
                    privacy_items.delete().where(privacy_items.c.account_id == accountId, privacy_items.c.list_name == name)
                )
            rows = _items(accountId, name, items)
            if rows:
                conn.execute(privacy_items.insert(), rows)
        elif kind == "remove":
            _, name = change
            # Explicitly, children first: no reliance on the backend's cascades.
            conn.execute(
                privacy_defaults.delete().where(privacy_defaults.c.account_id == accountId, privacy_defaults.c.list_name == name)
            )
            conn.execute(privacy_items.delete().where(privacy_items.c.account_id == accountId, privacy_items.c.list_name == name))
            conn.execute(privacy_lists.delete().where(privacy_lists.c.account_id == accountId, privacy_lists.c.name == name))
        elif kind == "default":
            _, name = change
            conn.execute(privacy_defaults.delete().where(privacy_defaults.c.account_id == accountId))
            if name is not None:
                conn.execute(privacy_defaults.insert().values(account_id=accountId, list_name=name))
        else:
            raise ValueError(f"unknown privacy change {kind!r}")
    return True
