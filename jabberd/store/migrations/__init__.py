"""Alembic migrations of the core's tables; run by L{jabberd.store.Store.upgrade}."""
