"""The engine's tables, as the store's queries use them (the migrations' head makes exactly
these; a test compares them).

* ``rooms``: a room stored whole (snapshot, presence, bans) with a row version, and when
  it last changed (what a reconcile pass looks at);
* ``calls``: a call stored whole, with the columns its queries filter on;
* ``presence``: the audience, one row per present participant the room's state does not
  name (see :mod:`stream_engine.presence`);
* ``outbox``: media effects not yet confirmed, per media room in ``seq`` (commit) order;
* ``webhooks``: media events recorded once by id, applied after in arrival order.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

__all__ = ["TABLES", "rooms", "calls", "presence", "outbox", "webhooks"]

TABLES = MetaData()

rooms = Table(
    "rooms", TABLES,
    Column("app_id", String(128), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("livekit_name", String(300), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("snapshot", Text, nullable=False),
    Column("present", Text, nullable=False),
    Column("banned", Text, nullable=False),
    Column("row_version", Integer, nullable=False),
    Column("updated_at", Float, nullable=True, index=True),
)

calls = Table(
    "calls", TABLES,
    Column("call_id", String(64), primary_key=True),
    Column("app_id", String(128), nullable=False, index=True),
    Column("livekit_name", String(300), nullable=False, unique=True),
    Column("callee", String(128), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("ring_deadline", Float),
    Column("data", Text, nullable=False),
    Column("row_version", Integer, nullable=False),
)

presence = Table(
    "presence", TABLES,
    Column("app_id", String(128), primary_key=True),
    Column("room", String(128), primary_key=True),
    Column("identity", String(600), primary_key=True),
    Column("name", Text, nullable=True),
)

outbox = Table(
    "outbox", TABLES,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("room", String(300), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("identity", String(600), nullable=False),
    Column("data", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_try_at", Float, nullable=False),
)

webhooks = Table(
    "webhooks", TABLES,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("room", String(300), nullable=False, index=True),
    Column("data", Text, nullable=False),
    Column("received_at", Float, nullable=False, index=True),
    Column("applied", Integer, nullable=False, index=True),
)
