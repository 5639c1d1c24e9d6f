"""
Micro-benchmark: the privacy check (XEP-0016 / XEP-0191) per stanza.

    python bench/micro_privacy.py [--seconds 2] [--items 100]

Runs the real filters of L{jabberd.modules.privacyrules} (what the Router
calls on both edges for every stanza) against an account whose default
list has C{--items} items, in memory as after login, and compares the
compiled list with a plain walk over the items (the spec's definition,
what an uncompiled implementation does).  No store, no sockets: the
router, bus and session registry are the real ones, the roster is a dict.

Prints stanzas per second and microseconds per check, best of three.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace
from typing import Any, Callable

from jabberd import jid as J
from jabberd.bus import EventBus
from jabberd.modules.privacyrules import PrivacyRules
from jabberd.privacy import K_MESSAGE, MESSAGE, PRESENCE_OUT, CompiledList, PrivacyItem
from jabberd.router import Router
from jabberd.sessions import SessionManager
from jabberd.store.privacy import PrivacyData
from jabberd.store.roster import RosterItem
from jabberd.xmlstream import StreamParser

HOST = "localhost"
USER = f"alice@{HOST}"
HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"


def best_rate(run: Callable[[], int], seconds: float, repeats: int = 3) -> float:
    """The best of C{repeats} rates (items/s), each run for about C{seconds}/C{repeats}."""
    best = 0.0
    for _ in range(repeats):
        items, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / repeats:
            items += run()
        best = max(best, items / elapsed)
    return best


def stanza(xml: str) -> Any:
    found: list = []
    StreamParser(lambda a: None, found.append, lambda: None).feed(HEADER + xml.encode())
    return found[0]


class _Roster:
    """The roster module as the runtime sees it: rosters in memory."""

    def __init__(self, items: dict[str, RosterItem]) -> None:
        self.items = items

    def cachedRoster(self, bare: str) -> dict[str, RosterItem] | None:
        return self.items if bare == USER else None


def makeRuntime(items: tuple[PrivacyItem, ...], roster: dict[str, RosterItem]) -> PrivacyRules:
    bus = EventBus()
    sessions = SessionManager(bus)
    server = SimpleNamespace(
        bus=bus,
        sessions=sessions,
        hosts={HOST},
        router=Router({HOST}, bus, sessions),
        modules=SimpleNamespace(modules={"roster": _Roster(roster)}),
        config=SimpleNamespace(limits=SimpleNamespace(max_privacy_lists=50, max_privacy_items=10**6)),
    )
    rules = PrivacyRules(server)
    rules.preload(USER, PrivacyData({"default": items}, "default"))
    return rules


def walk(items: tuple[PrivacyItem, ...], kind: int, jid: J.JID, roster: dict) -> PrivacyItem | None:
    """The uncompiled check: XEP-0016 §2.2 read literally, item by item."""
    for item in items:
        if not item.appliesTo(kind):
            continue
        if item.type is None:
            return item
        if item.type == "jid":
            v = J.parse(item.value)
            if v.host == jid.host and v.user in (None, jid.user) and v.resource in (None, jid.resource):
                return item
        else:
            r = roster.get(jid.userhost())
            if item.type == "subscription" and (r.subscription if r else "none") == item.value:
                return item
            if item.type == "group" and r is not None and item.value in r.groups:
                return item
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per case")
    parser.add_argument("--items", type=int, default=100, help="items in the default list")
    args = parser.parse_args(argv)
    n = args.items

    # A blocklist-like default list: n blocked JIDs on n different servers.
    jidItems = tuple(PrivacyItem(i, False, "jid", f"spammer{i}@spam{i}.example") for i in range(n))
    # A mixed list: JIDs, groups and subscriptions, kind-limited items, a fall-through.
    roster = {f"friend{i}@example.org": RosterItem(f"friend{i}@example.org", None, "both", groups=(f"G{i % 10}",)) for i in range(200)}
    mixedItems = tuple(
        PrivacyItem(i, i % 3 != 0, ("jid", "group", "subscription")[i % 3],
                    (f"user{i}@example.net", f"G{i % 20 + 10}", ("to", "from")[i % 2])[i % 3],
                    (0, MESSAGE, PRESENCE_OUT)[i % 3])
        for i in range(n - 1)
    ) + (PrivacyItem(n, True),)

    blocklist = makeRuntime(jidItems, {})
    mixed = makeRuntime(mixedItems, roster)
    nobody = makeRuntime((), {})
    nobody._online.clear()  # an account with no lists at all: nothing in memory
    nobody._withDefault.clear()

    toUser = J.parse(f"{USER}/phone")
    stranger = J.parse("someone@elsewhere.example/pc")
    friend = J.parse("friend7@example.org/pc")
    lastBlocked = J.parse(f"spammer{n - 1}@spam{n - 1}.example/bot")
    message = stanza(f"<message from='someone@elsewhere.example/pc' to='{USER}/phone' type='chat'><body>hi</body></message>")
    presence = stanza(f"<presence from='{USER}/phone' to='friend7@example.org'/>")
    compiledBlocklist = CompiledList("default", jidItems)
    BATCH = 1000

    def loop(fn: Callable[[], Any]) -> Callable[[], int]:
        def run() -> int:
            for _ in range(BATCH):
                fn()
            return BATCH
        return run

    assert nobody.inbound(message, stranger, toUser) is False
    assert blocklist.inbound(message, stranger, toUser) is False
    assert mixed.inbound(message, friend, toUser) is False
    assert not compiledBlocklist.allows(K_MESSAGE, lastBlocked)
    assert walk(jidItems, K_MESSAGE, lastBlocked, {}) is jidItems[-1]

    cases = [
        ("inbound filter, account without lists", loop(lambda: nobody.inbound(message, stranger, toUser))),
        (f"inbound filter, {n}-JID blocklist, sender not blocked", loop(lambda: blocklist.inbound(message, stranger, toUser))),
        (f"inbound filter, {n}-item mixed list (roster lookups)", loop(lambda: mixed.inbound(message, friend, toUser))),
        (f"outbound presence, {n}-item mixed list", loop(lambda: mixed.outbound(presence, toUser, friend))),
        (f"decision only, {n}-JID list, last item matches", loop(lambda: compiledBlocklist.allows(K_MESSAGE, lastBlocked))),
        (f"uncompiled walk, {n}-JID list, last item matches", loop(lambda: walk(jidItems, K_MESSAGE, lastBlocked, {}))),
    ]
    rows = []
    for name, run in cases:
        rate = best_rate(run, args.seconds)
        rows.append((name, rate, 1e6 / rate))
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'stanzas/s':>12}  {'µs/check':>9}")
    print(f"{'-' * width}  {'-' * 12}  {'-' * 9}")
    for name, rate, micro in rows:
        print(f"{name:<{width}}  {rate:>12,.0f}  {micro:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
