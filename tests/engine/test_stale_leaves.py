"""A leave is judged by the connection that left (issue 11, item 6).

A late, reordered or replayed ``participant_left`` frees nothing of a member who came back
since (minted again, seated again over REST) or whose newer connection already joined;
the current connection's leave still frees the seat, even in the same second as a mint.
Each case runs over the in-memory store and over SQLite, where the engine is restarted
before the leave arrives, so what judges it is what the store kept; one case goes through
the signed webhook endpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from livekit import api as lk_api
from sqlalchemy import select, update

from adapters.fakes.engine import FakeBearers
from adapters.fakes.store import MemoryStore
from stream_core import UTDStreamType
from stream_core import operations as ops
from stream_core.engine.service import Caller, EngineService
from stream_core.engine.settings import AppConfig, RateLimit, ServiceSettings
from stream_core.names import livekit_room_name
from stream_core.ports import WebhookEvent
from stream_engine.config import EngineConfig
from stream_engine.http import SERVICE, create_app
from stream_engine.schema import rooms, webhooks
from stream_engine.store import Store
from tests.conftest import ManualClock
from tests.engine.test_api_races import NullLiveKit
from tests.engine.test_hardening import APP, KEY, Engine

pytestmark = [pytest.mark.engine]

LK = livekit_room_name(APP, "r")
_OFF = RateLimit(0.0, 0)


class World:
    """The engine service over one store, on a clock the test moves. ``restart`` starts a
    new service on the same SQLite database (a no-op in memory)."""

    def __init__(self, kind: str, path: Path, clock: ManualClock) -> None:
        self.kind, self.path, self.clock = kind, path, clock
        self.bearers = FakeBearers()
        self.store: MemoryStore | Store = self._open()
        self.service = self._serve()

    def _open(self) -> MemoryStore | Store:
        if self.kind == "memory":
            return MemoryStore(self.clock)
        return Store(f"sqlite:///{self.path / 'db.sqlite'}")

    def _serve(self) -> EngineService:
        settings = ServiceSettings(apps=(AppConfig(APP, KEY),), token_limit=_OFF,
                                   mutate_limit=_OFF)
        return EngineService(settings, self.store, NullLiveKit(), self.bearers,
                             clock=self.clock)

    async def restart(self) -> None:
        if self.kind == "sqlite":
            await self.service.stop_webhooks()
            self.store.close()
            self.store = self._open()
            self.service = self._serve()

    def close(self) -> None:
        self.store.close()

    async def mint(self, identity: str, **extra: Any) -> None:
        await self.service.mint_token(app_id=APP, app_key=KEY, identity=identity,
                                      room_name="r", stream_type=UTDStreamType.AUDIO_ROOM,
                                      **extra)

    async def act(self, op: Any, identity: str, **args: Any) -> Any:
        return await self.service.room_op(op, Caller(APP, identity), "r", **args)

    async def hook(self, event: str, sid: str, created_at: float, *,
                   event_id: str | None = None) -> bool:
        """Deliver one of g's events and wait until it is applied; False: a replay."""
        fresh = await self.service.receive(WebhookEvent(
            event_id or uuid.uuid4().hex, event, LK, "g", sid, created_at=created_at))
        await self.service.settle_webhooks()
        return fresh

    async def seat_of_g(self) -> int | None:
        grid = await self.act(ops.GET_SEATS, "h")
        seat: int | None = grid.seat_of("g")
        return seat


@pytest.fixture(params=["memory", "sqlite"])
async def world(request: pytest.FixtureRequest, tmp_path: Path,
                clock: ManualClock) -> AsyncIterator[World]:
    made = World(request.param, tmp_path, clock)
    try:
        yield made
    finally:
        await made.service.stop_webhooks()
        made.close()


async def _seated_and_connected(world: World) -> None:
    """At 1000: h hosts two seats; g takes seat 0 and its connection PA_X joins."""
    assert world.clock() == 1000.0
    await world.mint("h", role="host", seat_count=2)
    await world.mint("g")
    await world.act(ops.TAKE_SEAT, "g", seat_index=0)
    await world.hook("participant_joined", "PA_X", 1000.0)
    assert await world.seat_of_g() == 0


