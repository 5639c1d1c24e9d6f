"""
Small per-account data: vCards (XEP-0054), private XML (XEP-0049) and the
last logout (XEP-0012).

Three tables hang off an account (deleting the account removes them):

- C{vcards}: one row per account, the serialized C{<vCard xmlns='vcard-temp'>}
  exactly as the owner last set it;
- C{private_xml}: one row per account and namespace, the serialized
  elements of that namespace (XEP-0049 allows several), and their size in
  bytes so a quota check is one C{SUM} and never reads the XML;
- C{last_activity}: when the account's last session ended and the status
  text of its last unavailable presence.

XML is stored as the text the modules serialized (self-contained: every
element declares its namespaces), so reading it back needs no parsing: the
modules insert it into the reply as it is.

The C{*_txn} functions are synchronous and take a connection already in a
transaction (run them through L{Store.runInteraction}); hosts and usernames
arrive prepared, as in L{jabberd.store.accounts}.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping

import sqlalchemy as sa

from jabberd.store import roster as _roster
from jabberd.store.schema import account_id_txn as _accountId
from jabberd.store.schema import UTCDateTime, accountNamed, accounts, metadata

__all__ = [
    "vcards",
    "private_xml",
    "last_activity",
    "QuotaExceeded",
    "get_vcard_txn",
    "set_vcard_txn",
    "get_private_txn",
    "set_private_txn",
    "get_last_activity_txn",
    "set_last_activity_txn",
    "presence_authorized_txn",
    "last_activity_for_txn",
]

#: A namespace is a URI; 1023 keeps it indexable on every backend.
NAMESPACE_LENGTH = 1023

# -- tables ----------------------------------------------------------------------

vcards = sa.Table(
    "vcards",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("xml", sa.Text, nullable=False),
)

private_xml = sa.Table(
    "private_xml",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("namespace", sa.String(NAMESPACE_LENGTH), primary_key=True),
    sa.Column("xml", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
)

last_activity = sa.Table(
    "last_activity",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("logout", UTCDateTime, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
)


class QuotaExceeded(Exception):
    """A write would take the account over its storage limit; nothing was written."""



def _upsert(conn: sa.Connection, table: sa.Table, key: Mapping[str, object], values: Mapping[str, object]) -> None:
    """
    Update the row with C{key}, or insert it.

    Update first: the usual case (the row exists) is one statement on every
    backend, without dialect-specific ON CONFLICT syntax.  Two of the
    owner's sessions may insert at once (PostgreSQL runs interactions in
    parallel): the loser's insert fails inside a savepoint and it updates.
    """
    where = [table.c[name] == value for name, value in key.items()]
    update = table.update().where(*where).values(**values)
    if conn.execute(update).rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**key, **values))
        except sa.exc.IntegrityError:
            conn.execute(update)


# -- vCards ----------------------------------------------------------------------


def get_vcard_txn(conn: sa.Connection, host: str, username: str) -> str | None:
    """The account's stored vCard XML; None when it has none (or there is no such account)."""
    return conn.execute(
        sa.select(vcards.c.xml)
        .select_from(vcards.join(accounts, accounts.c.id == vcards.c.account_id))
        .where(accounts.c.host == host, accounts.c.username == username)
    ).scalar_one_or_none()


