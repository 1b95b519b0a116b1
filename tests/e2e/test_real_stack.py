"""Every product for real: engine + livekit-server + SQLite, media checked, not assumed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest

from adapters.livekit.media import LiveKitMedia
from stream_core.names import livekit_room_name
from stream_engine.livekit_control import LiveKitControl
from stream_core import (
    DataReceived, UTDCallStatus, UTDSession, UTDStreamException, UTDStreamType,
)
from tests.e2e.conftest import TIMEOUT

pytestmark = [pytest.mark.livekit, pytest.mark.engine]


def room() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def media(session: UTDSession) -> LiveKitMedia:
    assert isinstance(session.room.media, LiveKitMedia)
    return session.room.media


async def sees(session: UTDSession, identity: str, source: str, present: bool = True) -> None:
    await session.remote_participants.wait_for(
        lambda ps: any(p.identity == identity and p.has_track(source) for p in ps) == present,
        TIMEOUT, what=f"{identity}'s {source} {'to arrive' if present else 'to go'}")


async def test_seated_speaker_is_heard_and_listeners_cannot_publish(real_client, sessions,
                                                                    local_stack):
    name = room()
    host = await real_client().join_audio_room("host", name, as_host=True, seat_count=8)
    alice = await real_client().join_audio_room("alice", name)
    bob = await real_client().join_audio_room("bob", name)
    sessions += [host, alice, bob]

    await alice.take_seat(0)
    await bob.seats.wait_for(lambda g: g is not None and g.seat_of("alice") == 0, TIMEOUT)
    await sees(bob, "alice", "microphone")
    level = await media(bob).remote_audio_rms("alice", seconds=0.5, timeout=TIMEOUT)
    assert level > 0.01, f"alice's audio reached bob silent (rms={level})"

    with pytest.raises(UTDStreamException) as refused:
        await bob.set_microphone(True)
    assert refused.value.status_code == 403
    async with LiveKitControl(local_stack.livekit.url, local_stack.livekit.api_key,
                              local_stack.livekit.api_secret) as control:
        server_view = {p.identity: p for p in
                       await control.list_participants(
                           livekit_room_name(local_stack.app.app_id, name))}
    assert server_view["bob"].can_publish is False and server_view["bob"].tracks == []
    assert server_view["alice"].can_publish is True

    await alice.leave_seat()
    await sees(bob, "alice", "microphone", present=False)
    await sees(host, "alice", "microphone", present=False)


async def test_stage_camera_reaches_viewers_and_goes_on_demotion(real_client, sessions):
    name = room()
    host = await real_client().join_live_stream("star", name, as_host=True)
    fan = await real_client().join_live_stream("fan", name)
    viewer = await real_client().join_live_stream("viewer", name)
    sessions += [host, fan, viewer]
    await host.go_live()
    await fan.request_stage()
    await host.hands.wait_for(lambda h: "fan" in h, TIMEOUT)
    await host.invite_to_stage("fan")
    await fan.on_stage.wait_for(bool, TIMEOUT)
    await sees(viewer, "fan", "camera")
    frames = await media(viewer).remote_video_frames("fan", seconds=1.0, timeout=TIMEOUT)
    assert frames > 0, "no camera frame of the co-publisher reached the viewer"
    await host.remove_from_stage("fan")
    await sees(viewer, "fan", "camera", present=False)
    await fan.on_stage.wait_for(lambda on: not on, TIMEOUT)


async def test_video_call_both_ways_and_a_third_joiner_is_refused(real_client, sessions):
    tag = uuid.uuid4().hex[:6]
    ann_client, ben_client, eve_client = real_client(), real_client(), real_client()
    await ann_client.authenticate(f"ann-{tag}")
    await ben_client.authenticate(f"ben-{tag}")
    await eve_client.authenticate(f"eve-{tag}")
    caller = ann_client.call_session(UTDStreamType.VIDEO_CALL)
    callee = ben_client.call_session(UTDStreamType.VIDEO_CALL)
    intruder = eve_client.call_session(UTDStreamType.VIDEO_CALL)
    sessions += [caller, callee, intruder]

    call = await caller.start(f"ben-{tag}")
    incoming = await ben_client.next_incoming_call(timeout=TIMEOUT)
    assert incoming is not None and incoming.call_id == call.call_id
    await callee.accept(call.call_id)
    await caller.status.wait_for(lambda s: s is UTDCallStatus.ACTIVE, TIMEOUT)
    for me, other in ((caller, f"ben-{tag}"), (callee, f"ann-{tag}")):
        await sees(me, other, "microphone")
        await sees(me, other, "camera")
        assert await media(me).remote_audio_rms(other, seconds=0.5, timeout=TIMEOUT) > 0.01
        assert await media(me).remote_video_frames(other, seconds=1.0, timeout=TIMEOUT) > 0

    with pytest.raises(UTDStreamException) as refused:
        await intruder.accept(call.call_id)
    assert refused.value.status_code == 403

    await caller.end()
    await callee.status.wait_for(lambda s: s is UTDCallStatus.ENDED, TIMEOUT)
    await callee.connected.wait_for(lambda c: not c, TIMEOUT)


async def test_data_to_listed_identities_reaches_only_them(real_client, sessions):
    name = room()
    host = await real_client().join_audio_room("h", name, as_host=True, seat_count=2)
    a = await real_client().join_audio_room("a", name)
    b = await real_client().join_audio_room("b", name)
    sessions += [host, a, b]
    await host.remote_participants.wait_for(
        lambda ps: {p.identity for p in ps} >= {"a", "b"}, TIMEOUT)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    arrived = {"a": asyncio.Event(), "b": asyncio.Event()}

    def on(who: str) -> Any:
        def handle(event: Any) -> None:
            if isinstance(event, DataReceived):
                got[who].append(event.data)
                arrived[who].set()
        return handle

    a.room.media.add_listener(on("a"))
    b.room.media.add_listener(on("b"))
    await host.send_data(b"only-a", to=["a"])
    await host.send_data(b"everyone")
    await asyncio.wait_for(arrived["b"].wait(), TIMEOUT)
    for who in ("a", "b"):
        while b"everyone" not in got[who]:
            arrived[who].clear()
            await asyncio.wait_for(arrived[who].wait(), TIMEOUT)
    assert got["a"] == [b"only-a", b"everyone"]
    assert got["b"] == [b"everyone"]


async def test_killed_participant_loses_its_seat_through_the_webhook(real_client, sessions,
                                                                     local_stack):
    name = room()
    host = await real_client().join_audio_room("host", name, as_host=True, seat_count=4)
    sessions.append(host)
    bot = subprocess.Popen(
        [sys.executable, "-m", "adapters.entrypoints.cli", "join", "--base-url", local_stack.base_url,
         "--app-id", local_stack.app.app_id, "--app-key", local_stack.app.app_key,
         "--identity", "bot", "audio-room", name, "--seat", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("bot") == 2, TIMEOUT * 2)
        await sees(host, "bot", "microphone")
        os.kill(bot.pid, signal.SIGKILL)  # no goodbye: only LiveKit notices it is gone
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("bot") is None,
                                  TIMEOUT * 3, what="the webhook to free the bot's seat")
    finally:
        if bot.poll() is None:
            bot.kill()
        bot.wait(10)


async def test_leave_then_rejoin_on_the_real_stack(real_client, sessions):
    name = room()
    host = await real_client().join_audio_room("host", name, as_host=True, seat_count=2)
    carl = await real_client().join_audio_room("carl", name)
    sessions += [host, carl]
    await carl.take_seat(0)
    await sees(host, "carl", "microphone")
    await carl.leave()
    await host.seats.wait_for(lambda g: g is not None and g.seat_of("carl") is None,
                              TIMEOUT, what="the webhook to free carl's seat")
    await carl.rejoin()
    await carl.take_seat(1)
    await sees(host, "carl", "microphone")
    assert await media(host).remote_audio_rms("carl", seconds=0.3, timeout=TIMEOUT) > 0.01
