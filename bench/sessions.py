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
from dataclasses import dataclass
from typing import Any

import requests
from livekit import rtc
from livekit.rtc.room import EventTypes

from adapters.livekit.events import PUBLISH_SOURCES
from bench.paired import Paired, quartiles, run_pairs, spread
from stream_core import UTDSession, UTDStreamClient, UTDStreamType
from stream_core.engine.settings import AppConfig
from stream_core.names import livekit_room_name
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import LiveKitControl, mint_token

__all__ = ["TITLE", "Endpoints", "Plan", "join_pairs", "call_pairs", "run"]

TITLE = "SDK vs raw LiveKit (real engine + livekit-server, loopback; paired trials)"
TIMEOUT = 20.0
_SOURCES = PUBLISH_SOURCES


@dataclass(frozen=True)
class Endpoints:
    """Where clients reach the stack: the engine (``engine``, for the SDK) and LiveKit
    (``livekit``, for raw rooms; the SDK gets it from the engine). Directly, or through a
    latency proxy (:mod:`bench.wan`). ``metrics`` is the engine's, reached directly."""

    engine: str
    livekit: str
    metrics: str

    @classmethod
    def direct(cls, stack: LocalStack) -> Endpoints:
        return cls(stack.base_url, stack.livekit.url, f"{stack.base_url}/metrics")


@dataclass(frozen=True)
class Plan:
    """Pairs kept per comparison (after ``warmup`` discarded ones) and memory cycles."""

    join: int = 81
    visible: int = 9  # a raw joiner takes ~3 s to be shown to others (LiveKit v1.13.5)
    grant: int = 25
    call: int = 41
    warmup: int = 3
    cycles: int = 200


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource
    return pages * resource.getpagesize() / 2**20


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _event(room: rtc.Room, name: EventTypes, check: Callable[..., bool]) -> asyncio.Event:
    flag = asyncio.Event()

    def handler(*args: Any) -> None:
        if check(*args):
            flag.set()

    room.on(name, handler)
    return flag


def _subscribed(identity: str, source: rtc.TrackSource.ValueType) -> Callable[..., bool]:
    return lambda track, pub, participant: (participant.identity == identity
                                           and pub.source == source)


async def _subscribed_to(session: UTDSession, identity: str, source: str) -> None:
    await session.remote_participants.wait_for(
        lambda ps: any(p.identity == identity and any(t.source == source and t.subscribed
                                                      for t in p.tracks) for p in ps),
        TIMEOUT, what=f"{identity}'s {source}")


class _Raw:
    """Raw livekit.rtc + livekit-api, the floor the SDK is compared with."""

    def __init__(self, stack: LocalStack, url: str) -> None:
        self.stack = stack
        self.url = url

    def token(self, room: str, identity: str, *, publish: bool = False,
              sources: list[str] | None = None) -> str:
        lk = self.stack.livekit
        return mint_token(lk.api_key, lk.api_secret, identity=identity, room=room,
                          can_publish=publish, can_publish_sources=sources or [],
                          ttl_seconds=600)

    async def connect(self, room: str, identity: str, *, publish: bool = False,
                      sources: list[str] | None = None) -> rtc.Room:
        r = rtc.Room()
        await r.connect(self.url, self.token(room, identity, publish=publish, sources=sources),
                        rtc.RoomOptions(auto_subscribe=True))
        return r

    @staticmethod
    async def publish(room: rtc.Room, source: str) -> None:
        if source == "microphone":
            audio = rtc.AudioSource(48_000, 1)
            track: rtc.LocalTrack = rtc.LocalAudioTrack.create_audio_track("mic", audio)
            kind = rtc.TrackSource.SOURCE_MICROPHONE
        else:
            video = rtc.VideoSource(320, 240)
            track = rtc.LocalVideoTrack.create_video_track("cam", video)
            kind = rtc.TrackSource.SOURCE_CAMERA
        await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=kind))


class _Clients:
    """Every client made for a run, disposed at its end."""

    def __init__(self, stack: LocalStack, ends: Endpoints) -> None:
        self.app, self.ends = stack.app, ends
        self.made: list[UTDStreamClient] = []

    def __call__(self) -> UTDStreamClient:
        c = UTDStreamClient(app_id=self.app.app_id, app_key=self.app.app_key,
                            base_url=self.ends.engine)
        self.made.append(c)
        return c

    def dispose(self) -> None:
        for c in self.made:
            c.dispose()


