"""
Alembic's environment, configured in code by L{jabberd.store.Store.upgrade}.

There is no alembic.ini: the Store hands over an open connection (already in
a transaction, so the whole upgrade commits or rolls back as one) through
C{config.attributes["connection"]}.
"""

from alembic import context

from jabberd.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "jabberd migrations run through jabberd.store.Store.upgrade() "
        "(or `jabberdctl db upgrade`), not the alembic command line"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
