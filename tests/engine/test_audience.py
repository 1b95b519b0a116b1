"""A viewer's join and leave touch that viewer's own row: never the room's state, never a
push; the audience reaches everyone as a count, at a bounded rate (in process, over SQLite
and a LiveKit that records what it is told)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from stream_core.engine.settings import AppConfig, RateLimit
from stream_core.names import livekit_room_name
from stream_engine.config import EngineConfig
from stream_engine.http import SERVICE, create_app
from stream_engine.schema import presence, rooms
from stream_engine.store import Store
from tests.engine.test_api_races import NullLiveKit
from tests.engine.test_hardening import APP, KEY, Engine

pytestmark = [pytest.mark.engine]


class RecordingLiveKit(NullLiveKit):
    def __init__(self) -> None:
        self.pushes: list[str] = []

    async def push_state(self, room: str, state: str) -> None:
        self.pushes.append(state)


@pytest.fixture
async def world(tmp_path: Any) -> AsyncIterator[tuple[Engine, Store, RecordingLiveKit]]:
    control = RecordingLiveKit()
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig(APP, KEY)],
                          signing_secret="s" * 32, token_limit=RateLimit(0, 0),
                          mutate_limit=RateLimit(0, 0), read_limit=RateLimit(0, 0))
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store,
                                              control_factory=lambda: control)))
    await client.start_server()
    try:
        yield Engine(client), store, control
    finally:
        await client.close()
        store.close()


def _room_row(store: Store, name: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(select(rooms).where(rooms.c.name == name)).one()


def _audience_rows(store: Store, name: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(presence)
                                .where(presence.c.room == name)).scalar() or 0)


async def test_viewers_come_and_go_without_touching_the_room(
        world: tuple[Engine, Store, RecordingLiveKit]) -> None:
    engine, store, control = world
    host = await engine.join("host", "show", "live_stream", role="host")
    before = _room_row(store, "show")
    pushes = len(control.pushes)
    for i in range(50):
        await engine.join(f"viewer{i}", "show", "live_stream")
    after = _room_row(store, "show")
    assert (after.row_version, after.present, after.snapshot) == \
        (before.row_version, before.present, before.snapshot)
    assert _audience_rows(store, "show") == 50 and len(control.pushes) == pushes
    service = engine.client.server.app[SERVICE]
    lk = livekit_room_name(APP, "show")
    await service.participant_left(lk, "viewer7", sid="PA_x")
    assert _room_row(store, "show").row_version == before.row_version
    assert _audience_rows(store, "show") == 49
    # a viewer still reads the room: its own row proves it present
    stage = await engine.get("/rooms/show/stage", await engine.join("viewer8", "show",
                                                                      "live_stream"))
    assert stage.status == 200
    # the count reaches everyone at the next refresh, in one push
    await service.push_audience(APP, "show", lk)
    assert json.loads(control.pushes[-1])["audience"] == 50  # 49 viewers and the host
    assert len(control.pushes) == pushes + 1
    assert host


async def test_a_viewer_promoted_and_demoted_moves_between_audience_and_members(
        world: tuple[Engine, Store, RecordingLiveKit]) -> None:
    engine, store, _ = world
    star = await engine.join("star", "show", "live_stream", role="host")
    fan = await engine.join("fan", "show", "live_stream")
    assert _audience_rows(store, "show") == 1
    assert (await engine.post("/rooms/show/stage/invite", {"identity": "fan"}, star)).status \
        == 200
    assert _audience_rows(store, "show") == 0  # a member now: the room keeps it
    assert "fan" in json.loads(_room_row(store, "show").present)
    assert (await engine.post("/rooms/show/stage/leave", {}, fan)).status == 200
    assert _audience_rows(store, "show") == 1
    assert "fan" not in json.loads(_room_row(store, "show").present)
    banned = await engine.post("/rooms/show/ban", {"identity": "fan"}, star)
    assert banned.status == 200 and _audience_rows(store, "show") == 0
    again = await engine.post("/token", {"app_id": APP, "app_key": KEY, "identity": "fan",
                                         "room_name": "show", "stream_type": "live_stream"})
    assert again.status == 403
