"""FrameStream: buffered frames survive the end, a slow reader drops the oldest, closing
runs the backend's release once."""

from __future__ import annotations

import pytest

from stream_core import FrameStream, UTDAudioFrame, UTDStreamException
from stream_core.frames import check_audio_format


def frame(n: int) -> UTDAudioFrame:
    return UTDAudioFrame(bytes(4), 48_000, 1, 2, n / 100)


async def test_frames_buffered_before_the_end_are_still_read() -> None:
    stream: FrameStream[UTDAudioFrame] = FrameStream("test")
    ended: list[str] = []
    stream.on_end(lambda: ended.append("once"))
    stream.push(frame(0))
    stream.push(frame(1))
    stream.end("participant left")
    stream.end("again")
    stream.push(frame(2))  # after the end: ignored
    assert [f.timestamp async for f in stream] == [0.0, 0.01]
    assert (stream.ended, ended) == ("participant left", ["once"])


async def test_a_slow_reader_loses_the_oldest_and_close_releases_the_feed() -> None:
    stream: FrameStream[UTDAudioFrame] = FrameStream("test", capacity=2)
    released: list[bool] = []

    async def release() -> None:
        released.append(True)
    stream.settle_with(release)
    for n in range(5):
        stream.push(frame(n))
    assert stream.dropped == 3 and (await anext(stream)).timestamp == 0.03
    async with stream:
        pass
    assert stream.ended == "closed" and released == [True]
    assert [f async for f in stream] == []  # closing drops what was buffered


def test_formats_no_backend_delivers_are_refused() -> None:
    for rate, channels in ((7_999, 1), (96_000, 1), (48_000, 3)):
        with pytest.raises(UTDStreamException) as refused:
            check_audio_format(rate, channels)
        assert refused.value.status_code == 422
