"""
The MUC's tables, on its own SQLAlchemy C{MetaData}, and the functions that
read and write them.

The MUC shares the server's database (the same URL) but never reads the
core's tables, and the core never reads these: its migrations live in
C{components/muc/migrations/} with their own version table
(C{muc_alembic_version}), so the two schemas evolve independently in one
database.

Only persistent rooms are stored: their configuration (JSON), subject and
affiliations.  Everything else (occupants, roles, history) lives in memory,
and the hot path (every presence and message) never waits for the
database: rooms are loaded once at start and written behind, in order, one
room at a time.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from jabberd.store.schema import NAMING_CONVENTION, UTCDateTime

__all__ = ["VERSION_TABLE", "metadata", "muc_rooms", "muc_affiliations", "StoredRoom"]

#: Alembic's version table for the MUC schema (the core's is alembic_version).
VERSION_TABLE = "muc_alembic_version"

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: One row per persistent room.  service is the MUC domain (one database can
#: hold the rooms of several services), name the room's localpart.
muc_rooms = sa.Table(
    "muc_rooms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("service", sa.String(1023), nullable=False),
    sa.Column("name", sa.String(1023), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("subject_nick", sa.String(1023), nullable=True),
    sa.Column("subject_time", UTCDateTime, nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.UniqueConstraint("service", "name"),
)

#: Affiliations (XEP-0045 §5.2) of a persistent room, by bare JID (or domain).
muc_affiliations = sa.Table(
    "muc_affiliations",
    metadata,
    sa.Column("room_id", sa.Integer, sa.ForeignKey("muc_rooms.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("jid", sa.String(3071), primary_key=True),
    sa.Column("affiliation", sa.String(16), nullable=False),
    sa.Column("nick", sa.String(1023), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
)


class StoredRoom:
    """A persistent room as read from the store."""

    __slots__ = ("name", "config", "subject", "subjectNick", "subjectTime", "created", "affiliations")

    def __init__(self, name: str, config: dict, subject: str | None, subjectNick: str | None,
                 subjectTime: datetime | None, created: datetime, affiliations: list[tuple[str, str, str | None, str | None]]) -> None:
        self.name = name
        self.config = config
        self.subject = subject
        self.subjectNick = subjectNick
        self.subjectTime = subjectTime
        self.created = created
        self.affiliations = affiliations  # (jid, affiliation, nick, reason)


# -- migrations ------------------------------------------------------------------


def _alembicConfig() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", "components.muc:migrations")
    config.set_main_option("path_separator", "os")
    return config


def upgrade_txn(conn: sa.Connection) -> None:
    """Bring the MUC tables to the newest schema (inside the caller's transaction)."""
    config = _alembicConfig()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def current_revision_txn(conn: sa.Connection) -> str | None:
    """The MUC schema revision of the database (None: no MUC tables yet)."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def headRevision() -> str:
    head = ScriptDirectory.from_config(_alembicConfig()).get_current_head()
    assert head is not None
    return head


# -- reading ------------------------------------------------------------------------


def load_rooms_txn(conn: sa.Connection, service: str) -> list[StoredRoom]:
    """Every persistent room of C{service}, with its affiliations."""
    rooms: dict[int, StoredRoom] = {}
    for row in conn.execute(sa.select(muc_rooms).where(muc_rooms.c.service == service).order_by(muc_rooms.c.id)):
        rooms[row.id] = StoredRoom(row.name, json.loads(row.config), row.subject, row.subject_nick,
                                   row.subject_time, row.created, [])
    if rooms:
        query = (
            sa.select(muc_affiliations)
            .join(muc_rooms, muc_rooms.c.id == muc_affiliations.c.room_id)
            .where(muc_rooms.c.service == service)
            .order_by(muc_affiliations.c.room_id, muc_affiliations.c.jid)
        )
        for row in conn.execute(query):
            rooms[row.room_id].affiliations.append((row.jid, row.affiliation, row.nick, row.reason))
    return list(rooms.values())


# -- writing -------------------------------------------------------------------------


def _roomID(conn: sa.Connection, service: str, name: str) -> int | None:
    return conn.execute(
        sa.select(muc_rooms.c.id).where(muc_rooms.c.service == service, muc_rooms.c.name == name)
    ).scalar()


def save_room_txn(conn: sa.Connection, service: str, name: str, config: dict, subject: str | None,
                  subjectNick: str | None, subjectTime: datetime | None, created: datetime,
                  affiliations: list[tuple[str, str, str | None, str | None]] | None = None) -> None:
    """
    Insert or update a room; with C{affiliations}, replace its affiliations too
    (a room that has just become persistent is written whole).
    """
    values = {
        "config": json.dumps(config, sort_keys=True),
        "subject": subject,
        "subject_nick": subjectNick,
        "subject_time": subjectTime,
    }
    roomID = _roomID(conn, service, name)
    if roomID is None:
        roomID = conn.execute(
            muc_rooms.insert().values(service=service, name=name, created=created, **values)
        ).inserted_primary_key[0]
    else:
        conn.execute(muc_rooms.update().where(muc_rooms.c.id == roomID).values(**values))
    if affiliations is not None:
        conn.execute(muc_affiliations.delete().where(muc_affiliations.c.room_id == roomID))
        if affiliations:
            conn.execute(
                muc_affiliations.insert(),
                [{"room_id": roomID, "jid": j, "affiliation": a, "nick": n, "reason": r} for j, a, n, r in affiliations],
            )


def set_affiliation_txn(conn: sa.Connection, service: str, name: str, jid: str, affiliation: str,
                        nick: str | None = None, reason: str | None = None) -> None:
    """Set one affiliation of a stored room; C{"none"} removes it."""
    roomID = _roomID(conn, service, name)
    if roomID is None:
        return
    conn.execute(muc_affiliations.delete().where(muc_affiliations.c.room_id == roomID, muc_affiliations.c.jid == jid))
    if affiliation != "none":
        conn.execute(muc_affiliations.insert().values(room_id=roomID, jid=jid, affiliation=affiliation, nick=nick, reason=reason))


def delete_room_txn(conn: sa.Connection, service: str, name: str) -> None:
    """Forget a room (destroyed, or no longer persistent); its affiliations go with it."""
    roomID = _roomID(conn, service, name)
    if roomID is not None:
        conn.execute(muc_affiliations.delete().where(muc_affiliations.c.room_id == roomID))
        conn.execute(muc_rooms.delete().where(muc_rooms.c.id == roomID))


def now() -> datetime:
    return datetime.now(timezone.utc)


