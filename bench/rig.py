"""What every stack benchmark shares: where clients reach the stack, how many pairs to run,
the raw ``livekit.rtc`` floor, the SDK clients of a run, and small waiting helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.rtc.room import EventTypes

from adapters.livekit.events import PUBLISH_SOURCES
from stream_core import UTDSession, UTDStreamClient
from stream_core.ports import ConnectOptions
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import mint_token

__all__ = ["TIMEOUT", "SOURCES", "Endpoints", "Plan", "Raw", "Clients", "ms", "event",
           "room_options",
           "subscribed", "subscribed_to"]

TIMEOUT = 20.0
SOURCES = PUBLISH_SOURCES


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


def room_options() -> rtc.RoomOptions:
    """The room options the SDK connects with by default (dynacast on, as the product's
    API promises): the raw floor asks LiveKit for the same connection, so a ratio measures
    the SDK's own cost. Dynacast alone costs LiveKit ~2.5 ms a connect here (60 pairs of
    raw connects with and without it: medians 54.1 / 51.6 ms, ratio per pair 1.016)."""
    defaults = ConnectOptions()
    return rtc.RoomOptions(auto_subscribe=defaults.auto_subscribe, dynacast=defaults.dynacast)


def ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def event(room: rtc.Room, name: EventTypes, check: Callable[..., bool]) -> asyncio.Event:
    flag = asyncio.Event()

    def handler(*args: Any) -> None:
        if check(*args):
            flag.set()

    room.on(name, handler)
    return flag


def subscribed(identity: str, source: rtc.TrackSource.ValueType) -> Callable[..., bool]:
    return lambda track, pub, participant: (participant.identity == identity
                                           and pub.source == source)


async def subscribed_to(session: UTDSession, identity: str, source: str) -> None:
    await session.remote_participants.wait_for(
        lambda ps: any(p.identity == identity and any(t.source == source and t.subscribed
                                                      for t in p.tracks) for p in ps),
        TIMEOUT, what=f"{identity}'s {source}")


class Raw:
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
                        room_options())
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


class Clients:
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
