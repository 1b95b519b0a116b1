"""Wake-ups between engine workers: PostgreSQL ``LISTEN``/``NOTIFY`` on one channel.

The store announces a created call with ``NOTIFY`` in the transaction that inserts it, so
the announcement arrives exactly when the call is visible. Each worker listens on its own
connection (a daemon thread, as psycopg's notification wait blocks) and wakes its
long-polls and ring timer, which then re-read the database: the notification carries no
data and decides nothing. Without PostgreSQL (one SQLite process) there is nobody to wake.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["CHANNEL", "listen"]

CHANNEL = "utd_calls"
_log = logging.getLogger("utd_stream.engine")


def listen(url: str, loop: asyncio.AbstractEventLoop,
           woken: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run ``woken()`` on ``loop`` at every notification; returns the function that stops."""
    import psycopg

    stop = threading.Event()
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)

    def run() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            asyncio.run_coroutine_threadsafe(woken(), loop)
            except psycopg.Error as exc:  # the database went away: listen again shortly
                _log.warning("call wake-ups: %s; listening again", type(exc).__name__)
                stop.wait(1.0)

    thread = threading.Thread(target=run, name="utd-engine-wakeups", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=5)

    return halt
