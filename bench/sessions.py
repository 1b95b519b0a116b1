"""What the SDK costs over raw LiveKit, measured side by side in one run on a real stack.

Every comparison is a run of :mod:`bench.paired` pairs (interleaved, warm-up discarded,
ratio per pair, medians with their interquartile range):

* join: ``join_audio_room`` (mint + connect + first state) vs ``rtc.Room.connect`` with a
  pre-minted token, each into a new room;
* visible to others: from the start of a join until a participant already in the room sees
  the joiner. SDK tokens are minted hidden and the engine admits the connection when
  LiveKit's ``participant_joined`` webhook reaches it (a banned identity must never appear
  as joined): this row is what that rule costs;
* seat grant: ``take_seat()`` until a listener is subscribed to the new microphone track,
  vs the raw floor: ``UpdateParticipant`` via livekit-api, then publish, until subscribed;
* stage promotion: ``invite_to_stage()`` until the host is subscribed to the camera, vs the
  same raw floor with microphone + camera;
* call setup, as an app does it: the callee waits in ``next_incoming_call`` (its long-poll
  open at the engine); the caller ``start()``s, the callee accepts what the long-poll
  delivers, until both are subscribed to each other's microphone; vs two raw rooms
  connecting and publishing at once. Where its time goes is a second table (milestones);
* memory: resident set per joined session, and its growth over 200 join/leave cycles;
  every cycle also hears the room (a seated speaker's audio frames until the first one
  arrives, and the mix), so the frame streams and their native rtc streams are covered.

RSS (not tracemalloc) because most of a LiveKit session's memory lives in the Rust FFI
library, which tracemalloc cannot see. :mod:`bench.wan` runs the join and call pairs again
through a latency proxy.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Callable
from typing import Any

from livekit import rtc

from bench.call_setup import call_pairs, milestone_rows
from bench.paired import Paired, run_pairs
from bench.rig import (
    SOURCES, TIMEOUT, Clients, Endpoints, Plan, Raw, event, ms, room_options, subscribed,
    subscribed_to,
)
from stream_core.engine.settings import AppConfig
from stream_core.names import livekit_room_name
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import LiveKitControl

__all__ = ["TITLE", "join_pairs", "visible_pairs", "seat_pairs", "stage_pairs",
           "memory_rows", "bench_stack", "run"]

TITLE = "SDK vs raw LiveKit (real engine + livekit-server, loopback; paired trials)"


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource
    return pages * resource.getpagesize() / 2**20


# -- join ---------------------------------------------------------------------------------
async def join_pairs(stack: LocalStack, ends: Endpoints, clients: Clients, plan: Plan
                     ) -> Paired:
    """One client (its engine connection pooled, as an app's is), a new room each trial."""
    raw, joiner = Raw(stack, ends.livekit), clients()

    async def sdk() -> float:
        name = f"j-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        session = await joiner.join_audio_room("joiner", name)
        took = ms(t0)
        await session.dispose()
        return took

    async def floor() -> float:
        token = raw.token(f"raw-j-{uuid.uuid4().hex[:8]}", "joiner")
        room = rtc.Room()
        t0 = time.perf_counter()
        await room.connect(ends.livekit, token, room_options())
        took = ms(t0)
        await room.disconnect()
        return took

    return await run_pairs("join: SDK mint + connect + first state vs rtc connect "
                           "(token pre-minted)", sdk, floor, pairs=plan.join,
                           warmup=plan.warmup)


async def visible_pairs(stack: LocalStack, ends: Endpoints, clients: Clients, plan: Plan
                        ) -> Paired:
    """A raw watcher sits in each room; a new identity joins each trial."""
    raw = Raw(stack, ends.livekit)
    name = f"v-{uuid.uuid4().hex[:8]}"
    host = await clients().join_audio_room("host", name, as_host=True, seat_count=2)
    sdk_watcher = await raw.connect(livekit_room_name(stack.app.app_id, name), "watcher")
    raw_room = f"raw-v-{uuid.uuid4().hex[:8]}"
    raw_watcher = await raw.connect(raw_room, "watcher")
    joiner = clients()
    serial = iter(range(10**6))

    async def sdk() -> float:
        who = f"s{next(serial)}"
        seen = event(sdk_watcher, "participant_connected", lambda p: p.identity == who)
        t0 = time.perf_counter()
        session = await joiner.join_audio_room(who, name)
        await asyncio.wait_for(seen.wait(), TIMEOUT)
        took = ms(t0)
        await session.dispose()
        return took

    async def floor() -> float:
        who = f"r{next(serial)}"
        token = raw.token(raw_room, who)
        seen = event(raw_watcher, "participant_connected", lambda p: p.identity == who)
        room = rtc.Room()
        t0 = time.perf_counter()
        await room.connect(ends.livekit, token, room_options())
        await asyncio.wait_for(seen.wait(), TIMEOUT)
        took = ms(t0)
        await room.disconnect()
        return took

    try:
        return await run_pairs("visible to others: join start -> a participant in the room "
                               "sees the joiner (SDK: hidden until the engine admits it)",
                               sdk, floor, pairs=plan.visible, warmup=plan.warmup)
    finally:
        await asyncio.gather(sdk_watcher.disconnect(), raw_watcher.disconnect())
        await host.dispose()


# -- grants ---------------------------------------------------------------------------------
async def _raw_grant_trial(raw: Raw, control: LiveKitControl, room: str, rooms: list[rtc.Room],
                           publisher: str, watcher: str, sources: list[str]) -> Callable[
                               [], Any]:
    """The raw floor of a grant: ``UpdateParticipant``, the publisher sees its permission
    and publishes ``sources``, until ``watcher`` is subscribed to the last of them."""
    pub = await raw.connect(room, publisher)
    sub = await raw.connect(room, watcher)
    rooms += [pub, sub]
    watched = SOURCES[sources[-1]]

    async def floor() -> float:
        got = event(sub, "track_subscribed", subscribed(publisher, watched))
        granted = event(pub, "participant_permissions_changed",
                         lambda p, perm: p.identity == publisher and perm.can_publish)
        t0 = time.perf_counter()
        await control.update_permissions(room, publisher, can_publish=True, sources=sources)
        await asyncio.wait_for(granted.wait(), TIMEOUT)
        await asyncio.gather(*(raw.publish(pub, source) for source in sources))
        await asyncio.wait_for(got.wait(), TIMEOUT)
        took = ms(t0)
        gone = event(sub, "track_unpublished",
                      lambda pub_, participant: participant.identity == publisher
                      and pub_.source == watched)
        await control.update_permissions(room, publisher, can_publish=False, sources=[])
        for publication in list(pub.local_participant.track_publications.values()):
            await pub.local_participant.unpublish_track(publication.sid)
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        return took

    return floor


async def seat_pairs(stack: LocalStack, ends: Endpoints, clients: Clients, plan: Plan,
                     control: LiveKitControl) -> Paired:
    name = f"s-{uuid.uuid4().hex[:8]}"
    host = await clients().join_audio_room("host", name, as_host=True, seat_count=4)
    speaker = await clients().join_audio_room("speaker", name)
    listener = await clients().join_audio_room("listener", name)
    rooms: list[rtc.Room] = []

    async def sdk() -> float:
        t0 = time.perf_counter()
        await speaker.take_seat(0)
        await subscribed_to(listener, "speaker", "microphone")
        took = ms(t0)
        await speaker.leave_seat()
        await listener.remote_participants.wait_for(
            lambda ps: not any(p.identity == "speaker" and p.tracks for p in ps), TIMEOUT)
        return took

    try:
        floor = await _raw_grant_trial(
            Raw(stack, ends.livekit), control,
            livekit_room_name(stack.app.app_id, f"raw-{name}"), rooms, "speaker", "listener",
            ["microphone"])
        return await run_pairs("seat grant: take_seat -> listener subscribed vs "
                               "UpdateParticipant + publish", sdk, floor, pairs=plan.grant,
                               warmup=plan.warmup)
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))
        for s in (host, speaker, listener):
            await s.dispose()


