"""Rate limits shared by every engine worker, kept in Redis through the ``limits`` library.

With one engine process the core's in-memory token buckets are exact; with several, each
would allow its own share. When ``--redis-url`` is set, every worker counts in one Redis
instead. A bucket of ``rate`` per second with bursts up to ``burst`` becomes a sliding
window of ``burst`` hits per ``burst / rate`` seconds: the same long-run rate, the same
largest burst.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from stream_core.engine.ratelimit import RateLimiter
from stream_core.engine.settings import RateLimit

__all__ = ["RedisRateLimiter"]


class RedisRateLimiter(RateLimiter):
    """The core's limiter interface (``check`` -> seconds to wait, or None) over Redis."""

    def __init__(self, url: str, limits: dict[str, RateLimit]) -> None:
        super().__init__(limits)
        self._storage = storage_from_string(url)
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)
        self._items: dict[str, RateLimitItem] = {
            kind: RateLimitItemPerSecond(max(1, limit.burst),
                                         max(1, math.ceil(limit.burst / limit.rate)),
                                         namespace=f"utd-{kind}")
            for kind, limit in limits.items() if limit.rate > 0}

    def check(self, kind: str, *key: str) -> float | None:
        item = self._items.get(kind)
        if item is None:
            return None
        if self._strategy.hit(item, *key):
            return None
        reset_at = self._strategy.get_window_stats(item, *key).reset_time
        return max(0.05, reset_at - time.time())

    def __repr__(self) -> str:
        return f"<RedisRateLimiter {sorted(self._items)}>"
