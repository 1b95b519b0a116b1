"""What a headless LiveKit participant publishes as its microphone and camera.

A headless client has no devices, so :class:`adapters.livekit.media.LiveKitMedia` publishes
*real* WebRTC tracks fed by a pluggable **feed**. A feed knows its format and, in
:meth:`run`, pushes frames into the ``rtc.AudioSource`` / ``rtc.VideoSource`` the adapter made
for one publication, until the adapter cancels it (microphone/camera off, revoke, disconnect).
The adapter owns the rtc source, the track and the task running the feed; a feed owns only
its frames, so one feed object may serve several publications in turn (never two at once).

Audio feeds (16-bit PCM, as ``rtc.AudioFrame`` wants):

* :class:`ToneAudio` -- the default: a 440 Hz sine, 48 kHz mono, 10 ms frames, paced in real
  time. Audible on the other side, which is what media tests check.
* :class:`SilentAudio` -- digital silence (a published but quiet microphone).
* :class:`WavAudio` -- a WAV file (stdlib :mod:`wave`). Decision: 16-bit PCM only, mono or
  stereo, at **any** rate from 8 to 48 kHz; it is published at the file's own rate and
  channel count, because ``rtc.AudioSource`` accepts those and WebRTC resamples to the codec
  rate (verified: a 16 kHz stereo source arrives at a 48 kHz mono subscriber at full level).
  Other sample widths, more channels or other rates raise :class:`ValueError` at construction,
  so a bad file fails when the app configures it, not mid-call. The file is read into memory
  (meant for prompts and test clips) and loops by default.
* :class:`PushedAudio` -- the app pushes PCM with ``push(pcm)``; frames pushed while no track
  is published are dropped.

Video feeds: :class:`GeneratedVideo` (a moving RGBA test pattern, 320x240 at 15 fps by
default) and :class:`PushedVideo` (the app pushes frames).

The receiving side (what a participant hears and sees) is in
:mod:`adapters.livekit.probes`.

numpy is used for frame synthesis: it is a dependency of ``livekit`` itself.
"""

from __future__ import annotations

import asyncio
import math
import os
import wave
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
from livekit import rtc

__all__ = [
    "AudioFeed", "VideoFeed", "AudioSourceFactory", "VideoSourceFactory",
    "ToneAudio", "SilentAudio", "WavAudio", "PushedAudio", "GeneratedVideo", "PushedVideo",
    "FRAME_SECONDS",
]

#: Length of every generated audio frame (WebRTC's native 10 ms).
FRAME_SECONDS = 0.01


@runtime_checkable
class AudioFeed(Protocol):
    """Audio for one published microphone track."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def num_channels(self) -> int: ...

    async def run(self, source: rtc.AudioSource) -> None:
        """Push frames into ``source`` until cancelled (returning early leaves the track
        published but without frames)."""
        ...


@runtime_checkable
class VideoFeed(Protocol):
    """Video for one published camera track."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...

    async def run(self, source: rtc.VideoSource) -> None:
        """Push frames into ``source`` until cancelled."""
        ...


#: Called each time the microphone is enabled; returns the feed of that publication.
AudioSourceFactory = Callable[[], AudioFeed]
#: Called each time the camera is enabled; returns the feed of that publication.
VideoSourceFactory = Callable[[], VideoFeed]


async def _paced(period: float, tick: Callable[[int], object]) -> None:
    """Call ``tick(n)`` every ``period`` seconds of wall clock, awaiting it if it returns an
    awaitable. After a stall (a busy loop) the schedule restarts instead of bursting."""
    loop = asyncio.get_running_loop()
    start, n = loop.time(), 0
    while True:
        result = tick(n)
        if asyncio.iscoroutine(result):
            await result
        n += 1
        delay = start + n * period - loop.time()
        if delay < -0.2:
            start, n, delay = loop.time(), 0, 0.0
        await asyncio.sleep(max(delay, 0.0))


