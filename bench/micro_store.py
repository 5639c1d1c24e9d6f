"""
Micro-benchmark: the store work of one login, per call, on a real SQLite file.

    python bench/micro_store.py [--seconds 2] [--accounts 500] [--contacts 20]

Seeds a fresh SQLite file (in a temporary folder) with bench/seed_jabberd.py,
as bench/run.py does (accounts u0..uN, a ring of mutual contacts each),
then times each C{*_txn} function a login or logout runs, the way
L{Store.runInteraction} runs it: a pooled connection, one transaction
(SQLite: BEGIN IMMEDIATE) and the function.  The figure is microseconds per
call, the best of a few repeats (see bench/micro_parser.py), cycling over
the accounts so no single row stays hot.  Run it as the server would be
(`taskset -c 1 nice -n -10`), before and after a change to jabberd/store/.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Callable

import seed_jabberd
from jabberd.config import load
from jabberd.store import Store
from jabberd.store.accounts import get_credentials_txn
from jabberd.store.offline import get_offline_messages_txn
from jabberd.store.roster import load_roster_txn
from jabberd.store.userdata import get_last_activity_txn, set_last_activity_txn

HOST = seed_jabberd.HOST


def per_call(store: Store, fn: Callable[..., Any], args: Callable[[int], tuple], accounts: int, seconds: float, repeats: int = 3) -> float:
    """The best of C{repeats} times (µs per call) of C{fn} in its own transaction."""
    best = float("inf")
    users = itertools.cycle(range(accounts))
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / repeats:
            for _ in range(50):
                with store.engine.connect() as conn, conn.begin():
                    fn(conn, *args(next(users)))
            calls += 50
        best = min(best, elapsed / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per figure (default 2)")
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--contacts", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="micro_store-") as folder:
        config = os.path.join(folder, "jabberd.toml")
        with open(config, "w") as f:
            f.write(f'hosts = ["{HOST}"]\ndata_dir = "{folder}"\n')
        seed_jabberd.main(config, options.accounts, options.accounts, options.contacts, "bench")
        store = Store(load(config).databaseURL())
        try:
            now = datetime.now(timezone.utc)
            cases: list[tuple[str, Callable[..., Any], Callable[[int], tuple]]] = [
                ("get_credentials_txn", get_credentials_txn, lambda i: (HOST, f"u{i}")),
                ("load_roster_txn", load_roster_txn, lambda i: (HOST, f"u{i}")),
                ("get_offline_messages_txn", get_offline_messages_txn, lambda i: (HOST, f"u{i}", 0, 100)),
                ("set_last_activity_txn (1 logout)", set_last_activity_txn, lambda i: ([(HOST, f"u{i}", now, "")],)),
                ("set_last_activity_txn (50 logouts)", set_last_activity_txn,
                 lambda i: ([(HOST, f"u{(i + k) % options.accounts}", now, "") for k in range(50)],)),
                ("get_last_activity_txn", get_last_activity_txn, lambda i: (HOST, f"u{i}")),
                ("empty transaction", lambda conn: None, lambda i: ()),
            ]
            print(f"{options.accounts} accounts, {options.contacts} contacts each; µs per call, own transaction")
            for name, fn, args in cases:
                print(f"{per_call(store, fn, args, options.accounts, options.seconds):9.1f}  {name}")
        finally:
            store.engine.dispose()


if __name__ == "__main__":
    main()
