"""Group commit: small writes that arrive together share one transaction.

A viewer's token mint writes one presence row. Written one transaction each, concurrent
mints queue for the database's write lock, and on SQLite each turn also pays the
transaction's fixed cost and the thread switches around it; profiled, that was more than
half of a mint. Here the first caller to find the queue idle becomes its leader: it takes
what is queued (itself included), commits it in one transaction, hands each caller its own
outcome, and passes the lead to the oldest caller still waiting. Nobody waits for a timer:
a lone caller commits at once, and a batch is exactly what piled up during the previous
commit.

Outcomes are per item: ``commit`` returns one result or exception per item (a refusal of
one viewer fails only that viewer), and an exception it raises (the database unavailable)
fails the whole batch, as it would have failed each of them alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Job(Generic[T, R]):
    __slots__ = ("item", "result", "error", "lead", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.wake = threading.Event()


class GroupCommit(Generic[T, R]):
    """Run ``commit`` over batches of items submitted from many threads at once."""

    def __init__(self, commit: Callable[[list[T]], Sequence[R | BaseException]], *,
                 max_batch: int = 64) -> None:
        self._commit = commit
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Job[T, R]] = []
        self._busy = False

    def submit(self, item: T) -> R:
        """Commit ``item`` (with whatever else is queued); its result, or raise its error."""
        job: _Job[T, R] = _Job(item)
        with self._lock:
            self._queue.append(job)
            if not self._busy:
                self._busy = job.lead = True
        if not job.lead:
            job.wake.wait()  # done, or handed the lead
        if job.lead:
            self._lead()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set by the commit

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self._max], self._queue[self._max:]
        try:
            outcomes: Sequence[R | BaseException] = self._commit([j.item for j in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"commit returned {len(outcomes)} outcomes for "
                                   f"{len(batch)} items")
        except BaseException as exc:  # the whole transaction failed: so did every item
            outcomes = [exc] * len(batch)
        for job, outcome in zip(batch, outcomes):
            job.lead = False
            if isinstance(outcome, BaseException):
                job.error = outcome
            else:
                job.result = outcome
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._busy = False
            else:
                successor.lead = True
        for job in batch:
            job.wake.set()
        if successor is not None:
            successor.wake.set()
