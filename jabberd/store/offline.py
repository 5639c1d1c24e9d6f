"""Tables and *_txn functions for the offline feature (see jabberd/store/schema.py for how)."""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401

from jabberd.store.schema import metadata  # noqa: F401
