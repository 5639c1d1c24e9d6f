"""
Offline messages (XEP-0160): the table and its C{*_txn} functions.

A message for an account with no available resource is stored here and
delivered when a resource sends non-negative initial presence
(L{jabberd.modules.offline}).  The table is the source of truth: a message
counts as accepted only once its row is committed, and a row is deleted
only after the client confirmed receiving it, by id, so a message stored
while a delivery was running is never deleted unseen.

C{stanza} holds the message as received (serialised XML, its own namespace
as the default one); the XEP-0203 delay is added on delivery from C{stamp},
the time the server accepted it.  Rows are ordered by C{id}: the module
stores one account's messages one at a time, so C{id} order is arrival
order on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

import sqlalchemy as sa
from twisted.internet.defer import Deferred

from jabberd.store.accounts import NoSuchAccount
from jabberd.store.schema import account_id_txn as _accountId
from jabberd.store.schema import UTCDateTime, accountNamed, accounts, metadata

if TYPE_CHECKING:
    from jabberd.store.database import Store

__all__ = [
    "offline_messages",
    "OfflineMessage",
    "OfflineQuotaExceeded",
    "store_offline_message_txn",
    "get_offline_messages_txn",
    "delete_offline_messages_txn",
    "count_offline_messages_txn",
    "OfflineMessages",
]

#: One row per stored message; deleting the account deletes its messages.
#: The index serves both the per-account count (quota) and the ordered read.
offline_messages = sa.Table(
    "offline_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("stamp", UTCDateTime, nullable=False),
    sa.Column("stanza", sa.Text, nullable=False),
    sa.Index(None, "account_id", "id"),
)


@dataclass(frozen=True)
class OfflineMessage:
    """A stored message: its row id, when it was accepted, and its XML."""

    id: int
    stamp: datetime
    stanza: str


class OfflineQuotaExceeded(Exception):
    """The account already holds its maximum number of offline messages."""



def store_offline_message_txn(
    conn: sa.Connection, host: str, username: str, stamp: datetime, stanza: str, limit: int
) -> int:
    """
    Store one message for C{username@host} and return its id.

    One transaction answers "does the account exist?", "is there room?"
    and stores: raises L{NoSuchAccount} or L{OfflineQuotaExceeded} (then
    nothing is written).
    """
    accountId = _accountId(conn, host, username)
    if accountId is None:
        raise NoSuchAccount(f"{username}@{host}")
    held = conn.execute(
        sa.select(sa.func.count()).select_from(offline_messages).where(offline_messages.c.account_id == accountId)
    ).scalar_one()
    if held >= limit:
        raise OfflineQuotaExceeded(f"{username}@{host} holds {held} offline messages")
    result = conn.execute(offline_messages.insert().values(account_id=accountId, stamp=stamp, stanza=stanza))
    return int(result.inserted_primary_key[0])


#: A login with stored messages reads them: built once (see
#: L{jabberd.store.schema.accountNamed}).
_MESSAGES = (
    sa.select(offline_messages.c.id, offline_messages.c.stamp, offline_messages.c.stanza)
    .select_from(offline_messages.join(accounts))
    .where(accountNamed(), offline_messages.c.id > sa.bindparam("after_id"))
    .order_by(offline_messages.c.id)
)
_MESSAGES_LIMITED = _MESSAGES.limit(sa.bindparam("limit"))


def get_offline_messages_txn(
    conn: sa.Connection, host: str, username: str, afterId: int = 0, limit: int | None = None
) -> list[OfflineMessage]:
    """An account's stored messages with an id above C{afterId}, oldest first (at most C{limit})."""
    params = {"acct_host": host, "acct_user": username, "after_id": afterId}
    if limit is None:
        rows = conn.execute(_MESSAGES, params)
    else:
        rows = conn.execute(_MESSAGES_LIMITED, {**params, "limit": limit})
    return [OfflineMessage(row.id, row.stamp, row.stanza) for row in rows]


def delete_offline_messages_txn(conn: sa.Connection, host: str, username: str, ids: Sequence[int]) -> int:
    """Delete the account's messages with these ids (others' are never touched); return how many."""
    if not ids:
        return 0
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return 0
    result = conn.execute(
        offline_messages.delete().where(offline_messages.c.account_id == accountId, offline_messages.c.id.in_(list(ids)))
    )
    return result.rowcount


def count_offline_messages_txn(conn: sa.Connection, host: str, username: str) -> int:
    """How many messages the account holds (0 for no such account)."""
    return conn.execute(
        sa.select(sa.func.count())
        .select_from(offline_messages.join(accounts))
        .where(accounts.c.host == host, accounts.c.username == username)
    ).scalar_one()


class OfflineMessages:
    """The asynchronous face of this module: each method returns a Deferred."""

    def __init__(self, store: Store):
        self.store = store

    def add(self, host: str, username: str, stamp: datetime, stanza: str, limit: int) -> Deferred[int]:
        """Store a message; fails with L{NoSuchAccount} or L{OfflineQuotaExceeded}."""
        return self.store.runInteraction(
            "store_offline_message", store_offline_message_txn, host, username, stamp, stanza, limit
        )

    def get(self, host: str, username: str, afterId: int = 0, limit: int | None = None) -> Deferred[list[OfflineMessage]]:
        """Stored messages after C{afterId}, oldest first."""
        return self.store.runInteraction("get_offline_messages", get_offline_messages_txn, host, username, afterId, limit)

    def delete(self, host: str, username: str, ids: Sequence[int]) -> Deferred[int]:
        """Delete delivered messages by id."""
        return self.store.runInteraction("delete_offline_messages", delete_offline_messages_txn, host, username, ids)

    def count(self, host: str, username: str) -> Deferred[int]:
        """How many messages the account holds."""
        return self.store.runInteraction("count_offline_messages", count_offline_messages_txn, host, username)
