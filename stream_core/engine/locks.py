"""Per-key asyncio locks that exist only while someone holds or waits for them.

The engine serializes each room's changes until the media server has them; a lock per
room name ever seen would grow with every name a client invents. Here a key's lock is
created on first use and dropped when its last holder leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """``async with locks.hold(key):`` — one holder per key at a time, on one event loop."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """How many keys have a holder or a waiter now."""
        return len(self._locks)

    def __repr__(self) -> str:
        return f"<KeyedLocks {len(self._locks)} in use>"