async def stage_pairs(stack: LocalStack, ends: Endpoints, clients: Clients, plan: Plan,
                      control: LiveKitControl) -> Paired:
    name = f"l-{uuid.uuid4().hex[:8]}"
    star = await clients().join_live_stream("star", name, as_host=True)
    fan = await clients().join_live_stream("fan", name)
    rooms: list[rtc.Room] = []

    async def sdk() -> float:
        t0 = time.perf_counter()
        await star.invite_to_stage("fan")
        await subscribed_to(star, "fan", "camera")
        took = ms(t0)
        await star.remove_from_stage("fan")
        await star.remote_participants.wait_for(
            lambda ps: not any(p.identity == "fan" and p.tracks for p in ps), TIMEOUT)
        return took

    try:
        floor = await _raw_grant_trial(
            Raw(stack, ends.livekit), control,
            livekit_room_name(stack.app.app_id, f"raw-{name}"), rooms, "fan", "star",
            ["microphone", "camera"])
        return await run_pairs("stage promotion: invite_to_stage -> host subscribed to the "
                               "camera vs UpdateParticipant + publish", sdk, floor,
                               pairs=plan.grant, warmup=plan.warmup)
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))
        await fan.dispose()
        await star.dispose()


# -- memory ---------------------------------------------------------------------------------
async def memory_rows(clients: Clients, cycles: int) -> list[dict[str, Any]]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    gc.collect()
    before = _rss_mib()
    held = [await clients().join_audio_room(f"m{i}", name) for i in range(20)]
    per_session = (_rss_mib() - before) / len(held)
    for s in held:
        await s.dispose()
    name = f"mc-{uuid.uuid4().hex[:8]}"  # a fresh room, hosted by the seated speaker
    joiner = clients()
    speaker = await clients().join_audio_room("m-speaker", name, as_host=True, seat_count=2)
    await speaker.take_seat(0)
    gc.collect()
    marks = [_rss_mib()]
    for i in range(cycles):
        s = await joiner.join_audio_room(f"cycle{i % 5}", name)
        streams = [s.audio_frames("m-speaker", sample_rate=16_000), s.mixed_audio()]
        await asyncio.wait_for(anext(streams[0]), TIMEOUT)
        await s.dispose()
        assert all(stream.ended for stream in streams)
        if (i + 1) % (cycles // 2) == 0:
            gc.collect()
            marks.append(_rss_mib())
    await speaker.dispose()
    return [{"memory": "RSS per joined audio-room session", "MiB": round(per_session, 2),
             "trials": 20},
            {"memory": f"RSS growth over {cycles} join/leave cycles",
             "MiB": round(marks[-1] - marks[0], 2), "trials": cycles},
            {"memory": f"  of which by cycle {cycles // 2}",
             "MiB": round(marks[1] - marks[0], 2) if len(marks) > 2 else None,
             "trials": cycles // 2}]


async def _measure(stack: LocalStack, plan: Plan) -> dict[str, list[dict[str, Any]]]:
    ends = Endpoints.direct(stack)
    lk = stack.livekit
    control = LiveKitControl(lk.url, lk.api_key, lk.api_secret)
    clients = Clients(stack, ends)
    try:
        paired = [await join_pairs(stack, ends, clients, plan),
                  await visible_pairs(stack, ends, clients, plan),
                  await seat_pairs(stack, ends, clients, plan, control),
                  await stage_pairs(stack, ends, clients, plan, control)]
        call, sdk_marks, raw_marks = await call_pairs(stack, ends, clients, plan)
        paired.append(call)
        memory = await memory_rows(clients, plan.cycles)
    finally:
        clients.dispose()
        await control.aclose()
    return {"SDK vs raw floor (medians, interquartile ranges, ratio per pair)":
            [p.row() for p in paired],
            "where call setup's time goes (SDK trials, then raw)":
            milestone_rows("SDK", sdk_marks) + milestone_rows("raw", raw_marks),
            "memory": memory}


def bench_stack() -> LocalStack:
    """A local stack with no rate limits (a benchmark mints and asks far above them)."""
    return LocalStack(apps=[AppConfig("bench-s", "bench-s-key")], token_rate="0/1",
                      read_rate="0/1", mutate_rate="0/1")


def run(plan: Plan | None = None) -> dict[str, list[dict[str, Any]]]:
    with bench_stack() as stack:
        return asyncio.run(_measure(stack, plan or Plan()))
