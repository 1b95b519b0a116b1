"""What the SDK costs over raw LiveKit, measured side by side in one run on a real stack.

* join: ``join_audio_room`` (token mint + connect + first state) vs ``rtc.Room.connect``
  with a pre-minted token;
* seat grant: ``take_seat()`` until a listener is subscribed to the new microphone track,
  vs the raw floor: ``UpdateParticipant`` via livekit-api, then publish, until subscribed;
* stage promotion: ``invite_to_stage()`` until the host is subscribed to the camera, vs the
  same raw floor with microphone + camera;
* call setup: ``start()`` -> callee ``accept()`` -> both subscribed to each other's
  microphone, vs two raw rooms connecting and publishing;
* memory: resident set per joined session, and its growth over 200 join/leave cycles;
  every cycle also hears the room (a seated speaker's audio frames until the first one
  arrives, and the mix), so the frame streams and their native rtc streams are covered.

Medians over repeated trials. RSS (not tracemalloc) because most of a LiveKit session's
memory lives in the Rust FFI library, which tracemalloc cannot see.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.rtc.room import EventTypes

from adapters.livekit.events import PUBLISH_SOURCES
from stream_core.names import livekit_room_name

from stream_core.engine.settings import AppConfig
from stream_engine.livekit_control import LiveKitControl, mint_token
from stream_devstack.stack import LocalStack
from stream_core import UTDSession, UTDStreamClient, UTDStreamType

__all__ = ["TITLE", "run"]

TITLE = "SDK vs raw LiveKit (real engine + livekit-server, loopback; medians)"
TIMEOUT = 20.0


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource
    return pages * resource.getpagesize() / 2**20


async def _event(room: rtc.Room, name: EventTypes, check: Callable[..., bool]) -> asyncio.Event:
    flag = asyncio.Event()

    def handler(*args: Any) -> None:
        if check(*args):
            flag.set()

    room.on(name, handler)
    return flag


async def _subscribed_to(session: UTDSession, identity: str, source: str) -> None:
    await session.remote_participants.wait_for(
        lambda ps: any(p.identity == identity and any(t.source == source and t.subscribed
                                                      for t in p.tracks) for p in ps),
        TIMEOUT, what=f"{identity}'s {source}")


class _Raw:
    """Raw livekit.rtc + livekit-api, the floor the SDK is compared with."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def token(self, room: str, identity: str, *, publish: bool, sources: list[str]) -> str:
        lk = self.stack.livekit
        return mint_token(lk.api_key, lk.api_secret, identity=identity, room=room,
                          can_publish=publish, can_publish_sources=sources, ttl_seconds=600)

    async def connect(self, room: str, identity: str, *, publish: bool = False,
                      sources: list[str] | None = None) -> rtc.Room:
        r = rtc.Room()
        await r.connect(self.stack.livekit.url,
                        self.token(room, identity, publish=publish, sources=sources or []),
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


    async def grant_floor(self, control: LiveKitControl, room: str, publisher: str,
                          watcher: str, sources: list[str], trials: int,
                          record: Callable[[str, float], None], label: str) -> None:
        """The raw floor of a grant: ``UpdateParticipant``, the publisher sees its permission
        and publishes ``sources``, until ``watcher`` is subscribed to the last of them."""
        pub = await self.connect(room, publisher)
        sub = await self.connect(room, watcher)
        watched = _SOURCES[sources[-1]]
        for _ in range(trials):
            got = await _event(sub, "track_subscribed", _subscribed(publisher, watched))
            granted = await _event(pub, "participant_permissions_changed",
                                   lambda p, perm: p.identity == publisher and perm.can_publish)
            t0 = time.perf_counter()
            await control.update_permissions(room, publisher, can_publish=True, sources=sources)
            await asyncio.wait_for(granted.wait(), TIMEOUT)
            await asyncio.gather(*(self.publish(pub, source) for source in sources))
            await asyncio.wait_for(got.wait(), TIMEOUT)
            record(label, t0)
            await control.update_permissions(room, publisher, can_publish=False, sources=[])
            for publication in list(pub.local_participant.track_publications.values()):
                await pub.local_participant.unpublish_track(publication.sid)
        await pub.disconnect()
        await sub.disconnect()


_SOURCES = PUBLISH_SOURCES


def _subscribed(identity: str, source: rtc.TrackSource.ValueType) -> Callable[..., bool]:
    return lambda track, pub, participant: (participant.identity == identity
                                           and pub.source == source)


async def _measure(stack: LocalStack, trials: int, cycles: int) -> list[dict[str, Any]]:
    raw = _Raw(stack)
    app = stack.app
    lk = stack.livekit
    control = LiveKitControl(lk.url, lk.api_key, lk.api_secret)
    clients: list[UTDStreamClient] = []

    def client() -> UTDStreamClient:
        c = UTDStreamClient(app_id=app.app_id, app_key=app.app_key, base_url=stack.base_url)
        clients.append(c)
        return c

    results: dict[str, list[float]] = {}

    def record(name: str, started: float) -> None:
        results.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    try:
        # -- join ---------------------------------------------------------------------
        for _ in range(trials):
            name = f"j-{uuid.uuid4().hex[:6]}"
            t0 = time.perf_counter()
            s = await client().join_audio_room("joiner", name)
            record("join: SDK", t0)
            await s.dispose()
            token = raw.token(f"raw-{name}", "joiner", publish=False, sources=[])
            t0 = time.perf_counter()
            r = rtc.Room()
            await r.connect(lk.url, token, rtc.RoomOptions(auto_subscribe=True))
            record("join: raw rtc.connect (token pre-minted)", t0)
            await r.disconnect()

        # -- seat grant -----------------------------------------------------------------
        name = f"s-{uuid.uuid4().hex[:6]}"
        host = await client().join_audio_room("host", name, as_host=True, seat_count=4)
        speaker = await client().join_audio_room("speaker", name)
        listener = await client().join_audio_room("listener", name)
        for _ in range(trials):
            t0 = time.perf_counter()
            await speaker.take_seat(0)
            await _subscribed_to(listener, "speaker", "microphone")
            record("seat grant: SDK take_seat -> listener subscribed", t0)
            await speaker.leave_seat()
            await listener.remote_participants.wait_for(
                lambda ps: not any(p.identity == "speaker" and p.tracks for p in ps), TIMEOUT)
        await raw.grant_floor(control, livekit_room_name(app.app_id, f"raw-{name}"), "speaker", "listener",
                              ["microphone"], trials, record,
                              "seat grant: raw UpdateParticipant + publish -> subscribed")
        for s in (host, speaker, listener):
            await s.dispose()

        # -- stage promotion ------------------------------------------------------------
        name = f"l-{uuid.uuid4().hex[:6]}"
        star = await client().join_live_stream("star", name, as_host=True)
        fan = await client().join_live_stream("fan", name)
        for _ in range(trials):
            t0 = time.perf_counter()
            await star.invite_to_stage("fan")
            await _subscribed_to(star, "fan", "camera")
            record("stage promotion: SDK invite_to_stage -> host subscribed to camera", t0)
            await star.remove_from_stage("fan")
            await star.remote_participants.wait_for(
                lambda ps: not any(p.identity == "fan" and p.tracks for p in ps), TIMEOUT)
        await raw.grant_floor(control, livekit_room_name(app.app_id, f"raw-{name}"), "fan", "star",
                              ["microphone", "camera"], trials, record,
                              "stage promotion: raw UpdateParticipant + publish -> subscribed")
        await fan.dispose()
        await star.dispose()

        # -- call setup -----------------------------------------------------------------
        for i in range(trials):
            tag = uuid.uuid4().hex[:6]
            a, b = client(), client()
            await a.authenticate(f"a-{tag}")
            await b.authenticate(f"b-{tag}")
            caller = a.call_session(UTDStreamType.AUDIO_CALL)
            callee = b.call_session(UTDStreamType.AUDIO_CALL)
            t0 = time.perf_counter()
            call = await caller.start(f"b-{tag}")
            await callee.accept(call.call_id)
            await asyncio.gather(_subscribed_to(caller, f"b-{tag}", "microphone"),
                                 _subscribed_to(callee, f"a-{tag}", "microphone"))
            record("call setup: SDK start -> accept -> both subscribed", t0)
            await caller.end()
            await callee.dispose()
            await caller.dispose()
            raw_name = f"raw-call-{tag}"
            t0 = time.perf_counter()
            ra, rb = await asyncio.gather(
                raw.connect(raw_name, "a", publish=True, sources=["microphone"]),
                raw.connect(raw_name, "b", publish=True, sources=["microphone"]))
            got_a = await _event(ra, "track_subscribed",
                                 _subscribed("b", rtc.TrackSource.SOURCE_MICROPHONE))
            got_b = await _event(rb, "track_subscribed",
                                 _subscribed("a", rtc.TrackSource.SOURCE_MICROPHONE))
            await asyncio.gather(raw.publish(ra, "microphone"), raw.publish(rb, "microphone"))
            await asyncio.wait_for(asyncio.gather(got_a.wait(), got_b.wait()), TIMEOUT)
            record("call setup: raw two connects + publish -> both subscribed", t0)
            await asyncio.gather(ra.disconnect(), rb.disconnect())

        # -- memory ---------------------------------------------------------------------
        name = f"m-{uuid.uuid4().hex[:6]}"
        gc.collect()
        before = _rss_mib()
        held = [await client().join_audio_room(f"m{i}", name) for i in range(20)]
        per_session = (_rss_mib() - before) / len(held)
        for s in held:
            await s.dispose()
        name = f"mc-{uuid.uuid4().hex[:6]}"  # a fresh room, hosted by the seated speaker
        speaker = await client().join_audio_room("m-speaker", name, as_host=True, seat_count=2)
        await speaker.take_seat(0)
        gc.collect()
        marks = [_rss_mib()]
        for i in range(cycles):
            s = await client().join_audio_room(f"cycle{i % 5}", name)
            streams = [s.audio_frames("m-speaker", sample_rate=16_000), s.mixed_audio()]
            await asyncio.wait_for(anext(streams[0]), TIMEOUT)
            await s.dispose()
            assert all(stream.ended for stream in streams)
            if (i + 1) % (cycles // 2) == 0:
                gc.collect()
                marks.append(_rss_mib())
        await speaker.dispose()
    finally:
        for c in clients:
            c.dispose()
        await control.aclose()

    rows: list[dict[str, Any]] = [
        {"measure": name, "median": round(statistics.median(v), 1), "min": round(min(v), 1),
         "unit": "ms", "trials": len(v)} for name, v in results.items()]
    rows.append({"measure": "memory: RSS per joined audio-room session",
                 "median": round(per_session, 2), "min": None, "unit": "MiB", "trials": 20})
    rows.append({"measure": f"memory: RSS growth over {cycles} join/leave cycles "
                            f"(min = after the first {cycles // 2})",
                 "median": round(marks[-1] - marks[0], 2),
                 "min": round(marks[1] - marks[0], 2) if len(marks) > 2 else None,
                 "unit": "MiB", "trials": cycles})
    return rows


def run(trials: int = 7, cycles: int = 200) -> list[dict[str, Any]]:
    with LocalStack(apps=[AppConfig("bench-s", "bench-s-key")], token_rate="0/1", read_rate="0/1",
                    mutate_rate="0/1") as stack:
        return asyncio.run(_measure(stack, trials, cycles))


