"""Fault tests with a number each, on the real stack (printed; the README's measured
section quotes them): sessions back with the right grants after a LiveKit restart, the
engine answering again after ``kill -9``, a dropped participant's seat freed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stream_core import Rejoined, SessionResynced, UTDStreamException
from stream_core.engine.settings import AppConfig
from stream_core.names import livekit_room_name
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import LiveKitControl
from tests.fidelity.world import World
from tests.support import require_livekit_binary

pytestmark = [pytest.mark.livekit, pytest.mark.engine, pytest.mark.slow]

#: LiveKit v1.13.5 closes a participant whose connection died without a goodbye when its
#: ICE transport fails (10 s disconnected + 5 s failed, hard-coded, and its signal timeout);
#: a seat still held after this long is a failure whatever LiveKit did.
LIVEKIT_DETECTION_CEILING = 40.0


@pytest.fixture
async def world() -> AsyncIterator[World]:
    require_livekit_binary()
    stack = await asyncio.to_thread(
        lambda: LocalStack(apps=[AppConfig("fault-app", "fault-key")]).start())
    lk = stack.livekit
    control = LiveKitControl(lk.url, lk.api_key, lk.api_secret)
    w = World(stack, control, f"f{uuid.uuid4().hex[:6]}")
    try:
        await w.open(3)
        yield w
    finally:
        await w.close()
        await control.aclose()
        await asyncio.to_thread(stack.stop)


async def _all_back(world: World, timeout: float = 30.0) -> None:
    sessions = [s for m in world.members for s in (m.audio, m.live)]
    deadline = time.monotonic() + timeout
    while any(not s.connected.value or s.recovering for s in sessions):
        assert time.monotonic() < deadline, [repr(s) for s in sessions if not s.connected.value]
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
async def test_every_session_is_back_with_its_grants_after_a_livekit_restart(world, hard):
    p0, p1, _ = world.members
    await p0.audio.take_seat(0)
    await p1.audio.take_seat(1)
    await world.host.live.invite_to_stage(p1.identity)
    await world.converge()
    recovered: list[Any] = []

    async def watch() -> None:
        async for event in p1.audio.events:
            if isinstance(event, (Rejoined, SessionResynced)):
                recovered.append(event)
    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    await world.restart_livekit(hard=hard)
    up = time.monotonic()
    await _all_back(world)
    await world.converge()
    back = time.monotonic()
    watcher.cancel()
    print(f"\nLiveKit restart ({'SIGKILL' if hard else 'SIGTERM'}): server down+up "
          f"{up - started:.2f} s, every session back with the engine's grants "
          f"{back - up:.2f} s after it answered ({back - started:.2f} s in all)")
    if not hard:
        # Stopped with SIGTERM, livekit-server v1.13.5 either sends its clients a leave (the
        # session rejoins with a fresh token: Rejoined) or closes their signal streams
        # asking them to resume (rtc reconnects by itself, the session resyncs:
        # SessionResynced); seen both ways. Either way the session came back on its own.
        assert recovered, "p1's audio session did not come back by itself"
    assert back - up < 15.0


async def test_operations_succeed_again_soon_after_the_engine_is_killed(world):
    host = world.host.audio
    await host.take_seat(0)
    started = time.monotonic()
    await asyncio.to_thread(world.stack.kill_engine)
    with pytest.raises(UTDStreamException) as down:
        await host.get_seats()
    failed_in = time.monotonic() - started
    assert down.value.is_engine_unavailable and down.value.is_retryable
    assert host.my_seat.value == 0  # the last known value stays
    restart = asyncio.create_task(asyncio.to_thread(world.stack.restart_engine))
    while True:
        try:
            await host.leave_seat()
            break
        except UTDStreamException as exc:
            assert exc.is_retryable, exc
            await asyncio.sleep(0.05)
    ok = time.monotonic() - started
    await restart
    await world.converge()
    print(f"\nengine kill -9: an operation failed fast in {failed_in * 1000:.0f} ms "
          f"(engine_unavailable); operations succeed again {ok:.2f} s after the kill")
    assert failed_in < 1.0 and ok < 15.0


async def test_a_dropped_participants_seat_is_freed_within_a_second_of_livekits_departure(
        world):
    """The issue's bound is LiveKit's departure of a participant that died without a
    goodbye, plus one second. LiveKit's own detection (its ICE timeouts, ~15-20 s, hard-coded
    in v1.13.5) is not ours to shorten, so it is measured here as what it is (the moment
    LiveKit stops listing the participant) and the product's part after it (webhook,
    engine, push to every session) must take at most one second."""
    host, stack = world.host.audio, world.stack
    lk_room = livekit_room_name(stack.app.app_id, world.audio_room)
    bot = subprocess.Popen(
        [sys.executable, "-m", "adapters.entrypoints.cli", "join", "--base-url",
         stack.base_url, "--app-id", stack.app.app_id, "--app-key", stack.app.app_key,
         "--identity", "bot", "audio-room", world.audio_room, "--seat", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def livekit_departure() -> float:
        while any(p.identity == "bot" for p in await world.control.list_participants(lk_room)):
            await asyncio.sleep(0.05)
        return time.monotonic()
    try:
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("bot") == 2, 30)
        killed = time.monotonic()
        os.kill(bot.pid, signal.SIGKILL)  # no goodbye: only LiveKit can notice
        departed = asyncio.ensure_future(livekit_departure())
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("bot") is None,
                                  LIVEKIT_DETECTION_CEILING, what="the seat to be freed")
        freed = time.monotonic()
        gone = await asyncio.wait_for(departed, 5)
        print(f"\ndropped participant (kill -9): LiveKit let it go {gone - killed:.2f} s after "
              f"the drop, its seat was freed {freed - killed:.2f} s after it "
              f"({freed - gone:+.2f} s after LiveKit; bound +1 s)")
        assert freed - gone <= 1.0
    finally:
        if bot.poll() is None:
            bot.kill()
        bot.wait(10)
