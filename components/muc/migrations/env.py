"""
Alembic's environment for the MUC schema, configured in code by
L{components.muc.store.upgrade_txn}: the caller hands over an open connection
already in a transaction.  The version table is the MUC's own
(C{muc_alembic_version}), so these migrations never touch the core's.
"""

from alembic import context

from components.muc.store import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("MUC migrations run through components.muc.store.upgrade_txn, not the alembic command line")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
