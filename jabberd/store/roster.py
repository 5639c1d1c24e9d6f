"""
Rosters (RFC 6121 §2) and presence subscription state (§3, Appendix A).

Four tables hang off an account:

- C{roster_items}: one row per contact: name, subscription ("none", "to",
  "from", "both"), C{ask} (a subscription request of ours is pending: the
  "Pending Out" of Appendix A), C{approved} (a pre-approval, §3.4), and the
  roster version at which the row last changed;
- C{roster_groups}: the groups of an item;
- C{roster_pending}: inbound subscription requests not yet answered (the
  "Pending In" of Appendix A), with the request itself so it can be
  delivered again at the next login (§3.1.3).  Pending In is not an item
  attribute: the requester need not be in the roster at all;
- C{roster_versions}: the account's roster version (§2.6), with a random
  epoch so that a version from another database is never taken as current,
  and C{roster_tombstones}: the version at which an item was removed, so a
  client that knows an older version can be sent just the changes.

The C{*_txn} functions are synchronous and take a connection that is already
in a transaction (run them through L{Store.runInteraction}); other modules
read with L{get_subscription_txn} and L{get_roster_txn}.  The roster module
keeps the rosters of online accounts in memory and writes every change with
L{apply_changes_txn}, one transaction per change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

import sqlalchemy as sa

from jabberd.store.schema import account_id_txn as _accountId
from jabberd.store.schema import UTCDateTime, accountNamed, accounts, metadata

__all__ = [
    "RosterItem",
    "RosterState",
    "SUBSCRIPTIONS",
    "roster_items",
    "roster_groups",
    "roster_pending",
    "roster_versions",
    "roster_tombstones",
    "get_subscription_txn",
    "get_roster_txn",
    "load_roster_txn",
    "set_item_txn",
    "remove_item_txn",
    "set_pending_txn",
    "remove_pending_txn",
    "set_version_txn",
    "apply_changes_txn",
]

#: The values of the 'subscription' attribute of a stored item.
SUBSCRIPTIONS = ("none", "to", "from", "both")

#: A JID as a roster key: a bare JID (two 1023-byte parts and the '@') is
#: the normal case; full JIDs are allowed in a roster, hence room for three.
JID_LENGTH = 3071

# -- tables --------------------------------------------------------------------

roster_items = sa.Table(
    "roster_items",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("jid", sa.String(JID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(1023), nullable=True),
    sa.Column("subscription", sa.String(4), nullable=False),
    sa.Column("ask", sa.Boolean, nullable=False),
    sa.Column("approved", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

roster_groups = sa.Table(
    "roster_groups",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True),
    sa.Column("jid", sa.String(JID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(1023), primary_key=True),
    sa.ForeignKeyConstraint(
        ["account_id", "jid"],
        ["roster_items.account_id", "roster_items.jid"],
        ondelete="CASCADE",
    ),
)

roster_pending = sa.Table(
    "roster_pending",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("jid", sa.String(JID_LENGTH), primary_key=True),
    sa.Column("stanza", sa.Text, nullable=False),
    sa.Column("received", UTCDateTime, nullable=False),
)

roster_versions = sa.Table(
    "roster_versions",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("epoch", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # Versions below this cannot be brought up to date with pushes alone
    # (their tombstones were pruned): such a client gets the whole roster.
    sa.Column("floor", sa.Integer, nullable=False),
)

roster_tombstones = sa.Table(
    "roster_tombstones",
    metadata,
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("jid", sa.String(JID_LENGTH), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


# -- values --------------------------------------------------------------------


@dataclass(frozen=True)
class RosterItem:
    """
    One contact in a roster, as RFC 6121 §2.1.2 describes it.

    C{ask} is a pending outbound subscription request ("Pending Out"),
    C{approved} a subscription pre-approval (§3.4); both are flags the
    server sets, never the client.
    """

    jid: str
    name: str | None = None
    subscription: str = "none"
    ask: bool = False
    approved: bool = False
    groups: tuple[str, ...] = ()

    @property
    def hasTo(self) -> bool:
        """The user receives the contact's presence ('to' or 'both')."""
        return self.subscription in ("to", "both")

    @property
    def hasFrom(self) -> bool:
        """The contact receives the user's presence ('from' or 'both')."""
        return self.subscription in ("from", "both")