@pytest.mark.parametrize("back", ["minted again while seated", "stood up, seated again"])
async def test_a_late_leave_made_before_the_member_came_back_frees_nothing(
        world: World, back: str) -> None:
    """PA_X left at 1007; before its leave arrives, g mints again at 1010 (and, having
    stood up at 1004, takes its seat again over REST, not yet connected)."""
    await _seated_and_connected(world)
    if back == "stood up, seated again":
        world.clock.now = 1004.0
        await world.act(ops.LEAVE_SEAT, "g")
    world.clock.now = 1010.0
    await world.mint("g")
    if back == "stood up, seated again":
        await world.act(ops.TAKE_SEAT, "g", seat_index=0)
    await world.restart()
    await world.hook("participant_left", "PA_X", 1007.0)  # late: made before the mint
    assert await world.seat_of_g() == 0


async def test_the_leave_of_an_older_connection_after_a_newer_joined_frees_nothing(
        world: World) -> None:
    """Reordered: PA_Y's join is applied before PA_X's leave (LiveKit could not be asked
    who is present). Only the sid tells: the leave's time is after everything."""
    await _seated_and_connected(world)
    world.clock.now = 1005.0
    await world.hook("participant_joined", "PA_Y", 1005.0)
    await world.restart()
    await world.hook("participant_left", "PA_X", 1006.0)
    assert await world.seat_of_g() == 0
    await world.hook("participant_left", "PA_Y", 1007.0)  # the current connection's own
    assert await world.seat_of_g() is None


async def _left_then_seated_again(world: World, event_id: str) -> None:
    await _seated_and_connected(world)
    world.clock.now = 1002.0
    assert await world.hook("participant_left", "PA_X", 1002.0, event_id=event_id)
    assert await world.seat_of_g() is None
    world.clock.now = 1010.0
    await world.mint("g")
    await world.act(ops.TAKE_SEAT, "g", seat_index=0)
    await world.restart()


async def test_a_replayed_leave_is_refused_by_its_id(world: World) -> None:
    await _left_then_seated_again(world, "EV_left")
    assert not await world.hook("participant_left", "PA_X", 1002.0, event_id="EV_left")
    assert await world.seat_of_g() == 0


async def test_an_old_leave_under_a_new_id_frees_nothing(world: World) -> None:
    """A copy the inbox cannot recognize (another id) is judged by its time."""
    await _left_then_seated_again(world, "EV_left")
    assert await world.hook("participant_left", "PA_X", 1002.0, event_id="EV_copy")
    assert await world.seat_of_g() == 0


@pytest.mark.parametrize("created_at", [1010.0, 1013.0, 0.0],
                         ids=["the same second as the mint", "after it", "no time sent"])
async def test_the_current_connections_leave_frees_the_seat(world: World,
                                                             created_at: float) -> None:
    """g mints again at 1010.6 while PA_X is connected; PA_X's own leave frees the seat.
    LiveKit's createdAt has whole seconds: 1010 may be 1010.9, so it is not judged older."""
    await _seated_and_connected(world)
    world.clock.now = 1010.6
    await world.mint("g")
    await world.restart()
    await world.hook("participant_left", "PA_X", created_at)
    assert await world.seat_of_g() is None


async def test_a_room_stored_before_connections_were_kept_restores(tmp_path: Path,
                                                                   clock: ManualClock) -> None:
    """A row written without admission times and connections loads, and its members'
    leaves free their seats as they always did (nothing known makes a leave stale)."""
    world = World("sqlite", tmp_path, clock)
    try:
        await _seated_and_connected(world)
        assert isinstance(world.store, Store)
        with world.store.engine.begin() as conn:
            row = conn.execute(select(rooms.c.snapshot).where(rooms.c.name == "r")).one()
            document = json.loads(row.snapshot)
            assert document.pop("_seen")["g"] == [1000.0, "PA_X"]
            conn.execute(update(rooms).where(rooms.c.name == "r").values(
                snapshot=json.dumps(document)))
        await world.restart()
        assert await world.seat_of_g() == 0
        await world.hook("participant_left", "PA_X", 1001.0)
        assert await world.seat_of_g() is None
    finally:
        await world.service.stop_webhooks()
        world.close()


