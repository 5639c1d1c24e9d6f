"""
Create the bench accounts (and rosters) in a jabberd store, in one transaction.

    python bench/seed_jabberd.py CONFIG ACCOUNTS ROSTER_USERS CONTACTS PASSWORD

`jabberdctl adduser` derives a fresh salted SCRAM credential per account
(PBKDF2, thousands of iterations, per hash): fine for people, minutes for
10,000 bench accounts.  Here the credential is derived once with
`jabberd.passwords.credentialsFor` and the same one (same salt) is stored for
every account with `create_account_txn`.  Only a benchmark may do this: it
makes every account's stored keys equal, which a real server must never have.

Rosters: u0..u{ROSTER_USERS-1} get CONTACTS mutual ('both') contacts on a
ring (i-10..i+10 without i for 20), written with `jabberd.store.roster`.
"""

from __future__ import annotations

import sys

from jabberd.config import load
from jabberd.passwords import credentialsFor
from jabberd.store import Store
from jabberd.store.accounts import create_account_txn
from jabberd.store.roster import RosterItem, set_item_txn, set_version_txn

HOST = "localhost"


def main(config_path: str, accounts: int, roster_users: int, contacts: int, password: str) -> None:
    config = load(config_path)
    store = Store(config.databaseURL())
    try:
        store.upgrade()
        credential = credentialsFor(password, config.auth.scram_iterations)
        half = contacts // 2
        with store.engine.begin() as conn:
            for i in range(accounts):
                create_account_txn(conn, HOST, f"u{i}", credential)
            for i in range(roster_users):
                ring = [(i + d) % roster_users for d in range(-half, half + 1) if d != 0]
                for version, j in enumerate(ring, 1):
                    set_item_txn(conn, HOST, f"u{i}", RosterItem(f"u{j}@{HOST}", subscription="both"), version)
                set_version_txn(conn, HOST, f"u{i}", "bench", len(ring), 0)
    finally:
        store.engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