# -- join ---------------------------------------------------------------------------------
async def join_pairs(stack: LocalStack, ends: Endpoints, clients: _Clients, plan: Plan
                     ) -> Paired:
    """One client (its engine connection pooled, as an app's is), a new room each trial."""
    raw, joiner = _Raw(stack, ends.livekit), clients()

    async def sdk() -> float:
        name = f"j-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        session = await joiner.join_audio_room("joiner", name)
        took = _ms(t0)
        await session.dispose()
        return took

    async def floor() -> float:
        token = raw.token(f"raw-j-{uuid.uuid4().hex[:8]}", "joiner")
        room = rtc.Room()
        t0 = time.perf_counter()
        await room.connect(ends.livekit, token, rtc.RoomOptions(auto_subscribe=True))
        took = _ms(t0)
        await room.disconnect()
        return took

    return await run_pairs("join: SDK mint + connect + first state vs rtc connect "
                           "(token pre-minted)", sdk, floor, pairs=plan.join,
                           warmup=plan.warmup)


async def visible_pairs(stack: LocalStack, ends: Endpoints, clients: _Clients, plan: Plan
                        ) -> Paired:
    """A raw watcher sits in each room; a new identity joins each trial."""
    raw = _Raw(stack, ends.livekit)
    name = f"v-{uuid.uuid4().hex[:8]}"
    host = await clients().join_audio_room("host", name, as_host=True, seat_count=2)
    sdk_watcher = await raw.connect(livekit_room_name(stack.app.app_id, name), "watcher")
    raw_room = f"raw-v-{uuid.uuid4().hex[:8]}"
    raw_watcher = await raw.connect(raw_room, "watcher")
    joiner = clients()
    serial = iter(range(10**6))

    async def sdk() -> float:
        who = f"s{next(serial)}"
        seen = _event(sdk_watcher, "participant_connected", lambda p: p.identity == who)
        t0 = time.perf_counter()
        session = await joiner.join_audio_room(who, name)
        await asyncio.wait_for(seen.wait(), TIMEOUT)
        took = _ms(t0)
        await session.dispose()
        return took

    async def floor() -> float:
        who = f"r{next(serial)}"
        token = raw.token(raw_room, who)
        seen = _event(raw_watcher, "participant_connected", lambda p: p.identity == who)
        room = rtc.Room()
        t0 = time.perf_counter()
        await room.connect(ends.livekit, token, rtc.RoomOptions(auto_subscribe=True))
        await asyncio.wait_for(seen.wait(), TIMEOUT)
        took = _ms(t0)
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
async def _raw_grant_trial(raw: _Raw, control: LiveKitControl, room: str, rooms: list[rtc.Room],
                           publisher: str, watcher: str, sources: list[str]) -> Callable[
                               [], Any]:
    """The raw floor of a grant: ``UpdateParticipant``, the publisher sees its permission
    and publishes ``sources``, until ``watcher`` is subscribed to the last of them."""
    pub = await raw.connect(room, publisher)
    sub = await raw.connect(room, watcher)
    rooms += [pub, sub]
    watched = _SOURCES[sources[-1]]

    async def floor() -> float:
        got = _event(sub, "track_subscribed", _subscribed(publisher, watched))
        granted = _event(pub, "participant_permissions_changed",
                         lambda p, perm: p.identity == publisher and perm.can_publish)
        t0 = time.perf_counter()
        await control.update_permissions(room, publisher, can_publish=True, sources=sources)
        await asyncio.wait_for(granted.wait(), TIMEOUT)
        await asyncio.gather(*(raw.publish(pub, source) for source in sources))
        await asyncio.wait_for(got.wait(), TIMEOUT)
        took = _ms(t0)
        gone = _event(sub, "track_unpublished",
                      lambda pub_, participant: participant.identity == publisher
                      and pub_.source == watched)
        await control.update_permissions(room, publisher, can_publish=False, sources=[])
        for publication in list(pub.local_participant.track_publications.values()):
            await pub.local_participant.unpublish_track(publication.sid)
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        return took

    return floor


