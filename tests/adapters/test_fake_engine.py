"""The fake engine is the engine service over in-memory parts: the rules that used to hold
only in the reference server (ban on rejoin, grant catch-up, a replaced connection's late
leave) hold here too, and the rate-limit hook refuses exactly as the server's limiter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.fakes.engine import FakeEngine
from adapters.fakes.media import FakeMedia
from adapters.fakes.sfu import FakeSFU
from stream_core import UTDStreamException, UTDStreamType
from stream_core import operations as ops
from stream_core.engine.service import EngineService
from stream_core.events import ConnectionState
from stream_core.ports import ConnectOptions
from stream_core.rooms import LiveStage, SeatRoom

AUDIO = UTDStreamType.AUDIO_ROOM
TIMEOUT = 5.0


@pytest.fixture
def world() -> Iterator[tuple[FakeSFU, FakeEngine]]:
    sfu = FakeSFU()
    engine = FakeEngine(sfu)
    yield sfu, engine
    engine.close()


def mint(engine: FakeEngine, identity: str, room: str = "r", **kwargs: Any) -> Any:
    return engine.run(ops.MINT_TOKEN, None, identity=identity, room_name=room,
                      stream_type=AUDIO, **kwargs)


async def connect(sfu: FakeSFU, token: str) -> FakeMedia:
    media = FakeMedia(sfu)
    await media.connect(sfu.url, token, ConnectOptions())
    return media


async def until(media: FakeMedia, ready: Callable[[], bool]) -> None:
    """Wait for the media's own view to satisfy ``ready`` (each event wakes a re-check)."""
    changed = asyncio.Event()
    stop = media.add_listener(lambda _event: changed.set())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not ready():
                changed.clear()
                await changed.wait()
    finally:
        stop()


def test_the_rate_limit_hook_refuses_with_429_and_changes_nothing() -> None:
    refused = {("mutate", "bob")}
    engine = FakeEngine(FakeSFU(), rate_limiter=lambda kind, app, who: 2.0 if (kind, who)
                        in refused else None)
    try:
        host = mint(engine, "h", role="host", seat_count=2).user_token
        bob = mint(engine, "bob").user_token
        before = engine.run(ops.GET_SEATS, host, room_name="r")
        with pytest.raises(UTDStreamException) as info:
            engine.run(ops.TAKE_SEAT, bob, room_name="r", seat_index=0)
        assert info.value.is_rate_limited and info.value.retry_after == 2.0
        assert engine.run(ops.GET_SEATS, host, room_name="r") == before
        grid = engine.run(ops.TAKE_SEAT, host, room_name="r", seat_index=1)
        assert grid.seat_of("h") == 1  # others are not limited
    finally:
        engine.close()


def test_the_fake_runs_the_engine_service_itself(world: tuple[FakeSFU, FakeEngine]) -> None:
    _, engine = world
    assert type(engine.service) is EngineService


def test_every_operation_has_its_carrier() -> None:
    """A ROOM change names a method of its room kind (reads answer with the snapshot), a
    SERVICE row a service method, a CALL row a trigger."""
    for op in ops.OPERATIONS:
        if op.target is ops.Target.ROOM and not op.reads:
            kinds = (op.room,) if op.room is not None else (SeatRoom, LiveStage)
            for kind in kinds:
                assert callable(getattr(kind, op.name, None)), (op.name, kind)
        elif op.target is ops.Target.SERVICE or op.reads:
            assert op.reads or callable(getattr(EngineService, op.name, None)), op.name
        else:
            assert op.trigger is not None, op.name


def test_wire_validation_is_the_servers(world: tuple[FakeSFU, FakeEngine]) -> None:
    _, engine = world
    host = mint(engine, "h", role="host", seat_count=2).user_token
    with pytest.raises(UTDStreamException) as info:
        engine.run(ops.TAKE_SEAT, host, room_name="r", seat_index=-1)
    assert info.value.status_code == 422 and info.value.field == "seat_index"


async def test_a_banned_identity_connecting_with_an_old_token_is_removed(
        world: tuple[FakeSFU, FakeEngine]) -> None:
    sfu, engine = world
    host = mint(engine, "h", role="host", seat_count=2).user_token
    old = mint(engine, "e")  # minted before the ban
    engine.run(ops.BAN, host, room_name="r", identity="e")
    media = await connect(sfu, old.token)
    try:
        await until(media, lambda: media.connection_state is ConnectionState.DISCONNECTED)
        engine.drain_webhooks()
        assert "e" not in sfu.participants(engine.media_room("r"))
    finally:
        await media.disconnect()


