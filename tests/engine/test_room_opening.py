"""A new room is created on the media server off the join's critical path.

The first mint of a room answers without waiting for LiveKit's CreateRoom; until that
creation is done, every token the engine mints for the room can create it the way the
engine would (its state as the room's metadata), so no joiner can win the race with a room
that lacks the engine's state. Once LiveKit has the room, tokens carry no setup again.
In process, on a real SQLite store, with a LiveKit whose CreateRoom waits on a gate.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from stream_core.engine.service import EngineService
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.names import livekit_room_name
from stream_core.ports import RoomSetup
from stream_core.wire import TokenRequestSchema, load
from stream_engine.bearers import JwtBearers
from stream_engine.config import EngineConfig
from stream_engine.store import Store
from tests.engine.test_api_races import APP, NullLiveKit

pytestmark = [pytest.mark.engine]

ROOM = "opening"
LK_ROOM = livekit_room_name(APP.app_id, ROOM)


class GatedLiveKit(NullLiveKit):
    """CreateRoom waits until ``gate`` is set; every token's setup is kept by identity."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.creating = asyncio.Event()
        self.created: list[str] = []
        self.setups: dict[str, RoomSetup | None] = {}

    async def mint_token(self, *, identity: str, room: str, name: str | None,
                         sources: frozenset[str], ttl: float, hidden: bool = False,
                         setup: RoomSetup | None = None) -> str:
        self.setups[identity] = setup
        return f"token-{identity}"

    async def create_room(self, name: str, **kwargs: Any) -> None:
        self.creating.set()
        await self.gate.wait()
        self.created.append(name)


@pytest.fixture
def livekit() -> GatedLiveKit:
    return GatedLiveKit()


@pytest.fixture
def service(tmp_path: Any, livekit: GatedLiveKit) -> Iterator[EngineService]:
    config = EngineConfig(state_dir=tmp_path, apps=[APP], signing_secret="s" * 32,
                          livekit_api_secret="l" * 32)
    store = Store(f"sqlite:///{tmp_path / 'engine.db'}")
    yield EngineService(config.service_settings(), store, livekit,
                        JwtBearers(config.signing_secret, ttl=config.bearer_ttl))
    store.close()


async def _mint(service: EngineService, identity: str, **extra: Any) -> int | None:
    body = load(TokenRequestSchema(), {"app_id": APP.app_id, "app_key": APP.app_key,
                                       "identity": identity, "room_name": ROOM,
                                       "stream_type": "live_stream", **extra})
    return (await asyncio.wait_for(service.mint_token(**body), 5)).state_version


async def test_the_first_mint_answers_while_the_media_server_is_still_creating_the_room(
        service: EngineService, livekit: GatedLiveKit) -> None:
    try:
        version = await _mint(service, "host", role="host")
        await asyncio.wait_for(livekit.creating.wait(), 5)
        assert livekit.created == [] and service.outbox.draining(LK_ROOM)
        host_setup = livekit.setups["host"]
        assert host_setup is not None
        assert json.loads(host_setup.metadata)["version"] == version
    finally:
        livekit.gate.set()
        await service.outbox.stop()


async def test_tokens_minted_while_the_room_is_being_created_can_create_it_with_its_state(
        service: EngineService, livekit: GatedLiveKit) -> None:
    """A viewer minted before LiveKit has the room (this process knows the room, so without
    the check it would take the audience fast path with a bare token)."""
    try:
        await _mint(service, "host", role="host")
        await asyncio.wait_for(livekit.creating.wait(), 5)
        await _mint(service, "early-viewer")
        early = livekit.setups["early-viewer"]
        assert early is not None and json.loads(early.metadata)["stage"]["host"] == "host"
    finally:
        livekit.gate.set()
    await asyncio.wait_for(service.outbox.settle(), 5)
    assert livekit.created == [LK_ROOM]
    await _mint(service, "late-viewer")
    assert livekit.setups["late-viewer"] is None  # LiveKit has the room: a plain token


async def test_a_failed_creation_stays_due_for_the_outbox(
        service: EngineService, livekit: GatedLiveKit) -> None:
    """What the background drain could not apply is retried like any failed effect."""
    async def down(name: str, **kwargs: Any) -> None:
        raise UTDStreamException("LiveKit is down (simulated)", status_code=503,
                                 code=ErrorCode.UNAVAILABLE)

    livekit.create_room = down  # type: ignore[method-assign]
    await _mint(service, "host", role="host")
    await asyncio.wait_for(service.outbox.settle(), 5)
    due = await asyncio.to_thread(service.store.rooms_with_due_effects, float("inf"), 10)
    assert LK_ROOM in due and livekit.created == []
