"""Recording what a session hears to WAV files (stdlib :mod:`wave`, 16-bit PCM).

* :func:`record_wav` writes one :class:`~stream_core.frames.FrameStream` of audio to one
  file until the stream ends (the session left, the speaker stopped, or it was closed).
  With ``session.mixed_audio()`` it records what the participant hears.
* :class:`SpeakerRecorder` writes one file per speaker: ``<dir>/<identity>.wav`` from the
  moment it is heard publishing a microphone until it stops (a speaker who comes back
  gets ``<identity>-2.wav``, and so on).

Both work on any backend (the fakes included): they only read core frames. What a file
holds is the audio that arrived: stretches where nobody spoke are not padded with silence.

Why not in ``stream_core``: writing files is I/O; the core has none of its own.
"""

from __future__ import annotations

import asyncio
import os
import wave
from pathlib import Path
from typing import Any

from stream_core.frames import FrameStream, UTDAudioFrame
from stream_core.models import UTDRemoteParticipant
from stream_core.sessions.base import UTDSession

__all__ = ["record_wav", "SpeakerRecorder"]


async def record_wav(frames: FrameStream[UTDAudioFrame], path: str | os.PathLike[str], *,
                     sample_rate: int = 48_000, channels: int = 1,
                     max_seconds: float | None = None) -> float:
    """Write ``frames`` (opened at this format) to ``path`` until they end, or until
    ``max_seconds`` are written (then the stream is closed); returns the seconds written.
    The file is a valid WAV at every return, an empty one included."""
    written = 0
    with wave.open(os.fspath(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        async for frame in frames:
            if (frame.sample_rate, frame.channels) != (sample_rate, channels):
                raise ValueError(f"{frames!r} delivers {frame.sample_rate} Hz x"
                                 f"{frame.channels}; this file is {sample_rate} Hz x{channels}")
            wav.writeframes(frame.data)
            written += frame.samples_per_channel
            if max_seconds is not None and written >= max_seconds * sample_rate:
                await frames.aclose()
    return written / sample_rate


class SpeakerRecorder:
    """One WAV file per remote speaker of ``session`` (see the module doc).

    ``start()`` follows the session's participants; ``finish()`` stops following, ends the
    recordings still open and returns every file written. Files end on their own when the
    speaker stops or the session leaves, so ``finish()`` after ``leave()`` loses nothing.
    """

    def __init__(self, session: UTDSession, directory: str | os.PathLike[str], *,
                 sample_rate: int = 48_000) -> None:
        self.session = session
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        self.files: list[Path] = []
        self._recording: dict[str, tuple[FrameStream[UTDAudioFrame], asyncio.Task[Any]]] = {}
        self._unlisten: Any = None

    def __repr__(self) -> str:
        return (f"SpeakerRecorder({str(self.directory)!r}, recording={sorted(self._recording)}, "
                f"files={len(self.files)})")

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._unlisten = self.session.remote_participants.listen(self._follow)
        self._follow(self.session.remote_participants.value)

    async def finish(self) -> list[Path]:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        recordings = list(self._recording.values())
        for frames, _ in recordings:
            frames.end("recorder finished")  # what already arrived is still written
        await asyncio.gather(*(task for _, task in recordings), return_exceptions=True)
        for frames, _ in recordings:
            await frames.aclose()  # the backend has released the feed
        return list(self.files)

    def _follow(self, participants: tuple[UTDRemoteParticipant, ...]) -> None:
        if not self.session.connected.value:
            return
        for participant in participants:
            if participant.has_track("microphone") and participant.identity not in self._recording:
                self._record(participant.identity)

    def _record(self, identity: str) -> None:
        path = self._path_for(identity)
        self.files.append(path)
        frames = self.session.audio_frames(identity, sample_rate=self.sample_rate)
        task = asyncio.get_running_loop().create_task(
            record_wav(frames, path, sample_rate=self.sample_rate),
            name=f"utd-record-{identity}")
        self._recording[identity] = (frames, task)

        def done(_: asyncio.Task[Any]) -> None:
            if self._recording.get(identity, (None, None))[1] is task:
                del self._recording[identity]
        task.add_done_callback(done)

    def _path_for(self, identity: str) -> Path:
        stem = identity.replace(os.sep, "_")
        path, n = self.directory / f"{stem}.wav", 1
        while path in self.files or path.exists():
            n += 1
            path = self.directory / f"{stem}-{n}.wav"
        return path