async def test_a_seat_won_before_connecting_is_granted_on_arrival(
        world: tuple[FakeSFU, FakeEngine]) -> None:
    sfu, engine = world
    mint(engine, "h", role="host", seat_count=2)
    grant = mint(engine, "g")  # a listener's token: no publish
    engine.run(ops.TAKE_SEAT, grant.user_token, room_name="r", seat_index=0)  # not connected
    media = await connect(sfu, grant.token)
    try:
        await until(media, lambda: media.permissions.allows("microphone"))
    finally:
        await media.disconnect()


async def test_the_late_leave_of_a_replaced_connection_frees_nothing(
        world: tuple[FakeSFU, FakeEngine]) -> None:
    sfu, engine = world
    host = mint(engine, "h", role="host", seat_count=2).user_token
    first = mint(engine, "dup")
    phone = await connect(sfu, first.token)
    engine.run(ops.TAKE_SEAT, first.user_token, room_name="r", seat_index=1)
    laptop = await connect(sfu, mint(engine, "dup").token)  # the SFU drops the phone
    try:
        await until(phone, lambda: phone.connection_state is ConnectionState.DISCONNECTED)
        engine.drain_webhooks()
        assert engine.run(ops.GET_SEATS, host, room_name="r").seat_of("dup") == 1
        await laptop.disconnect()  # the current connection leaving does free it
        engine.drain_webhooks()
        assert engine.run(ops.GET_SEATS, host, room_name="r").seat_of("dup") is None
    finally:
        await phone.disconnect()
        await laptop.disconnect()




async def test_the_reconcile_pass_corrects_drift_on_the_media_server(
        world: tuple[FakeSFU, FakeEngine]) -> None:
    """A grant the media server lost and a state it forgot are put back; nothing else."""
    sfu, engine = world
    mint(engine, "h", role="host", seat_count=2)
    grant = mint(engine, "g")
    media = await connect(sfu, grant.token)
    try:
        engine.drain_webhooks()  # admitted
        engine.run(ops.TAKE_SEAT, grant.user_token, room_name="r", seat_index=0)
        await until(media, lambda: media.permissions.allows("microphone"))
        lk = engine.media_room("r")
        assert engine._on_loop(engine.service.reconcile_room(lk)) == 0  # nothing drifted
        from stream_core.models import UTDPermissions
        sfu.update_permissions(lk, "g", UTDPermissions())  # LiveKit loses the grant
        sfu.set_room_metadata(lk, "")  # and the state (a restarted server)
        assert engine._on_loop(engine.service.reconcile_room(lk)) == 2
        await until(media, lambda: media.permissions.allows("microphone"))
        assert json.loads(sfu.room_metadata(lk) or "{}")["seats"]["seats"][0]["occupant"] == "g"
    finally:
        await media.disconnect()


async def test_the_reconcile_pass_frees_a_seat_whose_leave_never_came(
        world: tuple[FakeSFU, FakeEngine]) -> None:
    sfu, engine = world
    host = mint(engine, "h", role="host", seat_count=2).user_token
    grant = mint(engine, "g")
    engine.run(ops.TAKE_SEAT, grant.user_token, room_name="r", seat_index=1)
    engine.service.absent_grace = 0.0  # the holder never connected: absent from the start
    lk = engine.media_room("r")
    engine._on_loop(engine.service.reconcile_room(lk))  # notes the absence
    engine._on_loop(engine.service.reconcile_room(lk))  # past the grace: freed
    assert engine.run(ops.GET_SEATS, host, room_name="r").seat_of("g") is None


async def test_a_new_connection_is_present_even_after_its_predecessors_late_leave(
        world: tuple[FakeSFU, FakeEngine]) -> None:
    """A media server that restarts answers no look-up, so the old connection's leave can be
    applied after the new connection began: the new connection's join restores presence."""
    sfu, engine = world
    mint(engine, "h", role="host", seat_count=2)
    grant = mint(engine, "g")
    lk = engine.media_room("r")
    engine._on_loop(engine.service.participant_left(lk, "g", sid="PA_old"))  # taken at its word
    with pytest.raises(UTDStreamException) as gone:
        engine.run(ops.GET_SEATS, grant.user_token, room_name="r")
    assert gone.value.status_code == 404
    engine._on_loop(engine.service.participant_joined(lk, "g", can_publish=False,
                                                      sources=frozenset(), hidden=True))
    assert engine.run(ops.GET_SEATS, grant.user_token, room_name="r").room_name == "r"