async def test_the_inbox_keeps_each_events_time(world: World) -> None:
    """Recorded with the media server's time, applied later with it; an event recorded
    before the time was kept loads with none (0)."""
    event = WebhookEvent("EV_1", "participant_left", LK, "g", "PA_X", created_at=1007.0)
    assert world.store.record_webhook(event, 1008.0)
    [pending] = world.store.pending_webhooks(10, LK)
    assert pending.created_at == 1007.0
    if isinstance(world.store, Store):
        with world.store.engine.begin() as conn:
            conn.execute(update(webhooks).where(webhooks.c.event_id == "EV_1").values(
                data=json.dumps({"event": "participant_left", "identity": "g",
                                 "sid": "PA_X", "replaced": False, "hidden": False,
                                 "can_publish": False, "sources": []})))
        [legacy] = world.store.pending_webhooks(10, LK)
        assert legacy.created_at == 0.0


async def test_events_the_engine_does_not_act_on_are_taken_without_being_recorded(
        world: World) -> None:
    """A join's room_started (and track events) would cost the store writes while the
    joiner is still connecting; only what the engine acts on is kept in the inbox."""
    for kind in ("room_started", "track_published", "track_unpublished"):
        assert await world.service.receive(WebhookEvent(uuid.uuid4().hex, kind, LK, "g", "PA_X"))
    assert world.store.pending_webhooks(10, LK) == []
    assert await world.service.receive(WebhookEvent("EV_l", "participant_left", LK, "g", "PA_X"))
    assert [e.event for e in world.store.pending_webhooks(10, LK)] == ["participant_left"]
    await world.service.settle_webhooks()


def _signed(body: str, key: str, secret: str) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = lk_api.AccessToken(key, secret).with_sha256(digest).to_jwt()
    return {"Authorization": token, "Content-Type": "application/webhook+json"}


async def test_the_webhook_endpoint_passes_livekits_created_at(tmp_path: Path) -> None:
    """Through the signed endpoint (LiveKit's JSON, ``createdAt`` in seconds): a leave
    made half a minute before g took its seat frees nothing; one made now frees."""
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig(APP, KEY)],
                          signing_secret="s" * 32, livekit_api_secret="l" * 32,
                          token_limit=_OFF, mutate_limit=_OFF, read_limit=_OFF)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store,
                                              control_factory=NullLiveKit)))
    await client.start_server()
    engine = Engine(client)

    async def leave(created_at: int) -> None:
        body = json.dumps({"event": "participant_left", "id": uuid.uuid4().hex,
                           "createdAt": created_at, "room": {"name": LK},
                           "participant": {"identity": "g", "sid": "PA_X"}})
        answer = await client.post("/api/v1/livekit/webhook", data=body, headers=_signed(
            body, config.livekit_api_key, config.livekit_api_secret))
        assert answer.status == 200, await answer.text()
        await client.server.app[SERVICE].settle_webhooks()

    async def seat_of_g() -> int | None:
        grid = await (await engine.get("/rooms/r/seats", host)).json()
        found = [s["index"] for s in grid["seats"] if s["occupant"] == "g"]
        return found[0] if found else None

    try:
        host = await engine.join("h", role="host", seat_count=2)
        g = await engine.join("g")
        assert (await engine.post("/rooms/r/seats/take", {"seat_index": 0}, g)).status == 200
        await leave(int(time.time()) - 30)
        assert await seat_of_g() == 0
        await leave(int(time.time()))
        assert await seat_of_g() is None
    finally:
        await client.close()
        store.close()


async def test_events_of_rooms_not_in_the_store_change_nothing(world: World) -> None:
    """A webhook finds its room from the media room's name, without a store read: one of
    another system's rooms, a room of ours that does not exist (deleted, or never made),
    and a call's room all pass through quietly, leaving the store as it was."""
    missing = livekit_room_name(APP, "never-made")
    for room in ("someone-elses-room", missing, f"{APP}~call~c0ffee"):
        await world.service.participant_joined(room, "g", can_publish=False,
                                               sources=frozenset(), hidden=True, sid="PA_X")
        await world.service.participant_left(room, "g", sid="PA_X")
        await world.service.room_finished(room)
    assert world.store.read_room(APP, "never-made") is None
    assert world.store.pending_effects(missing, 1e12, 10) == []
