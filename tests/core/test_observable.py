"""Observable values and event streams: notify on change only, survive bad listeners."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stream_core import EventStream, Observable, UTDStreamException


def test_listeners_hear_changes_only_and_unsubscribe():
    obs = Observable(1)
    seen: list[int] = []
    unsubscribe = obs.listen(seen.append)
    assert obs.set(1) is False
    assert obs.set(2) is True
    unsubscribe()
    obs.set(3)
    assert seen == [2] and obs.value == 3 and obs.listener_count == 0


def test_a_raising_listener_does_not_break_the_others(caplog):
    obs = Observable("a", name="thing")
    seen: list[str] = []

    def bad(_: str) -> None:
        raise RuntimeError("boom")

    obs.listen(bad)
    obs.listen(seen.append)
    with caplog.at_level(logging.ERROR):
        obs.set("b")
    assert seen == ["b"]
    assert "listener of thing raised" in caplog.text


async def test_changes_iterates_until_closed():
    obs = Observable(0)
    got: list[int] = []

    async def reader() -> None:
        async for value in obs.changes():
            got.append(value)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)  # let the reader subscribe (a yield, not a wait for time)
    for v in (1, 1, 2, 3):
        obs.set(v)
    obs.close()
    await asyncio.wait_for(task, 1)
    assert got == [1, 2, 3] and obs.listener_count == 0


async def test_wait_for_returns_or_times_out_with_504():
    obs = Observable(0)
    asyncio.get_running_loop().call_soon(obs.set, 5)
    assert await obs.wait_for(lambda v: v == 5, 1) == 5
    with pytest.raises(UTDStreamException) as exc:
        await obs.wait_for(lambda v: v == 6, 0.01, what="six")
    assert exc.value.status_code == 504 and "six" in exc.value.message
    assert obs.listener_count == 0


async def test_event_stream_broadcasts_to_every_reader():
    stream: EventStream[int] = EventStream()
    results: list[list[int]] = [[], []]

    async def reader(i: int) -> None:
        async for ev in stream:
            results[i].append(ev)

    tasks = [asyncio.create_task(reader(i)) for i in range(2)]
    await asyncio.sleep(0)
    for ev in (1, 2):
        stream.emit(ev)
    stream.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert results == [[1, 2], [1, 2]] and stream.subscriber_count == 0
