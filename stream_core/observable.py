"""Observable values: the Python counterpart of Flutter's ``ValueListenable``.

Three ways to follow a value, all fed by one ``set``: read ``.value``; ``listen(cb)`` for a
sync callback (returns the unsubscribe function); ``async for v in obs.changes()``. Only real
changes notify (``!=`` the old value). A listener that raises is logged and the others still
run. ``close()`` ends every ``changes()`` iterator and drops every listener, so a disposed
session leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from stream_core.errors import ErrorCode, UTDStreamException

__all__ = ["Observable", "EventStream"]

T = TypeVar("T")
_log = logging.getLogger(__name__)
_CLOSED = object()


class Observable(Generic[T]):
    """A value that tells its followers when it changes. Only its owner calls ``set``."""

    def __init__(self, value: T, *, name: str = "value") -> None:
        self._value = value
        self._name = name
        self._listeners: list[Callable[[T], None]] = []
        self._changes: EventStream[T] = EventStream()
        self._closed = False

    @property
    def value(self) -> T:
        return self._value

    def set(self, value: T) -> bool:
        """Replace the value; notify and return True only if it changed."""
        if self._closed or value == self._value:
            return False
        self._value = value
        for listener in list(self._listeners):
            try:
                listener(value)
            except Exception:  # one bad listener must not starve the others
                _log.exception("listener of %s raised", self._name)
        self._changes.emit(value)
        return True

    def listen(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call ``callback(new_value)`` on every change; returns the unsubscribe function."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def changes(self) -> AsyncIterator[T]:
        """Yield every new value from now on, until the observable is closed."""
        return self._changes.__aiter__()

    async def wait_for(self, predicate: Callable[[T], bool], timeout: float,
                       what: str | None = None) -> T:
        """Return the value once ``predicate`` holds; 504 ``timeout`` after ``timeout`` s."""
        if predicate(self._value):
            return self._value
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def check(value: T) -> None:
            if not done.done() and predicate(value):
                done.set_result(value)

        unsubscribe = self.listen(check)
        try:
            return await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise UTDStreamException(
                f"timed out after {timeout:g}s waiting for {what or self._name}",
                status_code=504, code=ErrorCode.TIMEOUT) from None
        finally:
            unsubscribe()

    @property
    def listener_count(self) -> int:
        return len(self._listeners) + self._changes.subscriber_count

    def close(self) -> None:
        """End every iterator (a suspended one ends at its next step) and drop listeners."""
        self._closed = True
        self._listeners.clear()
        self._changes.close()

    def __repr__(self) -> str:
        return f"Observable({self._name}={self._value!r})"


class EventStream(Generic[T]):
    """A broadcast stream: every ``async for`` over it gets every event from then on.

    Each subscriber has its own unbounded queue: a slow reader never blocks the SDK or the
    other readers, and no event is dropped while it reads.
    """

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[object]] = []
        self._closed = False

    def emit(self, event: T) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._subscribe()

    async def _subscribe(self) -> AsyncIterator[T]:
        if self._closed:
            return
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield item  # type: ignore[misc]
        finally:
            if queue in self._queues:
                self._queues.remove(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)

    def close(self) -> None:
        self._closed = True
        for queue in self._queues:
            queue.put_nowait(_CLOSED)
        self._queues.clear()
