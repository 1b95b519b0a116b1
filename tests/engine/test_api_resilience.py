"""The engine under trouble: a replaced session's late leave, a database that goes away."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import OperationalError

from stream_core.names import livekit_room_name
from stream_core import UTDStreamType
from stream_core import operations as ops
from stream_core.engine.service import Caller, EngineService
from stream_core.ports import MediaParticipant
from stream_engine.bearers import JwtBearers
from stream_engine.config import AppConfig, EngineConfig
from stream_engine.http import create_app
from stream_engine.store import Store
from tests.engine.stack_fixtures import StackApi, connected, wait_until
from tests.engine.test_api_races import NullLiveKit

pytestmark = [pytest.mark.livekit, pytest.mark.engine]


async def test_the_leave_of_a_replaced_session_does_not_free_the_seat(api: StackApi) -> None:
    room, host = api.audio_room(seats=2)
    first = api.join("dup", room, "audio_room")
    async with connected(api.stack.livekit.url, first.token):
        api.act(first, "seats/take", {"seat_index": 1})
        second = api.join("dup", room, "audio_room")  # the same identity, a new device
        async with connected(api.stack.livekit.url, second.token):
            # LiveKit kicks the first session (duplicate identity) and reports it left
            ignored = (f"participant_left of a replaced session ignored "
                       f"(dup is still in {livekit_room_name(api.main.app_id, room)})")  # this room's, no other
            wait_until(lambda: ignored in api.stack.log_tail(200),
                       "the engine to see the stale leave", timeout=20)
            assert api.seats(host)["seats"][1]["occupant"] == "dup"


async def test_a_database_outage_is_503_with_retry_after(tmp_path: Any, mocker: Any) -> None:
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig("a", "k")],
                          signing_secret="s" * 32)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store,
                                              control_factory=NullLiveKit)))
    await client.start_server()
    try:
        # the outermost seam: the database driver refuses every connection
        mocker.patch.object(store.engine, "connect",
                            side_effect=OperationalError("SELECT", {}, Exception("gone")))
        mocker.patch.object(store.engine, "begin",
                            side_effect=OperationalError("BEGIN", {}, Exception("gone")))
        response = await client.post("/api/v1/token", json={
            "app_id": "a", "app_key": "k", "identity": "u", "room_name": "r",
            "stream_type": "audio_room"})
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "unavailable"
    finally:
        await client.close()
        store.close()


class _Control(NullLiveKit):
    """LiveKit as the engine's outermost seam: answers ``get_participant`` as told."""

    def __init__(self) -> None:
        self.present: MediaParticipant | None = None

    async def get_participant(self, room: str, identity: str) -> MediaParticipant | None:
        return self.present if self.present and self.present.identity == identity else None


@pytest.mark.parametrize("present_sid,replaced,freed", [
    (None, False, True), ("PA_left", False, True), ("PA_new", False, False),
    # LiveKit sends the DUPLICATE_IDENTITY leave before it has the new connection at all
    (None, True, False)])
async def test_a_leave_frees_the_seat_unless_another_connection_replaced_it(
        tmp_path: Any, present_sid: str | None, replaced: bool, freed: bool) -> None:
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig("a", "k")],
                          signing_secret="s" * 32, livekit_api_secret="l" * 32)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    control = _Control()
    service = EngineService(config.service_settings(), store, control,
                            JwtBearers(config.signing_secret, ttl=60))
    try:
        base = {"app_id": "a", "app_key": "k", "room_name": "r",
                "stream_type": UTDStreamType.AUDIO_ROOM}
        await service.mint_token(**base, identity="h", role="host", seat_count=2)
        await service.mint_token(**base, identity="g")
        await service.room_op(ops.TAKE_SEAT, Caller("a", "g"), "r", seat_index=0)
        # LiveKit may still report the leaving connection itself for a moment
        if present_sid is not None:
            control.present = MediaParticipant("g", present_sid, True,
                                               frozenset({"microphone"}))
        await service.participant_left(livekit_room_name("a", "r"), "g", sid="PA_left",
                                       replaced=replaced)
        grid = await service.room_op(ops.GET_SEATS, Caller("a", "h"), "r")
        assert (grid.seat_of("g") is None) is freed
    finally:
        store.close()