class ToneAudio:
    """A continuous sine tone (default 440 Hz at 0.3 full scale, 48 kHz mono)."""

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3,
                 sample_rate: int = 48_000) -> None:
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError("amplitude must be within 0..1 of full scale")
        self.frequency = frequency
        self.amplitude = amplitude
        self._rate = sample_rate

    def __repr__(self) -> str:
        return f"ToneAudio({self.frequency:g} Hz, amplitude={self.amplitude:g})"

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def num_channels(self) -> int:
        return 1

    async def run(self, source: rtc.AudioSource) -> None:
        per_frame = int(self._rate * FRAME_SECONDS)
        scale = self.amplitude * 32767.0
        step = 2.0 * math.pi * self.frequency / self._rate

        async def tick(n: int) -> None:
            phase = (np.arange(per_frame) + n * per_frame) * step
            samples = (scale * np.sin(phase)).astype(np.int16)
            await source.capture_frame(rtc.AudioFrame(samples.tobytes(), self._rate, 1,
                                                      per_frame))
        await _paced(FRAME_SECONDS, tick)


class SilentAudio:
    """Digital silence at 48 kHz mono: a published microphone nobody hears."""

    sample_rate = 48_000
    num_channels = 1

    def __repr__(self) -> str:
        return "SilentAudio()"

    async def run(self, source: rtc.AudioSource) -> None:
        frame = rtc.AudioFrame.create(self.sample_rate, 1, int(self.sample_rate * FRAME_SECONDS))
        await _paced(FRAME_SECONDS, lambda _: source.capture_frame(frame))


class WavAudio:
    """A 16-bit PCM WAV file, published at its own rate and channel count (see module doc)."""

    def __init__(self, path: str | os.PathLike[str], *, loop: bool = True) -> None:
        try:
            with wave.open(os.fspath(path), "rb") as wav:
                width, channels = wav.getsampwidth(), wav.getnchannels()
                rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"{path}: not a PCM WAV file ({exc})") from exc
        if width != 2:
            raise ValueError(f"{path}: {8 * width}-bit samples; only 16-bit PCM is supported")
        if channels not in (1, 2):
            raise ValueError(f"{path}: {channels} channels; only mono or stereo is supported")
        if not 8_000 <= rate <= 48_000:
            raise ValueError(f"{path}: {rate} Hz; supported rates are 8000..48000 Hz")
        if not pcm:
            raise ValueError(f"{path}: the file has no audio frames")
        self.path = os.fspath(path)
        self.loop = loop
        self._rate, self._channels, self._pcm = rate, channels, pcm

    def __repr__(self) -> str:
        return f"WavAudio({self.path!r}, {self._rate} Hz x{self._channels}, loop={self.loop})"

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def num_channels(self) -> int:
        return self._channels

    async def run(self, source: rtc.AudioSource) -> None:
        per_frame = int(self._rate * FRAME_SECONDS)
        frame_bytes = per_frame * self._channels * 2
        # Pad to whole frames so every capture is exactly 10 ms.
        pcm = self._pcm + bytes(-len(self._pcm) % frame_bytes)
        frames = len(pcm) // frame_bytes

        async def tick(n: int) -> None:
            if n >= frames and not self.loop:
                raise _FeedEnded
            offset = (n % frames) * frame_bytes
            await source.capture_frame(rtc.AudioFrame(pcm[offset:offset + frame_bytes],
                                                      self._rate, self._channels, per_frame))
        try:
            await _paced(FRAME_SECONDS, tick)
        except _FeedEnded:
            return


class _FeedEnded(Exception):
    """A non-looping file feed reached its end."""


