"""Sessions that recover on their own (on the fakes): rejoin after a loss, resync after a
reconnect, fail fast while the engine is unreachable, end a call whose room is lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from adapters.fakes.media import FakeMedia
from stream_core import (
    ConnectionState, MediaEvent, RejoinAbandoned, Rejoined,
    RejoinPolicy, RejoinScheduled, SessionResynced, UTDCallStatus, UTDSession,
    UTDStreamClient, UTDStreamException, UTDStreamType, operations as ops,
)
from stream_core.errors import ErrorCode
from stream_core.names import livekit_call_name, livekit_room_name
from tests.scenarios.helpers import TIMEOUT

FAST = RejoinPolicy(first_delay=0.01, max_delay=0.05)


class SwitchableEngine:
    """The engine port with a switch that makes it unreachable, as RestEngine reports, and
    a gate that can hold the next read of an operation (``hold``) until it is released."""

    def __init__(self, engine: Any) -> None:
        self.inner = engine
        self.down = False
        self.held: dict[str, threading.Event] = {}
        self.holding = threading.Event()
        self.refused = threading.Event()  # set once a call was refused while down

    def hold(self, op: Any) -> threading.Event:
        """Hold the next call of ``op`` (in the caller's worker thread) until the returned
        event is set; :attr:`holding` is set once a call waits there."""
        gate = self.held[op.name] = threading.Event()
        return gate

    def run(self, op: Any, bearer: str | None, /, **args: Any) -> Any:
        if self.down:
            self.refused.set()
            raise UTDStreamException("the engine is unreachable", code=ErrorCode.ENGINE_UNAVAILABLE)
        gate = self.held.pop(op.name, None)
        if gate is not None:
            self.holding.set()
            gate.wait(TIMEOUT)
        return self.inner.run(op, bearer, **args)

    def close(self) -> None:
        pass


@pytest.fixture
def switch(engine: Any) -> SwitchableEngine:
    return SwitchableEngine(engine)


@pytest.fixture
def recovering_client(switch: SwitchableEngine, sfu: Any) -> Callable[[], UTDStreamClient]:
    def make() -> UTDStreamClient:
        return UTDStreamClient(app_id="test-app", app_key="test-key", engine=switch,  # type: ignore[arg-type]
                               media_factory=lambda: FakeMedia(sfu), grant_timeout=5.0,
                               rejoin_policy=FAST)
    return make


def recorder(session: UTDSession) -> tuple[list[MediaEvent], asyncio.Task[None]]:
    seen: list[MediaEvent] = []

    async def collect() -> None:
        async for event in session.events:
            seen.append(event)
    return seen, asyncio.create_task(collect())


async def wait_for_event(seen: list[MediaEvent], kind: type[MediaEvent],
                         timeout: float = TIMEOUT) -> MediaEvent:
    async def poll() -> MediaEvent:
        while True:
            for event in seen:
                if isinstance(event, kind):
                    return event
            await asyncio.sleep(0.005)
    return await asyncio.wait_for(poll(), timeout)


def test_rejoin_delays_grow_to_a_cap_with_jitter_below():
    policy = RejoinPolicy(first_delay=0.25, factor=2.0, max_delay=5.0, jitter=0.5)
    assert [policy.delay(n, 0.0) for n in (1, 2, 3, 6, 20)] == [0.25, 0.5, 1.0, 5.0, 5.0]
    assert policy.delay(3, 0.999) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError):
        policy.delay(0, 0.0)


async def test_a_lost_room_session_rejoins_and_its_mirror_equals_the_engine(
        recovering_client, sfu, switch, engine):
    host = await recovering_client().join_audio_room("h", "lost", as_host=True, seat_count=4)
    fan = await recovering_client().join_audio_room("fan", "lost")
    try:
        await fan.take_seat(1)
        assert fan.room.media.microphone_enabled
        seen, reader = recorder(fan)
        states: list[ConnectionState] = []
        fan.room.connection_state.listen(states.append)
        # The rejoin's mint is held until the engine has applied the leave of the lost
        # link: LiveKit sends that leave at once, but a loaded engine may apply it after
        # the rejoin (then it is a replaced connection's leave and the seat is kept, or
        # the member is let go and joins once more); this case is the leave first.
        released = switch.hold(ops.MINT_TOKEN)
        sfu.drop(livekit_room_name(engine.app_id, "lost"), "fan")  # the process's link dies
        assert await asyncio.to_thread(switch.holding.wait, TIMEOUT)
        await asyncio.to_thread(engine.drain_webhooks)
        released.set()
        rejoined = await wait_for_event(seen, Rejoined)
        assert isinstance(rejoined, Rejoined) and rejoined.attempts == 1
        scheduled = [e for e in seen if isinstance(e, RejoinScheduled)]
        assert scheduled and scheduled[0].reason == "connection_lost"
        assert states[:2] == [ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED]
        assert fan.connected.value
        # the engine freed the seat when the link died; the mirror says so, and nothing
        # is published that the engine does not grant
        truth = engine.run(ops.GET_SEATS, fan._bearer, room_name="lost")
        assert fan.seats.value is not None and fan.seats.value.seats == truth.seats
        assert fan.my_seat.value is None and not fan.room.media.microphone_enabled
        await fan.take_seat(1)  # and it works as before
        assert fan.room.media.microphone_enabled
        reader.cancel()
    finally:
        await fan.dispose()
        await host.dispose()


async def test_a_seated_member_whose_connection_was_closed_under_it_speaks_again_on_rejoin(
        recovering_client, sfu, engine):
    """The media connection is closed behind the session's back (client side, so nothing
    rejoins by itself) and its leave reaches the engine only after the app rejoined (here:
    never; LiveKit's comes after the new connection, so it is ignored). The seat is still
    granted, so the microphone must be published again (the random walk found it silent:
    the session still believed the lost connection's microphone was on)."""
    host = await recovering_client().join_audio_room("h", "closed", as_host=True, seat_count=4)
    fan = await recovering_client().join_audio_room("fan", "closed")
    try:
        await fan.take_seat(1)
        assert fan.room.media.microphone_enabled
        engine.drain_webhooks()
        engine._unhook()  # the leave of the closed connection never reaches the engine
        await fan.room.media.disconnect()  # not fan.leave(): the session is not told
        await fan.connected.wait_for(lambda c: not c, TIMEOUT)
        await fan.rejoin()
        assert fan.my_seat.value == 1
        await fan.room.permissions.wait_for(lambda p: p.allows("microphone"), TIMEOUT)
        assert fan.room.media.microphone_enabled
    finally:
        await fan.dispose()
        await host.dispose()


async def test_leave_stops_a_rejoin_in_backoff(recovering_client, sfu, engine):
    slow = RejoinPolicy(first_delay=10.0, max_delay=10.0, jitter=0.0)
    client = UTDStreamClient(app_id="test-app", app_key="test-key", engine=engine,
                             media_factory=lambda: FakeMedia(sfu), rejoin_policy=slow)
    fan = await client.join_audio_room("fan", "stop", seat_count=None)
    sfu.drop(livekit_room_name(engine.app_id, "stop"), "fan")
    await fan.connected.wait_for(lambda c: not c, TIMEOUT)
    await asyncio.sleep(0)
    assert fan.recovering
    await fan.leave()
    assert not fan.recovering and not fan.connected.value
    await fan.dispose()
    assert {t for t in asyncio.all_tasks() if t.get_name().startswith("utd:")} == set()


async def test_a_banned_identity_gives_up_rejoining(recovering_client, sfu, switch, engine):
    host = await recovering_client().join_audio_room("h", "ban", as_host=True, seat_count=2)
    fan = await recovering_client().join_audio_room("fan", "ban")
    try:
        seen, reader = recorder(fan)
        switch.down = True  # the rejoin cannot mint until the ban is in
        sfu.drop(livekit_room_name(engine.app_id, "ban"), "fan")
        await wait_for_event(seen, RejoinScheduled)
        switch.down = False
        await host.ban("fan")
        abandoned = await wait_for_event(seen, RejoinAbandoned)
        assert isinstance(abandoned, RejoinAbandoned) and abandoned.code == "banned"
        assert not fan.connected.value and not fan.recovering
        reader.cancel()
    finally:
        await fan.dispose()
        await host.dispose()


async def test_engine_unreachable_fails_fast_and_observables_keep_their_value(
        recovering_client, switch):
    host = await recovering_client().join_audio_room("h", "down", as_host=True, seat_count=2)
    try:
        await host.take_seat(0)
        before = host.seats.value
        switch.down = True
        with pytest.raises(UTDStreamException) as refused:
            await host.leave_seat()
        assert refused.value.code == "engine_unavailable" and refused.value.is_retryable
        assert host.seats.value is before and host.my_seat.value == 0
        assert host.room.media.microphone_enabled and host.connected.value
        switch.down = False
        await host.leave_seat()
        assert host.my_seat.value is None
    finally:
        await host.dispose()


async def test_a_resume_rereads_the_state_and_republishes_only_the_grant(
        recovering_client, sfu, engine):
    host = await recovering_client().join_audio_room("h", "resume", as_host=True, seat_count=2)
    try:
        await host.take_seat(0)
        seen, reader = recorder(host)
        media = host.room.media
        await media.set_microphone(False)  # the app (or a broken link) took it down
        sfu.blip(livekit_room_name(engine.app_id, "resume"), "h")
        resynced = await wait_for_event(seen, SessionResynced)
        assert isinstance(resynced, SessionResynced) and resynced.publishing == ("microphone",)
        assert media.microphone_enabled  # the grant is followed again
        await host.leave_seat()
        sfu.blip(livekit_room_name(engine.app_id, "resume"), "h")
        await asyncio.sleep(0.05)
        assert not media.microphone_enabled and host.my_seat.value is None
        reader.cancel()
    finally:
        await host.dispose()


async def test_a_call_whose_room_is_lost_ends_on_both_sides(recovering_client, sfu, engine):
    caller_client, callee_client = recovering_client(), recovering_client()
    await caller_client.authenticate("alice")
    await callee_client.authenticate("bob")
    caller = caller_client.call_session(UTDStreamType.AUDIO_CALL)
    callee = callee_client.call_session(UTDStreamType.AUDIO_CALL)
    try:
        call = await caller.start("bob")
        await callee.accept(call.call_id)
        await caller.status.wait_for(lambda s: s is UTDCallStatus.ACTIVE, TIMEOUT)
        sfu.drop(livekit_call_name(engine.app_id, call.call_id), "alice")  # the caller's link dies
        for side in (caller, callee):
            await side.status.wait_for(lambda s: s is not None and s.is_terminal, TIMEOUT)
            await side.connected.wait_for(lambda c: not c, TIMEOUT)
    finally:
        await caller.dispose()
        await callee.dispose()


async def test_a_member_the_engine_let_go_during_a_reconnect_joins_again(
        recovering_client, sfu, engine):
    """Walk regression: after a LiveKit restart the leave of the old connection reached the
    engine after the session's reconnect; the resync's read answered 404 and the session
    stayed in LiveKit's room, unknown to the engine. It now mints and joins again."""
    host = await recovering_client().join_audio_room("h", "late", as_host=True, seat_count=2)
    fan = await recovering_client().join_audio_room("fan", "late")
    try:
        seen, reader = recorder(fan)
        lk = livekit_room_name(engine.app_id, "late")
        sid = sfu.get_participant(lk, "fan").sid
        engine.drain_webhooks()  # the connection's own join came first, as LiveKit sends it
        engine._on_loop(engine.service.participant_left(lk, "fan", sid=sid))  # the late leave
        with pytest.raises(UTDStreamException) as forgotten:
            await fan.get_seats()
        assert forgotten.value.status_code == 404
        sfu.blip(lk, "fan")
        await wait_for_event(seen, Rejoined)
        assert fan.connected.value and (await fan.get_seats()).room_name == "late"
        reader.cancel()
    finally:
        await fan.dispose()
        await host.dispose()


async def test_a_loss_during_a_resync_starts_the_recovery_over(recovering_client, sfu, switch,
                                                               engine):
    """Walk regression: LiveKit restarted twice in a row. The first restart's resync was
    still under way (here: its state read held) when the second restart took the connection
    away; the loss was dropped because a recovery was "already running", and that resync
    waited on the dead connection for good: the session never came back (the live host
    stayed disconnected, unknown to the engine, for as long as the walk looked)."""
    host = await recovering_client().join_audio_room("h", "twice", as_host=True, seat_count=2)
    fan = await recovering_client().join_audio_room("fan", "twice")
    released = switch.hold(ops.GET_SEATS)
    try:
        seen, reader = recorder(fan)
        lk = livekit_room_name(engine.app_id, "twice")
        sfu.blip(lk, "fan")  # the first restart: resumed, the resync reads the state...
        assert await asyncio.to_thread(switch.holding.wait, TIMEOUT)
        assert fan.recovering
        sfu.drop(lk, "fan")  # ...and the second takes the connection while it reads
        rejoined = await wait_for_event(seen, Rejoined)
        assert isinstance(rejoined, Rejoined) and fan.connected.value
        assert (await fan.get_seats()).room_name == "twice"
        reader.cancel()
    finally:
        released.set()
        await fan.dispose()
        await host.dispose()


async def test_a_resync_while_the_engine_is_away_is_tried_again_until_it_is_back(
        recovering_client, sfu, switch, engine):
    """Walk finding: LiveKit resumed while the engine was restarting; the resync's read
    failed and was given up, so a change pushed meanwhile was never seen."""
    host = await recovering_client().join_audio_room("h", "away", as_host=True, seat_count=2)
    fan = await recovering_client().join_audio_room("fan", "away")
    try:
        seen, reader = recorder(fan)
        lk = livekit_room_name(engine.app_id, "away")
        switch.down = True
        sfu.blip(lk, "fan")  # resumed while the engine is away: the resync's read fails
        assert await asyncio.to_thread(switch.refused.wait, TIMEOUT)
        engine.run(ops.TAKE_SEAT, host._bearer, room_name="away", seat_index=0)
        switch.down = False  # the resync that failed must be tried again
        resynced = await wait_for_event(seen, SessionResynced)
        assert isinstance(resynced, SessionResynced)
        assert fan.seats.value is not None and fan.seats.value.seats[0].occupant == "h"
        reader.cancel()
    finally:
        switch.down = False
        await fan.dispose()
        await host.dispose()