def subscriptionOf(hasTo: bool, hasFrom: bool) -> str:
    """The 'subscription' value for the two directions."""
    if hasTo:
        return "both" if hasFrom else "to"
    return "from" if hasFrom else "none"


@dataclass
class RosterState:
    """Everything stored about an account's roster, as loaded at login."""

    items: dict[str, RosterItem] = field(default_factory=dict)
    itemVersions: dict[str, int] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # jid -> subscribe stanza (XML)
    tombstones: dict[str, int] = field(default_factory=dict)  # jid -> version removed at
    epoch: str = ""
    version: int = 0
    floor: int = 0
    stored: bool = False  # whether roster_versions has a row yet

    @classmethod
    def empty(cls) -> "RosterState":
        """The state of an account that never had a roster (a new epoch)."""
        return cls(epoch=secrets.token_hex(4))


# -- queries -------------------------------------------------------------------



def _requireAccount(conn: sa.Connection, host: str, username: str) -> int:
    from jabberd.store.accounts import NoSuchAccount

    accountId = _accountId(conn, host, username)
    if accountId is None:
        raise NoSuchAccount(f"{username}@{host}")
    return accountId


#: Asked for every presence-gated query (last activity, disco): built once.
_SUBSCRIPTION = (
    sa.select(roster_items.c.subscription)
    .select_from(roster_items.join(accounts, accounts.c.id == roster_items.c.account_id))
    .where(accountNamed(), roster_items.c.jid == sa.bindparam("contact"))
)


def get_subscription_txn(conn: sa.Connection, host: str, username: str, contact: str) -> str:
    """
    The subscription between an account and C{contact} (a bare JID string):
    "none", "to", "from" or "both"; "none" when there is no such item.
    """
    value = conn.execute(_SUBSCRIPTION, {"acct_host": host, "acct_user": username, "contact": contact}).scalar_one_or_none()
    return value or "none"


# The statements of a roster load (every login) are built once (see
# L{jabberd.store.schema.accountNamed}), and there are three of them, where
# one per table (six) would cost about 80 µs of SQLAlchemy each: the account
# with its version row, the items with their groups, and the pending
# requests with the tombstones.

_ACCOUNT_VERSION = (
    sa.select(accounts.c.id, roster_versions.c.epoch, roster_versions.c.version, roster_versions.c.floor)
    .select_from(accounts.outerjoin(roster_versions))
    .where(accountNamed())
)

# One row per (item, group); an item without groups has one row with group None.
_ITEMS = (
    sa.select(
        roster_items.c.jid,
        roster_items.c.name,
        roster_items.c.subscription,
        roster_items.c.ask,
        roster_items.c.approved,
        roster_items.c.version,
        roster_groups.c.name.label("group_name"),
    )
    .select_from(
        roster_items.outerjoin(
            roster_groups,
            sa.and_(roster_groups.c.account_id == roster_items.c.account_id, roster_groups.c.jid == roster_items.c.jid),
        )
    )
    .where(roster_items.c.account_id == sa.bindparam("account_id"))
)

# Pending requests (kind 0, in the order they came) then tombstones (kind 1).
_PENDING_AND_TOMBSTONES = sa.union_all(
    sa.select(
        sa.literal_column("0").label("kind"),
        roster_pending.c.jid,
        roster_pending.c.stanza,
        sa.cast(sa.null(), sa.Integer).label("version"),
        roster_pending.c.received,
    ).where(roster_pending.c.account_id == sa.bindparam("account_id")),
    sa.select(
        sa.literal_column("1"),
        roster_tombstones.c.jid,
        sa.cast(sa.null(), sa.Text),
        roster_tombstones.c.version,
        sa.cast(sa.null(), UTCDateTime),
    ).where(roster_tombstones.c.account_id == sa.bindparam("account_id")),
).order_by(sa.literal_column("kind"), sa.literal_column("received"), sa.literal_column("jid"))


