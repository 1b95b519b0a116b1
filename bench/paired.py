"""Paired trials: the SDK and its raw floor measured side by side, so that a noisy machine
moves both and their ratio holds still.

Rules of this file:
* Trials are interleaved in pairs, and the order inside a pair alternates (SDK first, then
  raw first: ABBA...), so that slow drift and the leftovers of one trial (webhooks, a room
  closing) fall on both sides alike.
* The first ``warmup`` pairs are run and discarded (imports, FFI start-up, pools, JIT-less
  caches warming). Every trial is followed by a short pause (``settle``, untimed), so that
  the work a trial leaves behind (webhooks, a leave, a room closing) is mostly done before
  the next one starts.
* A ratio is computed per pair (SDK / raw of the same pair), and reported as the median of
  those ratios with its interquartile range; times likewise, in milliseconds.

A trial is an async function that does its own set-up and clean-up and returns the
milliseconds of the part it measures; it is never given a clock to share.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Trial", "Paired", "run_pairs", "quartiles", "spread"]

Trial = Callable[[], Awaitable[float]]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile (inclusive method: no value invented
    outside the observed range)."""
    if len(values) < 2:
        only = values[0]
        return only, only, only
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def spread(values: Sequence[float], digits: int = 2) -> str:
    """The interquartile range as text, ``q1-q3``."""
    q1, _, q3 = quartiles(values)
    return f"{q1:.{digits}f}-{q3:.{digits}f}"


@dataclass
class Paired:
    """The kept (post-warm-up) times of one comparison, pair by pair."""

    measure: str
    sdk: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [s / r for s, r in zip(self.sdk, self.raw, strict=True)]

    @property
    def ratio(self) -> float:
        return quartiles(self.ratios)[1]

    def row(self) -> dict[str, Any]:
        """One table row: medians with their spreads, and the per-pair ratio."""
        return {"measure": self.measure,
                "SDK ms": round(quartiles(self.sdk)[1], 1), "SDK IQR": spread(self.sdk, 0),
                "raw ms": round(quartiles(self.raw)[1], 1), "raw IQR": spread(self.raw, 0),
                "ratio": round(self.ratio, 2), "ratio IQR": spread(self.ratios),
                "pairs": len(self.sdk)}


async def run_pairs(measure: str, sdk: Trial, raw: Trial, *, pairs: int,
                    warmup: int = 2, settle: float = 0.05) -> Paired:
    """Run ``warmup + pairs`` pairs of ``sdk`` and ``raw`` (order alternating, ``settle``
    seconds after each trial); keep the last ``pairs``."""
    if pairs < 1 or warmup < 0:
        raise ValueError("pairs must be >= 1 and warmup >= 0")

    async def timed(trial: Trial) -> float:
        took = await trial()
        await asyncio.sleep(settle)
        return took

    kept = Paired(measure)
    for i in range(warmup + pairs):
        if i % 2 == 0:
            s = await timed(sdk)
            r = await timed(raw)
        else:
            r = await timed(raw)
            s = await timed(sdk)
        if i >= warmup:
            kept.sdk.append(s)
            kept.raw.append(r)
    return kept
