"""Alembic's environment for the engine: always run on the connection the engine hands it
(``config.attributes["connection"]``), inside the engine's transaction."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the engine's migrations through stream_engine.migrations.upgrade")
context.configure(connection=connection, target_metadata=None,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