def _items(conn: sa.Connection, accountId: int) -> tuple[dict[str, RosterItem], dict[str, int]]:
    # Rows unpacked as tuples: attribute access on a Row costs more than
    # the query itself for a 20-item roster.
    first: dict[str, tuple] = {}
    groups: dict[str, list[str]] = {}
    for jid, name, subscription, ask, approved, version, group in conn.execute(_ITEMS, {"account_id": accountId}):
        if jid not in first:
            first[jid] = (name, subscription, ask, approved, version)
        if group is not None:
            groups.setdefault(jid, []).append(group)
    items: dict[str, RosterItem] = {}
    versions: dict[str, int] = {}
    for jid, (name, subscription, ask, approved, version) in first.items():
        # Groups sorted: the same order on every backend and collation.
        itemGroups = tuple(sorted(groups[jid])) if jid in groups else ()
        items[jid] = RosterItem(jid, name, subscription, bool(ask), bool(approved), itemGroups)
        versions[jid] = version
    return items, versions


def get_roster_txn(conn: sa.Connection, host: str, username: str) -> list[RosterItem]:
    """An account's roster items, sorted by JID (empty for an unknown account)."""
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return []
    items, _ = _items(conn, accountId)
    return [items[jid] for jid in sorted(items)]


def load_roster_txn(conn: sa.Connection, host: str, username: str) -> RosterState | None:
    """Everything about an account's roster; None when the account does not exist."""
    account = conn.execute(_ACCOUNT_VERSION, {"acct_host": host, "acct_user": username}).one_or_none()
    if account is None:
        return None
    state = RosterState()
    state.items, state.itemVersions = _items(conn, account.id)
    for row in conn.execute(_PENDING_AND_TOMBSTONES, {"account_id": account.id}):
        if row.kind == 0:
            state.pending[row.jid] = row.stanza
        else:
            state.tombstones[row.jid] = row.version
    if account.epoch is None:
        state.epoch = secrets.token_hex(4)
    else:
        state.epoch, state.version, state.floor, state.stored = account.epoch, account.version, account.floor, True
    return state


# -- changes -------------------------------------------------------------------


def _setItem(conn: sa.Connection, accountId: int, item: RosterItem, version: int) -> None:
    if item.subscription not in SUBSCRIPTIONS:
        raise ValueError(f"subscription must be one of {SUBSCRIPTIONS}, not {item.subscription!r}")
    c = roster_items.c
    values = {
        "name": item.name,
        "subscription": item.subscription,
        "ask": item.ask,
        "approved": item.approved,
        "version": version,
    }
    updated = conn.execute(
        roster_items.update().where(c.account_id == accountId, c.jid == item.jid).values(**values)
    ).rowcount
    if not updated:
        conn.execute(roster_items.insert().values(account_id=accountId, jid=item.jid, **values))
    conn.execute(
        roster_groups.delete().where(
            roster_groups.c.account_id == accountId, roster_groups.c.jid == item.jid
        )
    )
    if item.groups:
        conn.execute(
            roster_groups.insert(),
            [{"account_id": accountId, "jid": item.jid, "name": g} for g in sorted(set(item.groups))],
        )
    conn.execute(
        roster_tombstones.delete().where(
            roster_tombstones.c.account_id == accountId, roster_tombstones.c.jid == item.jid
        )
    )


def _removeItem(conn: sa.Connection, accountId: int, jid: str, version: int) -> None:
    conn.execute(
        roster_items.delete().where(roster_items.c.account_id == accountId, roster_items.c.jid == jid)
    )
    t = roster_tombstones.c
    updated = conn.execute(
        roster_tombstones.update().where(t.account_id == accountId, t.jid == jid).values(version=version)
    ).rowcount
    if not updated:
        conn.execute(roster_tombstones.insert().values(account_id=accountId, jid=jid, version=version))


def _setVersion(conn: sa.Connection, accountId: int, epoch: str, version: int, floor: int) -> None:
    v = roster_versions.c
    updated = conn.execute(
        roster_versions.update()
        .where(v.account_id == accountId)
        .values(epoch=epoch, version=version, floor=floor)
    ).rowcount
    if not updated:
        conn.execute(
            roster_versions.insert().values(
                account_id=accountId, epoch=epoch, version=version, floor=floor
            )
        )
    # Tombstones at or below the floor can no longer serve anyone.
    conn.execute(
        roster_tombstones.delete().where(
            roster_tombstones.c.account_id == accountId, roster_tombstones.c.version <= floor
        )
    )


