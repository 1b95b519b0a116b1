"""What a LiveKit participant hears and sees, as core frames: the feeds behind the
:class:`~stream_core.frames.FrameStream`s of :class:`~adapters.livekit.media.LiveKitMedia`.

Rules of this file: each feed is one coroutine, run by the adapter as a tracked task, that
reads ``livekit.rtc`` and pushes core frames into one stream. rtc does the work:
``rtc.AudioStream`` resamples and re-channels, ``rtc.VideoStream`` converts the pixel format,
``rtc.AudioMixer`` mixes. A feed always closes what it opened (``aclose`` in ``finally``),
whether it ends because the track ended or because the adapter cancelled it (the stream
ended: participant left, track unpublished, disconnect, or the reader closed it); then it
ends its stream.

Why apart from :mod:`adapters.livekit.probes`: those are measurements for tests; these are
the product's receiving side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

from livekit import rtc

from stream_core.frames import FrameStream, UTDAudioFrame, UTDVideoFormat, UTDVideoFrame

__all__ = ["feed_audio", "feed_video", "feed_mix", "BUFFER_TYPES"]

BUFFER_TYPES = {UTDVideoFormat.RGBA: rtc.VideoBufferType.RGBA,
                UTDVideoFormat.I420: rtc.VideoBufferType.I420}


class _Position:
    """Timestamps by samples delivered (see ``UTDAudioFrame``)."""

    def __init__(self, sample_rate: int) -> None:
        self.rate, self.samples = sample_rate, 0

    def frame(self, frame: rtc.AudioFrame) -> UTDAudioFrame:
        at = self.samples / self.rate
        self.samples += frame.samples_per_channel
        return UTDAudioFrame(bytes(frame.data), frame.sample_rate, frame.num_channels,
                             frame.samples_per_channel, at)


async def feed_audio(stream: FrameStream[UTDAudioFrame], track: Awaitable[rtc.Track],
                     sample_rate: int, channels: int) -> None:
    """Wait for the subscribed ``track``, then push its audio at this format."""
    try:
        audio = rtc.AudioStream.from_track(track=await track, sample_rate=sample_rate,
                                           num_channels=channels)
        try:
            position = _Position(sample_rate)
            async for event in audio:
                stream.push(position.frame(event.frame))
        finally:
            await audio.aclose()
    finally:
        stream.end("track ended")


async def feed_video(stream: FrameStream[UTDVideoFrame], track: Awaitable[rtc.Track],
                     format: UTDVideoFormat, max_fps: float | None) -> None:
    """Wait for the subscribed ``track``, then push its frames (at most ``max_fps``)."""
    period_us = 1e6 / max_fps if max_fps else 0.0
    try:
        video = rtc.VideoStream.from_track(track=await track, format=BUFFER_TYPES[format])
        try:
            last: int | None = None
            async for event in video:
                if last is not None and event.timestamp_us - last < period_us:
                    continue
                last = event.timestamp_us
                frame = event.frame
                stream.push(UTDVideoFrame(bytes(frame.data), frame.width, frame.height, format,
                                          event.timestamp_us / 1e6))
        finally:
            await video.aclose()
    finally:
        stream.end("track ended")


async def _frames_of(audio: rtc.AudioStream) -> AsyncGenerator[rtc.AudioFrame, None]:
    async for event in audio:
        yield event.frame


async def feed_mix(stream: FrameStream[UTDAudioFrame],
                   microphones: Callable[[], dict[str, rtc.Track]],
                   changed: Callable[[], Awaitable[None]],
                   sample_rate: int, channels: int) -> None:
    """Mix every subscribed remote microphone (``microphones()``: by track sid, empty when
    disconnected; looked at again after each ``changed()``) with ``rtc.AudioMixer``, in
    10 ms frames."""
    mixer = rtc.AudioMixer(sample_rate, channels, blocksize=sample_rate // 100)
    inputs: dict[str, tuple[rtc.AudioStream, AsyncGenerator[rtc.AudioFrame, None]]] = {}

    async def follow() -> None:
        while True:
            current = microphones()
            for sid in set(inputs) - set(current):
                audio, frames = inputs.pop(sid)
                mixer.remove_stream(frames)  # cancels its pending read, which ends ``frames``
                await audio.aclose()
            for sid in set(current) - set(inputs):
                audio = rtc.AudioStream.from_track(track=current[sid], sample_rate=sample_rate,
                                                   num_channels=channels)
                inputs[sid] = (audio, _frames_of(audio))
                mixer.add_stream(inputs[sid][1])
            await changed()

    async def read() -> None:
        position = _Position(sample_rate)
        async for frame in mixer:
            stream.push(position.frame(frame))

    try:
        following = asyncio.ensure_future(follow())
        try:
            await read()
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    finally:
        try:
            await mixer.aclose()  # awaits the pending reads: no generator is running now
        finally:
            for audio, frames in inputs.values():
                await frames.aclose()
                await audio.aclose()
            stream.end("mix ended")