async def seat_pairs(stack: LocalStack, ends: Endpoints, clients: _Clients, plan: Plan,
                     control: LiveKitControl) -> Paired:
    name = f"s-{uuid.uuid4().hex[:8]}"
    host = await clients().join_audio_room("host", name, as_host=True, seat_count=4)
    speaker = await clients().join_audio_room("speaker", name)
    listener = await clients().join_audio_room("listener", name)
    rooms: list[rtc.Room] = []

    async def sdk() -> float:
        t0 = time.perf_counter()
        await speaker.take_seat(0)
        await _subscribed_to(listener, "speaker", "microphone")
        took = _ms(t0)
        await speaker.leave_seat()
        await listener.remote_participants.wait_for(
            lambda ps: not any(p.identity == "speaker" and p.tracks for p in ps), TIMEOUT)
        return took

    try:
        floor = await _raw_grant_trial(
            _Raw(stack, ends.livekit), control,
            livekit_room_name(stack.app.app_id, f"raw-{name}"), rooms, "speaker", "listener",
            ["microphone"])
        return await run_pairs("seat grant: take_seat -> listener subscribed vs "
                               "UpdateParticipant + publish", sdk, floor, pairs=plan.grant,
                               warmup=plan.warmup)
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))
        for s in (host, speaker, listener):
            await s.dispose()


async def stage_pairs(stack: LocalStack, ends: Endpoints, clients: _Clients, plan: Plan,
                      control: LiveKitControl) -> Paired:
    name = f"l-{uuid.uuid4().hex[:8]}"
    star = await clients().join_live_stream("star", name, as_host=True)
    fan = await clients().join_live_stream("fan", name)
    rooms: list[rtc.Room] = []

    async def sdk() -> float:
        t0 = time.perf_counter()
        await star.invite_to_stage("fan")
        await _subscribed_to(star, "fan", "camera")
        took = _ms(t0)
        await star.remove_from_stage("fan")
        await star.remote_participants.wait_for(
            lambda ps: not any(p.identity == "fan" and p.tracks for p in ps), TIMEOUT)
        return took

    try:
        floor = await _raw_grant_trial(
            _Raw(stack, ends.livekit), control,
            livekit_room_name(stack.app.app_id, f"raw-{name}"), rooms, "fan", "star",
            ["microphone", "camera"])
        return await run_pairs("stage promotion: invite_to_stage -> host subscribed to the "
                               "camera vs UpdateParticipant + publish", sdk, floor,
                               pairs=plan.grant, warmup=plan.warmup)
    finally:
        await asyncio.gather(*(r.disconnect() for r in rooms))
        await fan.dispose()
        await star.dispose()


# -- calls ----------------------------------------------------------------------------------
def _long_polls_open(metrics_url: str) -> int:
    for line in requests.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith("utd_engine_long_polls_open"):
            return int(float(line.split()[-1]))
    raise RuntimeError("the engine's /metrics has no utd_engine_long_polls_open")


async def _callee_waiting(metrics_url: str) -> None:
    """Until the callee's long-poll is open at the engine (bounded; before the clock)."""
    deadline = time.monotonic() + TIMEOUT
    while await asyncio.to_thread(_long_polls_open, metrics_url) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError("the callee's long-poll never reached the engine")
        await asyncio.sleep(0.005)


Milestones = dict[str, list[float]]


