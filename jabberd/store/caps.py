"""
Entity capabilities (XEP-0115): the disco#info behind each verified
verification string, shared by every account on the server.

A verification string is a hash of a disco#info result, so once the server
has checked that an entity's answer hashes to the string it advertised, the
answer holds for everyone advertising the same string, for ever: a row is
written once and never changed.  Only verified answers are stored (the
module checks the hash before calling L{set_caps_txn}).

The C{*_txn} functions are synchronous and take a connection already in a
transaction (run them through L{Store.runInteraction}).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from jabberd.store.schema import UTCDateTime, metadata

__all__ = ["caps_info", "get_caps_txn", "set_caps_txn"]

caps_info = sa.Table(
    "caps_info",
    metadata,
    # The IANA hash name of the 'hash' attribute ("sha-1") and the base64 'ver'.
    sa.Column("algorithm", sa.String(16), primary_key=True),
    sa.Column("ver", sa.String(255), primary_key=True),
    # The disco#info <query/> as it was verified, serialized.
    sa.Column("xml", sa.Text, nullable=False),
    sa.Column("verified", UTCDateTime, nullable=False),
)


def get_caps_txn(conn: sa.Connection, algorithm: str, ver: str) -> str | None:
    """The stored disco#info XML for C{(algorithm, ver)}, or None."""
    c = caps_info.c
    return conn.execute(sa.select(c.xml).where(c.algorithm == algorithm, c.ver == ver)).scalar_one_or_none()


def set_caps_txn(conn: sa.Connection, algorithm: str, ver: str, xml: str, verified: datetime) -> None:
    """
    Remember the verified disco#info C{xml} of C{(algorithm, ver)}.  A row
    that is already there stays as it is (the same hash means the same
    answer); two servers sharing the database may race to insert it.
    """
    if get_caps_txn(conn, algorithm, ver) is not None:
        return
    try:
        with conn.begin_nested():
            conn.execute(caps_info.insert().values(algorithm=algorithm, ver=ver, xml=xml, verified=verified))
    except sa.exc.IntegrityError:
        pass
