"""
The store: SQLAlchemy Core tables, Alembic migrations, and L{Store}, which runs
synchronous C{*_txn(conn, ...)} functions in a thread pool and returns Deferreds.

See L{jabberd.store.database} for why it is built this way and
L{jabberd.store.schema} for how a feature adds its tables.
"""

from jabberd.store.database import Store, StoreUnavailable, sqliteURL
from jabberd.store.schema import metadata

__all__ = ["Store", "StoreUnavailable", "metadata", "sqliteURL"]
