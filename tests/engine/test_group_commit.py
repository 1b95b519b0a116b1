"""Group commit (stream_engine.group_commit): every caller gets its own outcome, batches
form from what piles up, and a failed transaction fails exactly its batch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from stream_engine.group_commit import GroupCommit


def test_a_lone_caller_commits_at_once_with_its_own_result() -> None:
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]
    assert GroupCommit(commit).submit(4) == 40
    assert batches == [[4]]


def test_callers_that_arrive_during_a_commit_share_the_next_one() -> None:
    entered, release = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        if items == [0]:  # the first commit holds until the others are queued
            entered.set()
            assert release.wait(10)
        return [ValueError(i) if i == 3 else i + 100 for i in items]
    group: GroupCommit[int, int] = GroupCommit(commit)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(group.submit, 0)
        assert entered.wait(10)
        others = [pool.submit(group.submit, i) for i in range(1, 6)]
        deadline = time.monotonic() + 10
        while len(group._queue) < 5:  # all five queued behind the running commit
            assert time.monotonic() < deadline, "the callers never queued"
            time.sleep(0.001)
        release.set()
        assert first.result(10) == 100
        for i, future in enumerate(others, start=1):
            if i == 3:
                with pytest.raises(ValueError):
                    future.result(10)
            else:
                assert future.result(10) == i + 100
    assert batches[0] == [0] and sorted(batches[1]) == [1, 2, 3, 4, 5]


def test_a_failed_transaction_fails_its_whole_batch_and_the_next_caller_goes_on() -> None:
    calls = 0

    def commit(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return items
    group: GroupCommit[int, int] = GroupCommit(commit)
    with pytest.raises(ConnectionError):
        group.submit(1)
    assert group.submit(2) == 2


def test_many_threads_each_get_their_own_answer() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [-i for i in items], max_batch=7)
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(group.submit, range(500))) == [-i for i in range(500)]
