"""Migrations: a database made by today's ``create_all`` (before migrations existed), with
rooms, seats, bans and calls in it, is upgraded and nothing is lost; the head's schema is
the store's; engines migrate on start and by ``utd-stream engine migrate``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Column, Float, Integer, MetaData, String, Table, Text, create_engine, insert, inspect,
)

from stream_core.models import UTDSeatMode, UTDStreamType
from stream_core.rooms import new_room
from stream_core.rooms.calls import open_call
from stream_engine.migrations import BASELINE, current_revision, head_revision, upgrade
from stream_engine.store import TABLES, Store, _call_values, _room_values

# Today's schema, frozen as create_all made it before migrations (a copy, on purpose).
_legacy = MetaData()
Table("rooms", _legacy,
      Column("app_id", String(128), primary_key=True),
      Column("name", String(128), primary_key=True),
      Column("livekit_name", String(300), nullable=False, unique=True),
      Column("kind", String(16), nullable=False),
      Column("snapshot", Text, nullable=False),
      Column("present", Text, nullable=False),
      Column("banned", Text, nullable=False),
      Column("row_version", Integer, nullable=False))
Table("calls", _legacy,
      Column("call_id", String(64), primary_key=True),
      Column("app_id", String(128), nullable=False, index=True),
      Column("livekit_name", String(300), nullable=False, unique=True),
      Column("callee", String(128), nullable=False, index=True),
      Column("status", String(16), nullable=False, index=True),
      Column("ring_deadline", Float),
      Column("data", Text, nullable=False),
      Column("row_version", Integer, nullable=False))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.engine)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'legacy.db'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    yield cluster.create_database()


def _legacy_database(url: str) -> dict[str, Any]:
    """A pre-migration database with an audio room (seats, a ban), a stage and two calls."""
    seats = new_room(UTDStreamType.AUDIO_ROOM, "lobby")
    seats.join("host", as_host=True, name="Host")
    seats.setup_seats("host", seat_count=4, seat_mode=UTDSeatMode.FREE)
    for who, index in (("ann", 1), ("bob", 2)):
        seats.join(who)
        seats.take_seat(who, index)
    seats.join("troll")
    seats.presence.ban("host", "troll")
    stage = new_room(UTDStreamType.LIVE_STREAM, "show")
    stage.join("star", as_host=True)
    stage.join("fan")
    stage.invite_to_stage("star", "fan")
    calls = [open_call(call_id=f"c{n}", caller="ann", callee="bob",
                       type=UTDStreamType.AUDIO_CALL, now=1000.0 + n, ring_timeout=30.0)
             for n in (1, 2)]
    engine = create_engine(url)
    _legacy.create_all(engine)
    with engine.begin() as conn:
        for room, name in ((seats, "lobby"), (stage, "show")):
            conn.execute(insert(_legacy.tables["rooms"]).values(
                app_id="app", name=name, livekit_name=f"app__{name}", row_version=3,
                **_room_values(room)))
        for call in calls:
            conn.execute(insert(_legacy.tables["calls"]).values(
                app_id="app", livekit_name=f"app__call-{call.call_id}", row_version=1,
                **_call_values(call)))
    engine.dispose()
    return {"lobby": seats.snapshot(), "show": stage.snapshot(), "calls": calls}


def test_a_legacy_database_is_upgraded_with_everything_intact(database_url: str) -> None:
    before = _legacy_database(database_url)
    engine = create_engine(database_url)
    assert current_revision(engine) is None
    engine.dispose()

    store = Store(database_url)  # the engine's store migrates when it opens
    try:
        assert (store.migrated_from, store.revision) == (BASELINE, head_revision())
        lobby = store.read_room("app", "lobby")
        assert lobby is not None and lobby.snapshot == before["lobby"]
        assert [s.occupant for s in lobby.snapshot.seats] == [None, "ann", "bob", None]
        assert lobby.banned == frozenset({"troll"})
        assert set(lobby.present) == {"host", "ann", "bob"}
        show = store.read_room("app", "show")
        assert show is not None and show.snapshot == before["show"]
        assert store.room_by_livekit_name("app__lobby") == ("app", "lobby")
        assert store.incoming_calls("app", "bob") == before["calls"]
        assert store.read_call("app", "c2") == before["calls"][1]
        assert store.next_ring_deadline() == before["calls"][0].ring_deadline
    finally:
        store.close()
    again = Store(database_url)  # a second start: already at head, nothing to do
    try:
        assert (again.migrated_from, again.revision) == (head_revision(), head_revision())
    finally:
        again.close()


def test_the_head_schema_is_the_stores(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert upgrade(engine) == (None, head_revision())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), TABLES)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert tables == {"rooms", "calls", "alembic_version"}


def test_utd_stream_engine_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _legacy_database(url)
    done = subprocess.run([sys.executable, "-m", "stream_engine", "migrate",
                           "--database-url", url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"database at revision {head_revision()}"  # stamped
    engine = create_engine(url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT banned FROM rooms WHERE name='lobby'").scalar()
    engine.dispose()
    assert json.loads(rows) == ["troll"]
