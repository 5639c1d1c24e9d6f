"""
Accounts and their SCRAM credentials.

The C{*_txn} functions are synchronous and take a SQLAlchemy connection that
is already in a transaction: run them through L{Store.runInteraction}, or
combine several in one interaction of your own.  L{Accounts} is the small
asynchronous facade most callers want.

Hosts and usernames arrive prepared (nameprep / nodeprep) and are stored and
compared exactly as given.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

import sqlalchemy as sa
from twisted.internet.defer import Deferred

from jabberd.store.schema import account_id_txn as _accountId
from jabberd.store.schema import account_credentials, accountNamed, accounts

if TYPE_CHECKING:
    from jabberd.store.database import Store

__all__ = [
    "ScramCredential",
    "AccountExists",
    "NoSuchAccount",
    "create_account_txn",
    "set_credentials_txn",
    "delete_account_txn",
    "get_credentials_txn",
    "account_exists_txn",
    "list_accounts_txn",
    "Accounts",
]


@dataclass(frozen=True)
class ScramCredential:
    """What SCRAM (RFC 5802) needs to verify a password without storing it."""

    mechanism: str  # "SCRAM-SHA-1", "SCRAM-SHA-256", ...
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


class AccountExists(Exception):
    """An account with this host and username already exists."""


class NoSuchAccount(Exception):
    """No account has this host and username."""



def _insertCredentials(
    conn: sa.Connection, accountId: int, credentials: Sequence[ScramCredential]
) -> None:
    mechanisms = [c.mechanism for c in credentials]
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"one credential per mechanism, got {mechanisms}")
    if credentials:
        conn.execute(
            account_credentials.insert(),
            [
                {
                    "account_id": accountId,
                    "mechanism": c.mechanism,
                    "salt": c.salt,
                    "iterations": c.iterations,
                    "stored_key": c.stored_key,
                    "server_key": c.server_key,
                }
                for c in credentials
            ],
        )


def create_account_txn(
    conn: sa.Connection,
    host: str,
    username: str,
    credentials: Sequence[ScramCredential],
    created: datetime | None = None,
) -> int:
    """
    Create an account with its credentials and return its id.

    C{created} (aware) defaults to now; pass the reactor's time for
    reproducible tests.  Raises L{AccountExists}; the savepoint keeps the
    caller's transaction usable when it does (PostgreSQL aborts the whole
    transaction on a constraint violation otherwise).
    """
    if created is None:
        created = datetime.now(timezone.utc)
    try:
        with conn.begin_nested():
            result = conn.execute(
                accounts.insert().values(host=host, username=username, created=created)
            )
    except sa.exc.IntegrityError as e:
        raise AccountExists(f"{username}@{host}") from e
    accountId: int = result.inserted_primary_key[0]
    _insertCredentials(conn, accountId, credentials)
    return accountId


def set_credentials_txn(
    conn: sa.Connection, host: str, username: str, credentials: Sequence[ScramCredential]
) -> None:
    """Replace all of an account's credentials (a password change); raises L{NoSuchAccount}."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        raise NoSuchAccount(f"{username}@{host}")
    conn.execute(account_credentials.delete().where(account_credentials.c.account_id == accountId))
    _insertCredentials(conn, accountId, credentials)


def delete_account_txn(conn: sa.Connection, host: str, username: str) -> None:
    """
    Delete an account; raises L{NoSuchAccount}.

    Everything hanging off the account by a C{ON DELETE CASCADE} foreign key
    (credentials, and later roster, offline messages...) goes with it.
    """
    result = conn.execute(
        accounts.delete().where(accounts.c.host == host, accounts.c.username == username)
    )
    if result.rowcount == 0:
        raise NoSuchAccount(f"{username}@{host}")


#: Every login reads this: built once (see L{jabberd.store.schema.accountNamed}).
_CREDENTIALS = (
    sa.select(
        account_credentials.c.mechanism,
        account_credentials.c.salt,
        account_credentials.c.iterations,
        account_credentials.c.stored_key,
        account_credentials.c.server_key,
    )
    .select_from(accounts.outerjoin(account_credentials))
    .where(accountNamed())
)


def get_credentials_txn(
    conn: sa.Connection, host: str, username: str
) -> dict[str, ScramCredential] | None:
    """
    An account's credentials by mechanism; None when there is no such account.

    An account without credentials gives C{{}} (it exists but cannot log in
    with a password), which is why this is one outer join and not two queries.
    """
    rows = conn.execute(_CREDENTIALS, {"acct_host": host, "acct_user": username}).all()
    if not rows:
        return None
    return {
        row.mechanism: ScramCredential(
            mechanism=row.mechanism,
            salt=bytes(row.salt),
            iterations=row.iterations,
            stored_key=bytes(row.stored_key),
            server_key=bytes(row.server_key),
        )
        for row in rows
        if row.mechanism is not None
    }


def account_exists_txn(conn: sa.Connection, host: str, username: str) -> bool:
    """True when the account exists."""
    return _accountId(conn, host, username) is not None


def list_accounts_txn(conn: sa.Connection, host: str | None = None) -> list[tuple[str, str]]:
    """
    All C{(username, host)} pairs, or those of one host, sorted.

    Sorted in Python, not by the database, so the order is the same
    (code point order) on every backend and collation.
    """
    query = sa.select(accounts.c.username, accounts.c.host)
    if host is not None:
        query = query.where(accounts.c.host == host)
    return sorted((row.username, row.host) for row in conn.execute(query))


class Accounts:
    """The asynchronous face of this module: each method returns a Deferred."""

    def __init__(self, store: Store):
        self.store = store

    def create(
        self,
        host: str,
        username: str,
        credentials: Sequence[ScramCredential],
        created: datetime | None = None,
    ) -> Deferred[int]:
        """Create an account; fails with L{AccountExists}."""
        return self.store.runInteraction(
            "create_account", create_account_txn, host, username, credentials, created
        )

    def setCredentials(
        self, host: str, username: str, credentials: Sequence[ScramCredential]
    ) -> Deferred[None]:
        """Replace an account's credentials; fails with L{NoSuchAccount}."""
        return self.store.runInteraction(
            "set_credentials", set_credentials_txn, host, username, credentials
        )

    def delete(self, host: str, username: str) -> Deferred[None]:
        """Delete an account and all its data; fails with L{NoSuchAccount}."""
        return self.store.runInteraction("delete_account", delete_account_txn, host, username)

    def getCredentials(
        self, host: str, username: str
    ) -> Deferred[dict[str, ScramCredential] | None]:
        """An account's credentials by mechanism, or None for no such account."""
        return self.store.runInteraction("get_credentials", get_credentials_txn, host, username)

    def exists(self, host: str, username: str) -> Deferred[bool]:
        """Whether the account exists."""
        return self.store.runInteraction("account_exists", account_exists_txn, host, username)

    def list(self, host: str | None = None) -> Deferred[builtins.list[tuple[str, str]]]:
        """Sorted C{(username, host)} pairs, optionally of one host."""
        return self.store.runInteraction("list_accounts", list_accounts_txn, host)
