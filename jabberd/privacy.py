"""
The privacy rule engine: XEP-0016 lists compiled for constant-time checks,
and the XEP-0191 blocklist as a view of one list.

A list is a tuple of L{PrivacyItem}s in ascending 'order'.  L{CompiledList}
turns it, once per change, into one index per I{kind} of check, so deciding
a stanza costs a handful of dictionary lookups whatever the length of the
list (never a walk over the items, never the database):

- the JID items of a kind by domain, then by (localpart, resourcepart), so
  the four forms of XEP-0016 §2.1 (user@domain/resource, user@domain,
  domain/resource, domain) are four lookups in one small dict, and a
  sender from a domain the list never names costs one lookup;
- group and subscription items by value (read only when the list has some,
  with the contact's roster item);
- the first fall-through item.

Each index entry is the position of the first item with that key, times two,
plus one for "deny"; the smallest entry among the candidates is the first
matching item (XEP-0016 business rules 5 and 6), no entry means "allow"
(rule 7).

The kinds (L{inboundKind}, L{outboundKind}): an item with child elements
applies only to the stanzas they name (C{<message/>}, C{<iq/>},
C{<presence-in/>}: received; C{<presence-out/>}: sent presence
notifications); an item without children applies to every stanza both ways,
subscription stanzas and probes included (§2.13).  So stanzas that are
neither a received message, iq or presence notification nor a sent
presence notification are decided by the children-less items alone
(L{K_OTHER}).

The blocklist of XEP-0191 is the default list seen through the simpler
protocol: its blocked JIDs are the list's "jid, deny, no children" items
(L{PrivacyItem.blocks}); L{withBlocked} and L{withoutBlocked} are the block
and unblock commands as edits of that list.

Nothing here does I/O or knows the server: the runtime that loads, caches
and applies lists is L{jabberd.modules.privacyrules}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from jabberd import jid as J

__all__ = [
    "PrivacyItem",
    "CompiledList",
    "MESSAGE",
    "IQ",
    "PRESENCE_IN",
    "PRESENCE_OUT",
    "ALL",
    "K_MESSAGE",
    "K_IQ",
    "K_PRESENCE_IN",
    "K_PRESENCE_OUT",
    "K_OTHER",
    "KIND_ELEMENTS",
    "ITEM_TYPES",
    "SUBSCRIPTIONS",
    "MAX_ORDER",
    "inboundKind",
    "outboundKind",
    "isNotification",
    "blockedJIDs",
    "withBlocked",
    "withoutBlocked",
]

# Stanza kinds an item names with its children (a bit mask; 0 = no children = all).
MESSAGE = 1
IQ = 2
PRESENCE_IN = 4
PRESENCE_OUT = 8
ALL = 0

#: The child element of an item for each bit, in the order XEP-0016's schema lists them.
KIND_ELEMENTS = (("iq", IQ), ("message", MESSAGE), ("presence-in", PRESENCE_IN), ("presence-out", PRESENCE_OUT))

# What a check is about.
K_MESSAGE = 0  # a message received
K_IQ = 1  # an iq received
K_PRESENCE_IN = 2  # a presence notification received
K_PRESENCE_OUT = 3  # a presence notification sent
K_OTHER = 4  # anything else either way: only children-less items decide
_KIND_BITS = (MESSAGE, IQ, PRESENCE_IN, PRESENCE_OUT, None)

ITEM_TYPES = ("jid", "group", "subscription")
SUBSCRIPTIONS = ("both", "to", "from", "none")
#: 'order' is an xs:unsignedInt.
MAX_ORDER = 2**32 - 1

_NONE = 1 << 62  # "no item matched": larger than any position code


def isNotification(stanza: Any) -> bool:
    """Whether C{stanza} is a presence notification: presence without a type or of type unavailable."""
    if stanza.name != "presence":
        return False
    t = stanza.getAttribute("type")
    return t is None or t == "unavailable"


def inboundKind(stanza: Any) -> int:
    """The kind of check for a stanza a user receives."""
    name = stanza.name
    if name == "message":
        return K_MESSAGE
    if name == "iq":
        return K_IQ
    if name == "presence":
        t = stanza.getAttribute("type")
        if t is None or t == "unavailable":
            return K_PRESENCE_IN
    return K_OTHER


def outboundKind(stanza: Any) -> int:
    """The kind of check for a stanza a user sends."""
    if stanza.name == "presence":
        t = stanza.getAttribute("type")
        if t is None or t == "unavailable":
            return K_PRESENCE_OUT
    return K_OTHER


@dataclass(frozen=True, slots=True)
class PrivacyItem:
    """
    One rule of a list: C{type} None is the fall-through item; C{value} a
    prepared JID string, a roster group or a subscription; C{kinds} the
    bit mask of its children (L{ALL} when it has none).
    """

    order: int
    allow: bool
    type: str | None = None
    value: str | None = None
    kinds: int = ALL

    @property
    def blocks(self) -> bool:
        """Whether this is a blocklist entry (XEP-0191 §5): a JID denied everything."""
        return self.type == "jid" and not self.allow and self.kinds == ALL

    def appliesTo(self, kind: int) -> bool:
        """Whether the item takes part in checks of C{kind}."""
        if self.kinds == ALL:
            return True
        bit = _KIND_BITS[kind]
        return bit is not None and bool(self.kinds & bit)


class _Index:
    """The items of one list that apply to one kind, by what they match."""

    __slots__ = ("hosts", "groups", "subscriptions", "fallThrough", "roster")

    def __init__(self) -> None:
        self.hosts: dict[str, dict[tuple[str | None, str | None], int]] = {}
        self.groups: dict[str, int] = {}
        self.subscriptions: dict[str, int] = {}
        self.fallThrough = _NONE
        self.roster = False  # whether group or subscription items need the roster


def _jidKey(value: str) -> tuple[str, str | None, str | None]:
    j = J.parse(value)
    return j.host, j.user, j.resource


class CompiledList:
    """
    A privacy list ready for checks; build one per change of the list.

    C{roster} arguments are the account's roster items by JID (objects with
    C{subscription} and C{groups}, as L{jabberd.store.roster.RosterItem}),
    or None when only JID and fall-through items can decide.
    """

    __slots__ = ("name", "items", "_kinds")

    def __init__(self, name: str, items: Iterable[PrivacyItem]) -> None:
        self.name = name
        self.items: tuple[PrivacyItem, ...] = tuple(sorted(items, key=lambda i: i.order))
        kinds: list[_Index | None] = []
        for kind in range(5):
            index: _Index | None = None
            for position, item in enumerate(self.items):
                if not item.appliesTo(kind):
                    continue
                if index is None:
                    index = _Index()
                code = position * 2 + (0 if item.allow else 1)
                if item.type is None:
                    index.fallThrough = min(index.fallThrough, code)
                    # Nothing after a fall-through item can ever match.
                    break
                if item.type == "jid":
                    host, user, resource = _jidKey(item.value or "")
                    byHost = index.hosts.setdefault(host, {})
                    byHost.setdefault((user, resource), code)
                elif item.type == "group":
                    index.groups.setdefault(item.value or "", code)
                    index.roster = True
                elif item.type == "subscription":
                    index.subscriptions.setdefault(item.value or "", code)
                    index.roster = True
            kinds.append(index)
        self._kinds = tuple(kinds)

    def __repr__(self) -> str:
        return f"<CompiledList {self.name!r} {len(self.items)} items>"

    def needsRoster(self, kind: int) -> bool:
        """Whether deciding C{kind} reads the roster (the list has group or subscription items for it)."""
        index = self._kinds[kind]
        return index is not None and index.roster

    def _code(self, kind: int, jid: J.JID, roster: Mapping[str, Any] | None) -> int:
        index = self._kinds[kind]
        if index is None:
            return _NONE
        best = index.fallThrough
        byHost = index.hosts.get(jid.host)
        if byHost is not None:
            user, resource = jid.user, jid.resource
            code = byHost.get((user, resource))
            if code is not None and code < best:
                best = code
            if resource is not None:
                if user is not None:
                    code = byHost.get((user, None))
                    if code is not None and code < best:
                        best = code
                    code = byHost.get((None, resource))
                    if code is not None and code < best:
                        best = code
                code = byHost.get((None, None))
                if code is not None and code < best:
                    best = code
            elif user is not None:
                code = byHost.get((None, None))
                if code is not None and code < best:
                    best = code
        if index.roster:
            item = roster.get(jid.userhost()) if roster else None
            if item is None and roster and jid.resource is not None:
                item = roster.get(jid.full())
            code = index.subscriptions.get(item.subscription if item is not None else "none")
            if code is not None and code < best:
                best = code
            if item is not None and index.groups:
                groups = index.groups
                for group in item.groups:
                    code = groups.get(group)
                    if code is not None and code < best:
                        best = code
        return best

    def match(self, kind: int, jid: J.JID, roster: Mapping[str, Any] | None = None) -> PrivacyItem | None:
        """The first item that decides a check of C{kind} about C{jid}, or None (allowed)."""
        code = self._code(kind, jid, roster)
        return None if code == _NONE else self.items[code >> 1]

    def allows(self, kind: int, jid: J.JID, roster: Mapping[str, Any] | None = None) -> bool:
        """Whether a stanza of C{kind} to or from C{jid} may pass."""
        code = self._code(kind, jid, roster)
        return code == _NONE or not code & 1

    def blockedJIDs(self) -> list[str]:
        """The blocklist this list shows through XEP-0191 (see L{blockedJIDs})."""
        return blockedJIDs(self.items)


# -- the blocklist view (XEP-0191 §5) -----------------------------------------------


def blockedJIDs(items: Iterable[PrivacyItem]) -> list[str]:
    """The JIDs a list blocks in the XEP-0191 sense, in list order, each once."""
    seen: dict[str, None] = {}
    for item in sorted(items, key=lambda i: i.order):
        if item.blocks and item.value is not None:
            seen.setdefault(item.value, None)
    return list(seen)


def withBlocked(items: Iterable[PrivacyItem], jids: Iterable[str]) -> tuple[PrivacyItem, ...]:
    """
    The list after blocking C{jids} (prepared JID strings): one blocking
    item for each JID not blocked yet, placed before every other item
    (XEP-0191 §5: blocked items come first), the rest unchanged.  Orders
    are kept when there is room below the first item, else renumbered
    from 0 in the same sequence.
    """
    old = sorted(items, key=lambda i: i.order)
    blocked = set(blockedJIDs(old))
    new: list[str] = []
    for jid in jids:
        if jid not in blocked:
            blocked.add(jid)
            new.append(jid)
    if not new:
        return tuple(old)
    first = old[0].order if old else len(new) + 1
    if first >= len(new):
        added = [PrivacyItem(first - len(new) + i, False, "jid", jid) for i, jid in enumerate(new)]
        return tuple(added + old)
    added = [PrivacyItem(i, False, "jid", jid) for i, jid in enumerate(new)]
    rest = [PrivacyItem(len(new) + i, item.allow, item.type, item.value, item.kinds) for i, item in enumerate(old)]
    return tuple(added + rest)


def withoutBlocked(items: Iterable[PrivacyItem], jids: Iterable[str] | None) -> tuple[PrivacyItem, ...]:
    """The list after unblocking C{jids} (None: every blocked JID); other items stay as they are."""
    old = sorted(items, key=lambda i: i.order)
    if jids is None:
        return tuple(i for i in old if not i.blocks)
    gone = set(jids)
    return tuple(i for i in old if not (i.blocks and i.value in gone))
