"""PCM for the fake SFU: format conversion and mixing, stdlib only (``array``).

The fake has no codec and no clock, so it does what LiveKit does to audio in the simplest
way that keeps content checks meaningful: linear resampling per frame, channel down-mix by
averaging and up-mix by copying, and a mix that sums the speakers sample by sample.

Why a mix by *position*, not by time: a fake speaker's audio arrives when the app pushes
it, not paced by a clock. :class:`PcmMix` keeps each speaker's samples since it joined the
mix and emits the sum as far as every speaker has pushed; a speaker that stops pushing
while still published holds the mix back until it pushes again or unpublishes (then its
leftover is mixed in and it leaves the mix).
"""

from __future__ import annotations

import sys
from array import array

from stream_core.frames import UTDAudioFrame

__all__ = ["convert", "PcmMix", "samples_of", "bytes_of"]


def samples_of(data: bytes) -> array[int]:
    """Interleaved little-endian int16 bytes as an array of ints."""
    samples = array("h")
    samples.frombytes(data)
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def bytes_of(samples: array[int]) -> bytes:
    if sys.byteorder != "little":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def convert(frame: UTDAudioFrame, sample_rate: int, channels: int) -> array[int]:
    """``frame``'s samples at ``sample_rate`` x ``channels`` (interleaved)."""
    pcm = samples_of(frame.data)
    if frame.channels == 2 and channels == 1:
        pcm = array("h", ((pcm[i] + pcm[i + 1]) // 2 for i in range(0, len(pcm), 2)))
    if frame.sample_rate != sample_rate:
        pcm = _resample(pcm, min(frame.channels, channels), frame.sample_rate, sample_rate)
    if frame.channels == 1 and channels == 2:
        pcm = array("h", (s for s in pcm for _ in range(2)))
    return pcm


def _resample(pcm: array[int], channels: int, src: int, dst: int) -> array[int]:
    frames_in = len(pcm) // channels
    frames_out = max(1, round(frames_in * dst / src))
    out = array("h", bytes(2 * frames_out * channels))
    step = src / dst
    for i in range(frames_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        k = min(j + 1, frames_in - 1)
        for c in range(channels):
            a, b = pcm[j * channels + c], pcm[k * channels + c]
            out[i * channels + c] = int(a + (b - a) * frac)
    return out


class PcmMix:
    """Speakers' samples summed by position (see the module doc), at one format."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels = sample_rate, channels
        self._pending: dict[str, array[int]] = {}
        self._position = 0  # samples per channel emitted so far

    def __repr__(self) -> str:
        return f"PcmMix({self.sample_rate} Hz x{self.channels}, speakers={sorted(self._pending)})"

    def add(self, speaker: str, frame: UTDAudioFrame) -> UTDAudioFrame | None:
        """Take ``speaker``'s frame; return the next mixed frame if one is complete."""
        self._pending.setdefault(speaker, array("h")).extend(
            convert(frame, self.sample_rate, self.channels))
        return self._emit(min(len(p) for p in self._pending.values()))

    def remove(self, speaker: str) -> UTDAudioFrame | None:
        """``speaker`` left the mix: its leftover is mixed in with what the others have."""
        leftover = self._pending.get(speaker)
        if leftover is None:
            return None
        frame = self._emit(len(leftover))
        del self._pending[speaker]
        return frame

    def _emit(self, length: int) -> UTDAudioFrame | None:
        length -= length % self.channels
        if length <= 0:
            return None
        mixed = array("h", bytes(2 * length))
        for speaker, pending in self._pending.items():
            take = min(length, len(pending))
            for i in range(take):
                mixed[i] = max(-32768, min(32767, mixed[i] + pending[i]))
            del pending[:take]
        samples = length // self.channels
        frame = UTDAudioFrame(bytes_of(mixed), self.sample_rate, self.channels, samples,
                              self._position / self.sample_rate)
        self._position += samples
        return frame