class PushedAudio:
    """Audio the app pushes: interleaved 16-bit little-endian PCM at this feed's format.

    :meth:`push` is synchronous and never blocks; ``rtc.AudioSource`` paces playout (it
    buffers up to ~1 s). At most ``max_buffered`` seconds wait here; older audio is dropped
    (counted in :attr:`dropped_bytes`), as is audio pushed while nothing is published.
    """

    def __init__(self, sample_rate: int = 48_000, num_channels: int = 1, *,
                 max_buffered: float = 2.0) -> None:
        self._rate, self._channels = sample_rate, num_channels
        self._limit = int(max_buffered * sample_rate) * num_channels * 2
        self._buffer = bytearray()
        self._arrived: asyncio.Event | None = None
        self.dropped_bytes = 0

    def __repr__(self) -> str:
        return (f"PushedAudio({self._rate} Hz x{self._channels}, buffered={len(self._buffer)}, "
                f"running={self._arrived is not None})")

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def num_channels(self) -> int:
        return self._channels

    def push(self, pcm: bytes) -> None:
        """Queue PCM for the published track (dropped if no track is published)."""
        if self._arrived is None:
            self.dropped_bytes += len(pcm)
            return
        self._buffer += pcm
        excess = len(self._buffer) - self._limit
        if excess > 0:
            excess += -excess % (2 * self._channels)  # keep whole samples
            del self._buffer[:excess]
            self.dropped_bytes += excess
        self._arrived.set()

    async def run(self, source: rtc.AudioSource) -> None:
        if self._arrived is not None:
            raise RuntimeError("PushedAudio is already feeding a published track")
        arrived = self._arrived = asyncio.Event()
        sample_bytes = 2 * self._channels
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                usable = len(self._buffer) - len(self._buffer) % sample_bytes
                if not usable:
                    continue
                chunk = bytes(self._buffer[:usable])
                del self._buffer[:usable]
                await source.capture_frame(rtc.AudioFrame(chunk, self._rate, self._channels,
                                                          usable // sample_bytes))
        finally:
            self._arrived = None
            self._buffer.clear()


class GeneratedVideo:
    """A moving RGBA test pattern (diagonal colour bands scrolling right)."""

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15.0) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError("width and height must be positive and even")
        if fps <= 0:
            raise ValueError("fps must be positive")
        self._width, self._height, self.fps = width, height, fps
        ys, xs = np.mgrid[0:height, 0:width]
        self._diagonal = xs + ys

    def __repr__(self) -> str:
        return f"GeneratedVideo({self._width}x{self._height} @ {self.fps:g} fps)"

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    def frame(self, n: int) -> rtc.VideoFrame:
        """Frame number ``n`` of the pattern (deterministic, so tests can compare)."""
        band = ((self._diagonal + 8 * n) % 256).astype(np.uint8)
        rgba = np.empty((self._height, self._width, 4), np.uint8)
        rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = band, 255 - band, 128, 255
        return rtc.VideoFrame(self._width, self._height, rtc.VideoBufferType.RGBA,
                              rgba.tobytes())

    async def run(self, source: rtc.VideoSource) -> None:
        await _paced(1.0 / self.fps, lambda n: source.capture_frame(self.frame(n)))


class PushedVideo:
    """Video the app pushes: ``push(frame)`` with an ``rtc.VideoFrame`` or raw RGBA bytes
    of ``width * height * 4``. Frames pushed while nothing is published are dropped."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        self._width, self._height = width, height
        self._source: rtc.VideoSource | None = None
        self.dropped_frames = 0

    def __repr__(self) -> str:
        return f"PushedVideo({self._width}x{self._height}, running={self._source is not None})"

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    def push(self, frame: rtc.VideoFrame | bytes) -> None:
        if isinstance(frame, bytes | bytearray | memoryview):
            expected = self._width * self._height * 4
            if len(frame) != expected:
                raise ValueError(f"RGBA frame of {len(frame)} bytes; expected {expected}")
            frame = rtc.VideoFrame(self._width, self._height, rtc.VideoBufferType.RGBA, frame)
        if self._source is None:
            self.dropped_frames += 1
            return
        self._source.capture_frame(frame)

    async def run(self, source: rtc.VideoSource) -> None:
        if self._source is not None:
            raise RuntimeError("PushedVideo is already feeding a published track")
        self._source = source
        try:
            await asyncio.Event().wait()  # frames arrive through push() until cancelled
        finally:
            self._source = None
