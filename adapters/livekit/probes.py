"""Probes of received media: find a remote participant's subscribed track, and measure
what arrives on it (audio level, video frame count).

Why apart from :mod:`adapters.livekit.sources` and :mod:`adapters.livekit.media`: publishing
is what a participant *does*; these only *check* what it receives, for tests and
diagnostics (``LiveKitMedia.remote_audio_rms`` / ``remote_video_frames``, the demo's level
meter). :func:`receive_audio_level` and :func:`count_video_frames` read an
``rtc.AudioStream`` / ``rtc.VideoStream`` for a while and always close it.
:class:`RemoteTrackWaiters` holds the callers waiting for a track to be subscribed; the
adapter wakes them after every rtc event it dispatches.

numpy is used for the RMS: it is a dependency of ``livekit`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from livekit import rtc

from adapters.livekit.events import KIND_NAMES
from stream_core.errors import ErrorCode, UTDStreamException

__all__ = ["RemoteTrackWaiters", "receive_audio_level", "count_video_frames"]


class RemoteTrackWaiters:
    """Callers waiting for a remote track to be subscribed. Each waiter looks again after
    :meth:`wake`, which the adapter calls after every rtc event it dispatches."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"RemoteTrackWaiters(waiting={len(self._waiters)})"

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self) -> None:
        """Return after the next :meth:`wake`."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def track(self, room: Callable[[], rtc.Room], identity: str,
                    kind: rtc.TrackKind.ValueType, timeout: float | None,
                    source: rtc.TrackSource.ValueType | None = None) -> rtc.Track:
        """``identity``'s subscribed track of ``kind`` (and ``source``, if given) in
        ``room()`` (called at each look, so it may raise when the connection is gone),
        within ``timeout`` (``None``: for as long as it takes) or raise ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            participant = room().remote_participants.get(identity)
            for publication in (participant.track_publications.values() if participant else ()):
                if (publication.kind == kind and publication.track is not None
                        and source in (None, publication.source)):
                    return publication.track
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(
                    waiter, None if deadline is None else max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise UTDStreamException(
                    f"no subscribed {KIND_NAMES.get(kind, kind)} track of {identity!r} "
                    f"within {timeout}s", code=ErrorCode.TIMEOUT) from None


async def receive_audio_level(track: rtc.Track, seconds: float = 0.5, *,
                              grace: float = 2.0) -> float:
    """RMS (0..1 of full scale) of ``seconds`` of audio received on a subscribed remote
    audio ``track``, resampled to 48 kHz mono. Reading stops after ``seconds + grace`` of
    wall clock even if fewer frames came; no frames at all gives ``0.0``."""
    stream = rtc.AudioStream.from_track(track=track, sample_rate=48_000, num_channels=1)
    wanted = int(48_000 * seconds)
    chunks: list[np.ndarray] = []
    got = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds + grace
    try:
        while got < wanted and (remaining := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(stream.__anext__(), remaining)
            except (TimeoutError, StopAsyncIteration):
                break
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            chunks.append(samples)
            got += samples.size
    finally:
        await stream.aclose()
    if not chunks:
        return 0.0
    pcm = np.concatenate(chunks)[:wanted].astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(pcm * pcm)))


async def count_video_frames(track: rtc.Track, seconds: float = 0.5) -> int:
    """How many frames a subscribed remote video ``track`` delivers in ``seconds``."""
    stream = rtc.VideoStream.from_track(track=track)
    count = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(stream.__anext__(), remaining)
            except (TimeoutError, StopAsyncIteration):
                break
            count += 1
    finally:
        await stream.aclose()
    return count
