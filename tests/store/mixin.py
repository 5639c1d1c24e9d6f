"""
Run storage tests on real SQLite and on PostgreSQL when one is reachable.

Write the tests once in a mixin that calls C{self.makeStore()}, then run them
on both backends::

    class RosterTestsMixin:
        def test_push(self) -> Deferred[None]:
            store = self.makeStore()
            ...

    class SQLiteRosterTests(SQLiteStoreMixin, RosterTestsMixin, TestCase):
        pass

    class PostgreSQLRosterTests(PostgreSQLStoreMixin, RosterTestsMixin, TestCase):
        pass

Every database is fresh and empty: a new SQLite file in the test's temporary
directory, or a new PostgreSQL schema (dropped after the test) reached through
C{search_path}, so tests never see each other's rows.  PostgreSQL tests are
skipped, saying why, when the server cannot be reached; set
C{JABBERD_TEST_POSTGRESQL_URL} to use another loopback server.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import sqlalchemy as sa
from twisted.internet import reactor
from twisted.trial.unittest import SkipTest

from jabberd.store import Store, sqliteURL

POSTGRESQL_URL = os.environ.get(
    "JABBERD_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

_postgresqlProblem: str | None = None
_postgresqlChecked = False


def _adminEngine() -> sa.Engine:
    """An autocommit engine on the test server, for creating and dropping schemas."""
    return sa.create_engine(
        POSTGRESQL_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )


def postgresqlProblem() -> str | None:
    """Why PostgreSQL tests cannot run (None when they can); asked once per run."""
    global _postgresqlProblem, _postgresqlChecked
    if not _postgresqlChecked:
        _postgresqlChecked = True
        engine = _adminEngine()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as e:
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            shown = sa.make_url(POSTGRESQL_URL).render_as_string(hide_password=True)
            _postgresqlProblem = (
                f"PostgreSQL not reachable at {shown} ({reason}); "
                "set JABBERD_TEST_POSTGRESQL_URL to a loopback server to run these tests"
            )
        finally:
            engine.dispose()
    return _postgresqlProblem


class StoreTestMixin:
    """
    Gives a test C{makeStore()}; mix in a backend class below, not this one.

    Expects to be mixed into a L{twisted.trial.unittest.TestCase}.
    """

    addCleanup: Any
    mktemp: Any

    def newDatabaseURL(self) -> str:
        """The URL of a new, empty database that is removed after the test."""
        raise NotImplementedError

    def makeStore(self, url: str | None = None, upgrade: bool = True) -> Store:
        """
        A started L{Store} on C{url} (default: a new empty database), closed
        after the test; migrated to the newest schema unless C{upgrade} is False.
        """
        store = Store(url or self.newDatabaseURL(), reactor=reactor)
        self.addCleanup(store.close)
        if upgrade:
            store.upgrade()
        store.start()
        return store


class SQLiteStoreMixin(StoreTestMixin):
    """Stores on a real SQLite file in the test's temporary directory."""

    def newDatabaseURL(self) -> str:
        # The directory does not exist yet: the Store must create it.
        return sqliteURL(os.path.join(self.mktemp(), "jabberd.sqlite"))


class PostgreSQLStoreMixin(StoreTestMixin):
    """Stores on the loopback PostgreSQL server, each in its own new schema."""

    def newDatabaseURL(self) -> str:
        problem = postgresqlProblem()
        if problem is not None:
            raise SkipTest(problem)
        schema = "test_" + uuid.uuid4().hex
        engine = _adminEngine()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

        def dropSchema() -> None:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            finally:
                engine.dispose()

        # Cleanups run last-added first: the Store closes before this drop.
        self.addCleanup(dropSchema)
        url = sa.make_url(POSTGRESQL_URL).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        return url.render_as_string(hide_password=False)
