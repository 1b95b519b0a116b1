"""A join is a mint and a connect: the first state comes with the connection's metadata,
and the engine is asked for it only when that metadata is missing or older than the mint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.fakes.engine import FakeEngine
from adapters.fakes.media import FakeMedia
from adapters.fakes.sfu import FakeSFU
from stream_core import EnginePort, UTDStreamClient
from stream_core.operations import Operation


class RecordingEngine:
    """The engine port, passed through, with the name of every operation asked of it."""

    def __init__(self, engine: EnginePort) -> None:
        self.engine = engine
        self.asked: list[str] = []

    def run(self, op: Operation[Any], user_token: str | None, /, **args: Any) -> Any:
        self.asked.append(op.name)
        return self.engine.run(op, user_token, **args)

    def close(self) -> None:
        """The shared fake engine is closed by its fixture."""


def _client(engine: FakeEngine, sfu: FakeSFU) -> tuple[UTDStreamClient, RecordingEngine]:
    recording = RecordingEngine(engine)
    client = UTDStreamClient(app_id="test-app", app_key="test-key", engine=recording,
                             media_factory=lambda: FakeMedia(sfu), grant_timeout=5.0)
    return client, recording


async def test_join_asks_the_engine_once_and_takes_the_state_from_the_connection(
        engine: FakeEngine, sfu: FakeSFU, make_client: Callable[[], UTDStreamClient]) -> None:
    host = await make_client().join_audio_room("h", "floor", as_host=True, seat_count=3)
    await host.take_seat(1)
    client, asked = _client(engine, sfu)
    listener = await client.join_audio_room("l", "floor")
    live, live_asked = _client(engine, sfu)
    viewer = await live.join_live_stream("v", "show")
    try:
        assert asked.asked == ["mint_token"] and live_asked.asked == ["mint_token"]
        assert listener.seats.value is not None and listener.seats.value.seat_of("h") == 1
        assert viewer.stage.value == ()
    finally:
        for session in (viewer, listener, host):
            await session.dispose()


async def test_missing_metadata_falls_back_to_the_engine(
        engine: FakeEngine, sfu: FakeSFU, make_client: Callable[[], UTDStreamClient]) -> None:
    host = await make_client().join_audio_room("h", "bare", as_host=True, seat_count=2)
    await host.take_seat(0)
    sfu.set_room_metadata(engine.media_room("bare"), "")  # e.g. a media room made anew
    client, asked = _client(engine, sfu)
    listener = await client.join_audio_room("l", "bare")
    try:
        assert asked.asked == ["mint_token", "get_seats"]
        assert listener.seats.value is not None and listener.seats.value.seat_of("h") == 0
    finally:
        await listener.dispose()
        await host.dispose()


async def test_metadata_older_than_the_mint_falls_back_to_the_engine(
        engine: FakeEngine, sfu: FakeSFU, make_client: Callable[[], UTDStreamClient]) -> None:
    host = await make_client().join_audio_room("h", "late", as_host=True, seat_count=2)
    before = host.room.metadata.value
    await host.take_seat(0)
    sfu.set_room_metadata(engine.media_room("late"), before)  # a push that has not reached the joiner
    client, asked = _client(engine, sfu)
    listener = await client.join_audio_room("l", "late")
    try:
        assert asked.asked == ["mint_token", "get_seats"]
        assert listener.seats.value is not None and listener.seats.value.seat_of("h") == 0
    finally:
        await listener.dispose()
        await host.dispose()
