"""Token buckets per (app, identity, kind): how the engine answers 429 with Retry-After."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stream_core.engine.settings import RateLimit

__all__ = ["RateLimiter"]


class RateLimiter:
    """Refill-on-read token buckets. ``check`` returns ``None`` or seconds to wait.

    Buckets live in the process: limits are per engine instance (documented in the README).
    Idle full buckets are pruned so a flood of identities cannot grow memory without bound.
    """

    def __init__(self, limits: dict[str, RateLimit], clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = 100_000) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: dict[tuple[str, ...], tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max = max_buckets

    def check(self, kind: str, *key: str) -> float | None:
        limit = self._limits.get(kind)
        if limit is None or limit.rate <= 0:
            return None
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get((kind, *key), (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - stamp) * limit.rate)
            if tokens < 1.0:
                self._buckets[(kind, *key)] = (tokens, now)
                return (1.0 - tokens) / limit.rate
            self._buckets[(kind, *key)] = (tokens - 1.0, now)
            if len(self._buckets) > self._max:
                self._prune(now)
            return None

    def _prune(self, now: float) -> None:
        for k, (tokens, stamp) in list(self._buckets.items()):
            limit = self._limits[k[0]]
            if tokens + (now - stamp) * limit.rate >= limit.burst:
                del self._buckets[k]
