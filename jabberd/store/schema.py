"""
The tables, as SQLAlchemy Core objects on one shared C{metadata}.

Queries are written against these objects; the database itself is created and
changed only by the Alembic migrations in C{jabberd/store/migrations/versions/}.
A test (C{tests.store.test_database}) checks that the two agree.

How to add tables for a new feature
===================================

1. Declare them here, under a heading naming the feature and the module
   that queries them, on C{metadata}; use L{UTCDateTime} for timestamps and
   C{sa.ForeignKey("accounts.id", ondelete="CASCADE")} to hang data off an
   account (deleting the account then removes it).  Do not name constraints
   by hand: C{metadata}'s naming convention does it, the same way on every
   backend.  Write the C{*_txn} functions in the feature's own module
   (C{jabberd/store/accounts.py} is the model).

2. Add a migration C{jabberd/store/migrations/versions/NNNN_<feature>.py}
   (copy C{0001_accounts.py}): C{revision = "NNNN"}, C{down_revision} = the
   current head, C{upgrade()} with C{op.create_table(...)} using plain C{sa}
   types (C{sa.DateTime(timezone=True)} for L{UTCDateTime}) and the
   constraint names the convention gives (C{op.f("pk_roster_items")} ...).
   Never edit a released migration: add a new one.  (A component with its
   own tables, like MUC, keeps its own metadata and migrations instead.)

3. Run C{trial tests.store}: it upgrades SQLite and PostgreSQL from empty
   and fails if the migrations and the tables here differ.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

__all__ = ["metadata", "UTCDateTime", "accounts", "account_credentials", "accountNamed", "account_id_txn"]

#: Constraint names derived from the table and columns, so migrations can name
#: (and later drop or alter) constraints identically on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """
    A timestamp that is always an aware UTC datetime in Python.

    Why: SQLite has no time zones and hands back naive datetimes while
    PostgreSQL hands back aware ones; this makes both behave the same and
    refuses naive datetimes, whose zone nobody knows.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give it a time zone")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# -- accounts (jabberd/store/accounts.py) -------------------------------------

#: One row per local account.  host and username arrive prepared (nameprep,
#: nodeprep) and are stored exactly as given; 1023 is the RFC 7622 limit.
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host", sa.String(1023), nullable=False),
    sa.Column("username", sa.String(1023), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.UniqueConstraint("host", "username"),
)

#: SCRAM credentials (RFC 5802): never the password, one row per mechanism.
account_credentials = sa.Table(
    "account_credentials",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("mechanism", sa.String(32), primary_key=True),
    sa.Column("salt", sa.LargeBinary, nullable=False),
    sa.Column("iterations", sa.Integer, nullable=False),
    sa.Column("stored_key", sa.LargeBinary, nullable=False),
    sa.Column("server_key", sa.LargeBinary, nullable=False),
)


# -- the account of a (host, username) ------------------------------------------
#
# The hot paths (a login reads credentials and the roster, a logout writes the
# last activity) run statements built once, here and at the top of each
# feature's module, with bindparam() for the values: SQLAlchemy then finds
# the compiled form in its cache by the statement's memoised cache key, while
# a statement built per call costs about 100 µs to construct and 60 µs more
# to key (bench/micro_store.py measures the functions).  Statements run once
# in a while (account creation, a roster change) are written inline, which
# reads better.


def accountNamed() -> sa.ColumnElement[bool]:
    """
    The condition "this row of C{accounts} is the account named by the bind
    parameters C{acct_host} and C{acct_user}": for statements built once at
    import (prefixed names, so they never clash with a column's own bind
    parameter in an INSERT or UPDATE).
    """
    return sa.and_(accounts.c.host == sa.bindparam("acct_host"), accounts.c.username == sa.bindparam("acct_user"))


_ACCOUNT_ID = sa.select(accounts.c.id).where(accountNamed())


def account_id_txn(conn: sa.Connection, host: str, username: str) -> int | None:
    """The id of the account C{username@host}; None when there is no such account."""
    return conn.execute(_ACCOUNT_ID, {"acct_host": host, "acct_user": username}).scalar_one_or_none()


# -- feature tables ------------------------------------------------------------
# Each feature declares its tables on `metadata` in its own module under
# jabberd/store/ (so features never edit this file); importing them here makes
# `metadata` complete for the schema test and for anyone who reflects on it.
from jabberd.store import roster as _roster  # noqa: E402,F401
from jabberd.store import offline as _offline  # noqa: E402,F401
from jabberd.store import userdata as _userdata  # noqa: E402,F401
from jabberd.store import privacy as _privacy  # noqa: E402,F401
from jabberd.store import pep as _pep  # noqa: E402,F401
from jabberd.store import caps as _caps  # noqa: E402,F401