def _setPending(conn: sa.Connection, accountId: int, jid: str, stanza: str, received: datetime) -> None:
    p = roster_pending.c
    updated = conn.execute(
        roster_pending.update()
        .where(p.account_id == accountId, p.jid == jid)
        .values(stanza=stanza, received=received)
    ).rowcount
    if not updated:
        conn.execute(
            roster_pending.insert().values(
                account_id=accountId, jid=jid, stanza=stanza, received=received
            )
        )


def _removePending(conn: sa.Connection, accountId: int, jid: str) -> None:
    conn.execute(
        roster_pending.delete().where(roster_pending.c.account_id == accountId, roster_pending.c.jid == jid)
    )


def set_item_txn(conn: sa.Connection, host: str, username: str, item: RosterItem, version: int) -> None:
    """Add or replace an item (and its groups) changed at roster C{version}; raises L{NoSuchAccount}."""
    _setItem(conn, _requireAccount(conn, host, username), item, version)


def remove_item_txn(conn: sa.Connection, host: str, username: str, jid: str, version: int) -> None:
    """Remove an item, leaving a tombstone at roster C{version}; raises L{NoSuchAccount}."""
    _removeItem(conn, _requireAccount(conn, host, username), jid, version)


def set_pending_txn(
    conn: sa.Connection, host: str, username: str, jid: str, stanza: str, received: datetime
) -> None:
    """Record (or replace) an inbound subscription request from C{jid}; raises L{NoSuchAccount}."""
    _setPending(conn, _requireAccount(conn, host, username), jid, stanza, received)


def remove_pending_txn(conn: sa.Connection, host: str, username: str, jid: str) -> None:
    """Forget the inbound subscription request from C{jid}, if any; raises L{NoSuchAccount}."""
    _removePending(conn, _requireAccount(conn, host, username), jid)


def set_version_txn(
    conn: sa.Connection, host: str, username: str, epoch: str, version: int, floor: int
) -> None:
    """Store the roster version and drop tombstones at or below C{floor}; raises L{NoSuchAccount}."""
    _setVersion(conn, _requireAccount(conn, host, username), epoch, version, floor)


#: One change for L{apply_changes_txn}: ("item", RosterItem, version),
#: ("remove", jid, version), ("pending", jid, stanzaXML, received),
#: ("unpending", jid) or ("version", epoch, version, floor).
Change = tuple


def apply_changes_txn(conn: sa.Connection, host: str, username: str, changes: Sequence[Change]) -> bool:
    """
    Apply several changes to one account in one transaction.

    Returns False (and changes nothing) when the account no longer exists:
    a change racing an account deletion is not an error.
    """
    accountId = _accountId(conn, host, username)
    if accountId is None:
        return False
    for change in changes:
        kind = change[0]
        if kind == "item":
            _setItem(conn, accountId, change[1], change[2])
        elif kind == "remove":
            _removeItem(conn, accountId, change[1], change[2])
        elif kind == "pending":
            _setPending(conn, accountId, change[1], change[2], change[3])
        elif kind == "unpending":
            _removePending(conn, accountId, change[1])
        elif kind == "version":
            _setVersion(conn, accountId, change[1], change[2], change[3])
        else:
            raise ValueError(f"unknown roster change {kind!r}")
    return True


def itemsByVersion(state: RosterState, since: int) -> Iterable[tuple[int, str, RosterItem | None]]:
    """
    The changes after version C{since}, oldest first: C{(version, jid, item)}
    with C{item} None for a removal.
    """
    changes: list[tuple[int, str, RosterItem | None]] = []
    for jid, version in state.itemVersions.items():
        if version > since:
            changes.append((version, jid, state.items[jid]))
    for jid, version in state.tombstones.items():
        if version > since:
            changes.append((version, jid, None))
    changes.sort(key=lambda c: (c[0], c[1]))
    return changes
