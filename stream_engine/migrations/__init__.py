"""The engine's schema, as Alembic migrations: the engine upgrades its database on start
(and ``utd-stream engine migrate`` does it alone), on SQLite and PostgreSQL alike.

A database made before migrations existed (tables created by ``create_all``, no
``alembic_version``) has exactly the schema of the first revision: it is stamped with it,
then upgraded like any other. Upgrades of one database serialize: the whole upgrade runs in
one transaction that holds SQLite's write lock (``BEGIN IMMEDIATE``, see the store) or a
PostgreSQL advisory lock, so engines starting together on one database migrate it once.

Adding a migration: a module in ``versions/`` with the next ``revision`` and
``down_revision`` set to the previous head, spelling its tables out (never importing the
store's: a migration is frozen history); ``tests/ops/test_migrations.py`` checks that the
head matches the store's tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

__all__ = ["upgrade", "current_revision", "head_revision", "BASELINE"]

#: The revision whose schema ``create_all`` made before migrations existed.
BASELINE = "0001"
_HERE = Path(__file__).parent
_LOCK_ID = 0x75746473  # "utds": the PostgreSQL advisory lock every migrating engine takes


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the head revision; (revision before, revision after)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        before = MigrationContext.configure(conn).get_current_revision()
        tables = set(inspect(conn).get_table_names())
        config = _config(conn)
        if before is None and {"rooms", "calls"} <= tables:
            command.stamp(config, BASELINE)  # made by create_all: the baseline's schema
            before = BASELINE
        command.upgrade(config, "head")
    return before, head_revision()
