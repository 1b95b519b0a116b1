"""The engine's background loops, written once: do a step, then wait for a wake-up or the
period; a store that is briefly unavailable is logged and the loop goes on (anything else
is a bug and ends the loop loudly)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from stream_core.errors import ErrorCode, UTDStreamException

__all__ = ["every"]

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