def set_vcard_txn(conn: sa.Connection, host: str, username: str, xml: str) -> bool:
    """Store (replace) the account's vCard XML; False when there is no such account."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    _upsert(conn, vcards, {"account_id": accountId}, {"xml": xml})
    return True


# -- private XML -------------------------------------------------------------------


def get_private_txn(conn: sa.Connection, host: str, username: str, namespace: str) -> str | None:
    """The stored XML of one namespace (its elements, concatenated); None when nothing is stored."""
    c = private_xml.c
    return conn.execute(
        sa.select(c.xml)
        .select_from(private_xml.join(accounts, accounts.c.id == c.account_id))
        .where(accounts.c.host == host, accounts.c.username == username, c.namespace == namespace)
    ).scalar_one_or_none()


def set_private_txn(
    conn: sa.Connection, host: str, username: str, data: Mapping[str, str], limit: int
) -> bool:
    """
    Store (replace) the XML of each namespace in C{data} in one transaction.

    The account's total (the bytes of every stored namespace after the
    write) must stay within C{limit} bytes, or L{QuotaExceeded} is raised and
    nothing changes.  Returns False when there is no such account.
    """
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    c = private_xml.c
    others = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(c.size), 0)).where(
            c.account_id == accountId, c.namespace.not_in(list(data))
        )
    ).scalar_one()
    sizes = {ns: len(xml.encode("utf-8")) for ns, xml in data.items()}
    total = int(others) + sum(sizes.values())
    if total > limit:
        raise QuotaExceeded(f"private storage would hold {total} bytes; the limit is {limit}")
    for namespace, xml in data.items():
        _upsert(
            conn,
            private_xml,
            {"account_id": accountId, "namespace": namespace},
            {"xml": xml, "size": sizes[namespace]},
        )
    return True


# -- last activity -------------------------------------------------------------------


# Built once (see L{jabberd.store.schema.accountNamed}): every logout is
# written with these, many in one transaction (jabberd.modules.last batches
# them), each statement run once for the whole batch (executemany).

_LAST_ACTIVITY = (
    sa.select(last_activity.c.logout, last_activity.c.status)
    .select_from(last_activity.join(accounts, accounts.c.id == last_activity.c.account_id))
    .where(accountNamed())
)

_ACCOUNT_ID = sa.select(accounts.c.id).where(accountNamed()).scalar_subquery()

_UPDATE_LAST_ACTIVITY = (
    last_activity.update()
    .where(last_activity.c.account_id == _ACCOUNT_ID)
    .values(logout=sa.bindparam("logout_at", type_=UTCDateTime), status=sa.bindparam("status_text", type_=sa.Text))
)

# Inserts a row only for an existing account that has none yet.
_INSERT_LAST_ACTIVITY = last_activity.insert().from_select(
    ["account_id", "logout", "status"],
    sa.select(
        accounts.c.id,
        sa.bindparam("logout_at", type_=UTCDateTime),
        sa.bindparam("status_text", type_=sa.Text),
    ).where(
        accountNamed(),
        ~sa.exists().where(last_activity.c.account_id == accounts.c.id),
    ),
)


def get_last_activity_txn(conn: sa.Connection, host: str, username: str) -> tuple[datetime, str] | None:
    """When the account last logged out and its last status text; None if never recorded."""
    row = conn.execute(_LAST_ACTIVITY, {"acct_host": host, "acct_user": username}).one_or_none()
    return None if row is None else (row.logout, row.status)


def set_last_activity_txn(
    conn: sa.Connection, logouts: Iterable[tuple[str, str, datetime, str]]
) -> None:
    """
    Record C{(host, username, logout, status)} for each account that logged
    out (one transaction for many: a server shutting down logs everybody
    out at once); for an account listed twice the later one stays.
    Accounts that no longer exist are skipped.

    Two statements for the whole batch: insert the rows missing, then
    update all (in list order, so the later of two entries wins).  The
    insert runs in a savepoint: should another transaction insert the same
    account's row at the same moment (PostgreSQL runs interactions in
    parallel), the batch is written row by row instead.
    """
    params = [
        {"acct_host": host, "acct_user": username, "logout_at": when, "status_text": status}
        for host, username, when, status in logouts
    ]
    if not params:
        return
    try:
        with conn.begin_nested():
            conn.execute(_INSERT_LAST_ACTIVITY, params)
    except sa.exc.IntegrityError:
        for p in params:
            accountId = _accountId(conn, p["acct_host"], p["acct_user"])
            if accountId is not None:
                _upsert(conn, last_activity, {"account_id": accountId}, {"logout": p["logout_at"], "status": p["status_text"]})
        return
    conn.execute(_UPDATE_LAST_ACTIVITY, params)


# -- who may see an account's presence ---------------------------------------------------


def presence_authorized_txn(conn: sa.Connection, host: str, username: str, contact: str) -> bool:
    """
    Whether C{contact} (a bare JID string) may see the account's presence:
    the account's roster gives it a subscription of "from" or "both"
    (RFC 6121 §4.1; XEP-0030 §8 and XEP-0012 §3 use the same rule).
    """
    return _roster.get_subscription_txn(conn, host, username, contact) in ("from", "both")


def last_activity_for_txn(
    conn: sa.Connection, host: str, username: str, contact: str | None
) -> tuple[bool, tuple[datetime, str] | None]:
    """
    For a last-activity query from C{contact} (None: the account itself):
    (whether it may know, the recorded logout or None), in one transaction.
    """
    if contact is not None and not presence_authorized_txn(conn, host, username, contact):
        return False, None
    return True, get_last_activity_txn(conn, host, username)
