"""The engine's background work, written once.

* :func:`every`: a loop that does a step, then waits for a wake-up or the period; a store
  that is briefly unavailable is logged and the loop goes on (anything else is a bug and
  ends the loop loudly).
* :class:`Background`: work a request starts and does not wait for (applying webhooks,
  draining a new room's effects); a failure is logged and hands over to the loop that
  retries it; tests and shutdown wait for it or cancel it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from stream_core.errors import ErrorCode, UTDStreamException

__all__ = ["every", "Background"]

_log = logging.getLogger("utd_stream.engine")


async def every(period: float, step: Callable[[], Awaitable[object]], *, what: str,
                wake: asyncio.Event | None = None) -> None:
    """Run ``step`` now and then every ``period`` seconds (sooner when ``wake`` is set)."""
    while True:
        if wake is not None:
            wake.clear()
        try:
            await step()
        except UTDStreamException as exc:
            if exc.code != ErrorCode.UNAVAILABLE:
                raise
            _log.warning("%s: the store is unavailable (%s)", what, exc.message)
        if wake is None:
            await asyncio.sleep(period)  # the loop's period, not a synchronization
            continue
        try:
            await asyncio.wait_for(wake.wait(), period)
        except TimeoutError:
            pass


class Background:
    """Tasks started and not awaited, at most one per key (``None``: no key). A task that
    fails is logged as kept for a retry and ``on_failure`` runs (it wakes the loop that
    retries what the task left undone)."""

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self._tasks: dict[object, asyncio.Task[None]] = {}

    def start(self, work: Coroutine[Any, Any, None], name: str, key: object = None) -> None:
        """Run ``work`` as a task (closed unrun if ``key`` already has one running)."""
        if key is not None and key in self._tasks:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work, name=name)
        slot = task if key is None else key
        self._tasks[slot] = task
        task.add_done_callback(lambda done: self._done(slot, done))

    def running(self, key: object) -> bool:
        return key in self._tasks

    async def settle(self) -> None:
        """Wait until every task started so far (and any they start) is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every task and wait for them (what they left undone stays for a retry)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, slot: object, task: asyncio.Task[None]) -> None:
        if self._tasks.get(slot) is task:
            del self._tasks[slot]
        if not task.cancelled() and task.exception() is not None:
            _log.warning("%s failed (kept for a retry): %s", task.get_name(), task.exception())
            self._on_failure()
