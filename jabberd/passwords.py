"""
Passwords become SCRAM credentials here, and only here.

The server never stores a password: each account keeps a salted StoredKey
and ServerKey per SCRAM hash, which is all SCRAM and PLAIN need.  The c2s
register module and `jabberdctl` both go through these functions.
"""

from __future__ import annotations

import dataclasses

from jabberd import scram
from jabberd.store.accounts import ScramCredential


def credentialsFor(password: str, iterations: int = 4096) -> list[ScramCredential]:
    """One store credential per SCRAM hash for C{password}; ValueError if unusable."""
    if not password:
        raise ValueError("the password is empty")
    return [ScramCredential(**dataclasses.asdict(c)) for c in scram.deriveCredentials(password, iterations)]