async def call_pairs(stack: LocalStack, ends: Endpoints, clients: _Clients, plan: Plan
                     ) -> tuple[Paired, Milestones, Milestones]:
    """Call setup pairs, and the milestones of every kept trial (ms from its start)."""
    raw = _Raw(stack, ends.livekit)
    sdk_marks: list[dict[str, float]] = []
    raw_marks: list[dict[str, float]] = []

    async def sdk() -> float:
        tag = uuid.uuid4().hex[:8]
        a, b = clients(), clients()
        await a.authenticate(f"a-{tag}")
        await b.authenticate(f"b-{tag}")
        caller = a.call_session(UTDStreamType.AUDIO_CALL)
        callee = b.call_session(UTDStreamType.AUDIO_CALL)
        incoming = asyncio.ensure_future(b.next_incoming_call(timeout=TIMEOUT))
        await _callee_waiting(ends.metrics)
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        def at(name: str) -> Callable[[Any], None]:
            def mark(value: Any) -> None:
                if value:
                    marks.setdefault(name, _ms(t0))
            return mark

        def sees(name: str, session: UTDSession, other: str, subscribed: bool) -> None:
            session.remote_participants.listen(lambda ps: at(name)(any(
                p.identity == other and any(t.source == "microphone"
                                            and (t.subscribed or not subscribed)
                                            for t in p.tracks) for p in ps)))

        caller.call_id.listen(at("1 caller: call created (engine answer)"))
        incoming.add_done_callback(lambda _: at("2 callee: call delivered (long-poll)")(True))
        callee.call_id.listen(at("3 callee: accepted (engine answer)"))
        caller.connected.listen(at("4 caller: connected"))
        callee.connected.listen(at("5 callee: connected"))
        sees("6 callee sees the caller's mic published", callee, f"a-{tag}", False)
        sees("7 caller sees the callee's mic published", caller, f"b-{tag}", False)
        sees("8 callee subscribed to the caller", callee, f"a-{tag}", True)
        sees("9 caller subscribed to the callee", caller, f"b-{tag}", True)

        async def answer() -> None:
            call = await incoming
            assert call is not None, "no incoming call"
            await callee.accept(call.call_id)

        await asyncio.gather(caller.start(f"b-{tag}"), answer(),
                             _subscribed_to(caller, f"b-{tag}", "microphone"),
                             _subscribed_to(callee, f"a-{tag}", "microphone"))
        took = _ms(t0)
        sdk_marks.append(marks)
        await caller.end()
        await callee.dispose()
        await caller.dispose()
        return took

    async def floor() -> float:
        room = f"raw-call-{uuid.uuid4().hex[:8]}"
        tokens = {who: raw.token(room, who, publish=True, sources=["microphone"])
                  for who in ("a", "b")}
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        async def party(who: str, other: str) -> rtc.Room:
            r = rtc.Room()
            got = _event(r, "track_subscribed",
                         _subscribed(other, rtc.TrackSource.SOURCE_MICROPHONE))
            await r.connect(ends.livekit, tokens[who], rtc.RoomOptions(auto_subscribe=True))
            marks.setdefault(f"{who}: connected", _ms(t0))
            await raw.publish(r, "microphone")
            marks.setdefault(f"{who}: published", _ms(t0))
            await asyncio.wait_for(got.wait(), TIMEOUT)
            marks.setdefault(f"{who}: subscribed to {other}", _ms(t0))
            return r

        rooms = await asyncio.gather(party("a", "b"), party("b", "a"))
        took = _ms(t0)
        raw_marks.append(marks)
        await asyncio.gather(*(r.disconnect() for r in rooms))
        return took

    paired = await run_pairs("call setup: start + long-poll + accept -> both subscribed vs "
                             "two rtc connects + publish", sdk, floor, pairs=plan.call,
                             warmup=plan.warmup)
    return paired, _kept(sdk_marks, plan.warmup), _kept(raw_marks, plan.warmup)


def _kept(marks: list[dict[str, float]], warmup: int) -> Milestones:
    out: Milestones = {}
    for trial in marks[warmup:]:
        for name, value in trial.items():
            out.setdefault(name, []).append(value)
    return out


def milestone_rows(side: str, marks: Milestones) -> list[dict[str, Any]]:
    return [{"call setup milestone": f"{side}: {name}",
             "median ms from start": round(quartiles(values)[1], 1),
             "IQR": spread(values, 0), "trials": len(values)}
            for name, values in sorted(marks.items(), key=lambda kv: quartiles(kv[1])[1])]


# -- memory ---------------------------------------------------------------------------------
async def memory_rows(clients: _Clients, cycles: int) -> list[dict[str, Any]]:
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
            {"memory": f"  of which after the first {cycles // 2}",
             "MiB": round(marks[1] - marks[0], 2) if len(marks) > 2 else None,
             "trials": cycles // 2}]


async def _measure(stack: LocalStack, plan: Plan) -> dict[str, list[dict[str, Any]]]:
    ends = Endpoints.direct(stack)
    lk = stack.livekit
    control = LiveKitControl(lk.url, lk.api_key, lk.api_secret)
    clients = _Clients(stack, ends)
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
