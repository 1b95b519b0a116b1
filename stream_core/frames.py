"""Received media as values: audio and video frames, and the stream that carries them.

Rules of this file:

* A frame is an immutable value in core types (bytes and numbers); no backend type leaks
  through it. Audio is interleaved 16-bit little-endian PCM at the format the reader asked
  for (the backend resamples); video is RGBA or I420 as asked.
* A :class:`FrameStream` is what a ``MediaPort`` hands out for one remote source (or the
  room's mix). The backend ``push``-es frames and ``end``-s it (the participant left,
  unpublished or lost its grant, or this connection went down); the reader iterates and
  may ``aclose`` it early. After the end the frames already buffered are still read, then
  iteration stops; ``aclose`` drops them. Either way the backend's end callbacks run once
  and :meth:`FrameStream.aclose` returns only after the backend released what fed the
  stream (no task or native stream outlives it).
* A slow reader does not grow memory without bound: past ``capacity`` buffered frames the
  oldest is dropped and counted in :attr:`FrameStream.dropped`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from stream_core.errors import UTDStreamException

__all__ = ["UTDAudioFrame", "UTDVideoFrame", "UTDVideoFormat", "FrameStream",
           "check_audio_format", "DEFAULT_FRAME_CAPACITY"]

F = TypeVar("F")

#: Frames a stream buffers for a slow reader before dropping the oldest (5 s of 10 ms audio).
DEFAULT_FRAME_CAPACITY = 500


@dataclass(frozen=True, slots=True)
class UTDAudioFrame:
    """Interleaved signed 16-bit little-endian PCM.

    ``timestamp`` is the position of the first sample, in seconds since the stream began
    (counted in samples delivered, so gaps the backend skipped are not counted).
    """

    data: bytes
    sample_rate: int
    channels: int
    samples_per_channel: int
    timestamp: float = 0.0

    @property
    def duration(self) -> float:
        return self.samples_per_channel / self.sample_rate

    def __repr__(self) -> str:
        return (f"UTDAudioFrame({self.samples_per_channel} samples x{self.channels} "
                f"@ {self.sample_rate} Hz, t={self.timestamp:.3f})")


class UTDVideoFormat(enum.Enum):
    """Pixel layout of a received video frame."""

    RGBA = "rgba"  # width * height * 4 bytes
    I420 = "i420"  # planar Y, U, V (U and V at half width and height)


@dataclass(frozen=True, slots=True)
class UTDVideoFrame:
    """One picture; ``timestamp`` in seconds as the backend stamped it (capture time)."""

    data: bytes
    width: int
    height: int
    format: UTDVideoFormat
    timestamp: float = 0.0

    def __repr__(self) -> str:
        return (f"UTDVideoFrame({self.width}x{self.height} {self.format.value}, "
                f"t={self.timestamp:.3f})")


def check_audio_format(sample_rate: int, channels: int) -> None:
    """Refuse (422 ``invalid_argument``) a format no backend delivers."""
    if not 8_000 <= sample_rate <= 48_000:
        raise UTDStreamException.invalid(f"sample_rate {sample_rate}: expected 8000..48000 Hz",
                                         field="sample_rate")
    if channels not in (1, 2):
        raise UTDStreamException.invalid(f"channels {channels}: expected 1 or 2",
                                         field="channels")


class FrameStream(Generic[F]):
    """An async iterator of frames fed by a media backend (see the module doc).

    Use ``async for frame in stream`` (ends cleanly), or ``async with stream:`` to close it
    early. ``ended`` says why it ended (``None`` while live).
    """

    def __init__(self, description: str, *, capacity: int = DEFAULT_FRAME_CAPACITY) -> None:
        self.description = description
        self.ended: str | None = None
        self.dropped = 0
        self._capacity = capacity
        self._buffer: collections.deque[F] = collections.deque()
        self._ready = asyncio.Event()
        self._on_end: list[Callable[[], object]] = []
        self._settle: Callable[[], Awaitable[object]] | None = None

    def __repr__(self) -> str:
        state = f"ended={self.ended!r}" if self.ended is not None else "live"
        return (f"FrameStream({self.description}, {state}, buffered={len(self._buffer)}, "
                f"dropped={self.dropped})")

    # -- backend side -----------------------------------------------------------------
    def push(self, frame: F) -> None:
        """Queue one frame for the reader (ignored once ended)."""
        if self.ended is not None:
            return
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(frame)
        self._ready.set()

    def end(self, reason: str) -> None:
        """No more frames: the reader finishes what is buffered. Idempotent."""
        if self.ended is not None:
            return
        self.ended = reason
        self._ready.set()
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            callback()

    def on_end(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once when the stream ends (at once if it already has)."""
        if self.ended is not None:
            callback()
        else:
            self._on_end.append(callback)

    def settle_with(self, settle: Callable[[], Awaitable[object]]) -> None:
        """What :meth:`aclose` awaits after ending: the backend's release of its feed."""
        self._settle = settle

    # -- reader side ------------------------------------------------------------------
    def __aiter__(self) -> FrameStream[F]:
        return self

    async def __anext__(self) -> F:
        while not self._buffer:
            if self.ended is not None:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop reading: drop what is buffered, and wait until the feed is released."""
        self.end("closed")
        self._buffer.clear()
        if self._settle is not None:
            settle, self._settle = self._settle, None
            await settle()

    async def __aenter__(self) -> FrameStream[F]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
