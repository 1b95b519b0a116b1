"""Issue 8's scale benchmarks: costs that must not grow with the audience, and workers.

Every ratio is measured side by side in one run, against the same engine process:

* token mints into a room already holding ``AUDIENCE`` viewers (minted, not connected)
  vs into an empty room, for a live stream and an audio room (target >= 0.9x);
* signed ``participant_left`` webhooks for plain viewers, one at a time as LiveKit sends
  them, in the full room vs a room of ~0: median handling time;
* mints/s and seat take+leave pairs/s (over 50 rooms, and within one room) as a share of
  the same process's ``GET /healthz`` (aiohttp's hello world);
* one worker vs two on a :class:`~stream_devstack.cluster.ClusterStack` (PostgreSQL).

Bounded: filling a room stops at ``AUDIENCE`` or after ``UTD_BENCH_FILL_BUDGET`` seconds
(default 150), whichever comes first, and the row says how many it reached and how fast.
Loopback only; load comes from this process, so client and server share the cores.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from bench.engine import Op, rate
from livekit import api as lk_api

from stream_core.engine.settings import AppConfig
from stream_core.names import livekit_room_name
from stream_devstack.cluster import ClusterStack
from stream_devstack.stack import LocalStack

__all__ = ["TITLE", "run", "AUDIENCE"]

TITLE = "Scale (issue 8): costs vs audience, share of hello-world, workers (loopback)"
AUDIENCE = int(os.environ.get("UTD_BENCH_AUDIENCE", "20000"))
FILL_BUDGET_S = float(os.environ.get("UTD_BENCH_FILL_BUDGET", "150"))
SECONDS = 3.0
CONCURRENCY = 8
FILL_CONCURRENCY = 16
WEBHOOKS = 40
SEAT_ROOMS = 50
UNLIMITED = "0/1"  # a rate of 0: no limit


class Target:
    """Where requests go: one or more engine base URLs (spread round-robin) and one app."""

    def __init__(self, bases: Sequence[str], app: AppConfig) -> None:
        self.bases = list(bases)
        self.creds = {"app_id": app.app_id, "app_key": app.app_key}
        self.app = app

    def base(self, w: int) -> str:
        return self.bases[w % len(self.bases)]

    async def mint(self, http: aiohttp.ClientSession, w: int, room: str, stream_type: str,
                   identity: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {**self.creds, "identity": identity or f"v-{uuid.uuid4().hex[:12]}",
                "room_name": room, "stream_type": stream_type, **extra}
        async with http.post(f"{self.base(w)}/api/v1/token", json=body) as r:
            answer: dict[str, Any] = await _expect(r)
            return answer


async def _expect(response: aiohttp.ClientResponse) -> Any:
    if response.status != 200:
        raise RuntimeError(f"{response.method} {response.url.path}: {response.status} "
                           f"{(await response.text())[:200]}")
    return await response.json()


async def _rate(op: Op, *, seconds: float = SECONDS, concurrency: int = CONCURRENCY) -> float:
    """Completed operations per second (the engine benchmark's loop, with this one's sizes)."""
    return await rate(op, seconds=seconds, concurrency=concurrency)


def _hello(target: Target) -> Op:
    async def op(http: aiohttp.ClientSession, w: int) -> None:
        async with http.get(f"{target.base(w)}/healthz") as r:
            await _expect(r)
    return op


async def _open_room(target: Target, room: str, stream_type: str, seats: int = 8) -> None:
    extra = {"seat_count": seats} if stream_type == "audio_room" else {}
    async with aiohttp.ClientSession() as http:
        await target.mint(http, 0, room, stream_type, identity="host", role="host", **extra)


async def _fill(target: Target, room: str, stream_type: str) -> tuple[list[str], float]:
    """Mint viewers into ``room`` in parallel until ``AUDIENCE`` or the budget; the
    identities minted and the seconds it took."""
    identities: list[str] = []
    start = time.perf_counter()
    stop_at = start + FILL_BUDGET_S
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=FILL_CONCURRENCY)) as http:
        async def worker(w: int) -> None:
            while len(identities) < AUDIENCE and time.perf_counter() < stop_at:
                identity = f"v{w}-{uuid.uuid4().hex[:10]}"
                await target.mint(http, w, room, stream_type, identity=identity)
                identities.append(identity)

        await asyncio.gather(*(worker(w) for w in range(FILL_CONCURRENCY)))
    return identities, time.perf_counter() - start


def _minting(target: Target, room: Callable[[int], str], stream_type: str) -> Op:
    async def op(http: aiohttp.ClientSession, w: int) -> None:
        await target.mint(http, w, room(w), stream_type)
    return op


def _row(measure: str, value: float, unit: str, *, ratio: str = "-", note: str = "",
         ) -> dict[str, Any]:
    return {"measure": measure, "value": round(value, 1), "unit": unit, "ratio": ratio,
            "note": note}


# ----------------------------------------------------------------------------- audience


async def _audience(target: Target, stack: LocalStack) -> list[dict[str, Any]]:
    rows = []
    tag = uuid.uuid4().hex[:6]
    for stream_type in ("live_stream", "audio_room"):
        full, empty = f"full-{stream_type}-{tag}", f"empty-{stream_type}-{tag}"
        await _open_room(target, full, stream_type)
        await _open_room(target, empty, stream_type)
        viewers, took = await _fill(target, full, stream_type)
        in_empty = await _rate(_minting(target, lambda _: empty, stream_type))
        in_full = await _rate(_minting(target, lambda _: full, stream_type))
        rows.append(_row(f"{stream_type}: fill to {len(viewers):,} viewers", len(viewers) / took,
                         "mints/s", note=f"{took:.0f} s; target {AUDIENCE:,}"))
        rows.append(_row(f"{stream_type}: mint into empty room", in_empty, "mints/s"))
        rows.append(_row(f"{stream_type}: mint into {len(viewers):,}-viewer room", in_full,
                         "mints/s", ratio=f"{in_full / in_empty:.2f}x", note="target >= 0.9x"))
        if stream_type == "live_stream":
            rows += await _webhooks(target, stack, full, viewers, empty)
    return rows


def _signed(stack: LocalStack, body: str) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = (lk_api.AccessToken(stack.livekit.api_key, stack.livekit.api_secret)
             .with_sha256(digest).to_jwt())
    return {"Authorization": str(token), "Content-Type": "application/webhook+json"}


async def _leave_time(http: aiohttp.ClientSession, target: Target, stack: LocalStack,
                      room: str, identity: str) -> float:
    """Seconds one signed ``participant_left`` for ``identity`` takes to be answered."""
    body = json.dumps({"event": "participant_left", "id": f"EV_{uuid.uuid4().hex}",
                       "createdAt": int(time.time()),
                       "room": {"name": livekit_room_name(target.app.app_id, room)},
                       "participant": {"identity": identity,
                                       "sid": f"PA_{uuid.uuid4().hex[:12]}"}})
    start = time.perf_counter()
    async with http.post(f"{target.base(0)}/api/v1/livekit/webhook", data=body,
                         headers=_signed(stack, body)) as r:
        await _expect(r)
    return time.perf_counter() - start


async def _webhooks(target: Target, stack: LocalStack, full: str, viewers: Sequence[str],
                    small: str) -> list[dict[str, Any]]:
    """Leaves sent one at a time, as LiveKit sends a room's webhooks: in a room where each
    viewer joins and leaves alone (an audience of ~0), and by viewers of the full room."""
    at_zero, at_full = [], []
    async with aiohttp.ClientSession() as http:
        for _ in range(WEBHOOKS):
            identity = f"z-{uuid.uuid4().hex[:10]}"
            await target.mint(http, 0, small, "live_stream", identity=identity)
            at_zero.append(await _leave_time(http, target, stack, small, identity))
        for identity in viewers[:WEBHOOKS]:
            at_full.append(await _leave_time(http, target, stack, full, identity))
    zero, many = statistics.median(at_zero), statistics.median(at_full)
    return [_row("participant_left, audience ~0 (median)", zero * 1000, "ms"),
            _row(f"participant_left, audience {len(viewers):,} (median)", many * 1000, "ms",
                 ratio=f"{many / zero:.2f}x", note="target ~1x")]


# ----------------------------------------------------------------------------- hello share


async def _seat_pairs(target: Target, rooms: int) -> float:
    """take+leave pairs/s: ``CONCURRENCY`` sitters spread over ``rooms`` rooms (each
    sitter its own seat, so no pair conflicts with another)."""
    tag = uuid.uuid4().hex[:6]
    names = [f"seats-{tag}-{r}" for r in range(rooms)]
    sitters: list[list[tuple[str, str, int]]] = [[] for _ in range(CONCURRENCY)]
    async with aiohttp.ClientSession() as http:
        for r, name in enumerate(names):
            await target.mint(http, r, name, "audio_room", identity="host", role="host",
                              seat_count=max(8, CONCURRENCY))
        slots = max(rooms, CONCURRENCY)
        for s in range(slots):
            w, name = s % CONCURRENCY, names[s % rooms]
            answer = await target.mint(http, w, name, "audio_room", identity=f"s{s}")
            sitters[w].append((name, answer["user_token"], s // rooms))
    turn = [0] * CONCURRENCY

    async def op(http: aiohttp.ClientSession, w: int) -> None:
        name, bearer, seat = sitters[w][turn[w] % len(sitters[w])]
        turn[w] += 1
        headers = {"Authorization": f"Bearer {bearer}"}
        url = f"{target.base(w)}/api/v1/rooms/{name}/seats"
        async with http.post(f"{url}/take", json={"seat_index": seat}, headers=headers) as r:
            await _expect(r)
        async with http.post(f"{url}/leave", json={}, headers=headers) as r:
            await _expect(r)
    return await _rate(op)


async def _shares(target: Target) -> list[dict[str, Any]]:
    hello = await _rate(_hello(target))
    tag = uuid.uuid4().hex[:6]
    mints = await _rate(_minting(target, lambda w: f"share-{tag}-{w}", "audio_room"))
    spread = await _seat_pairs(target, SEAT_ROOMS)
    one = await _seat_pairs(target, 1)
    return [_row("GET /healthz (hello world)", hello, "req/s", ratio="1.00x"),
            _row("POST /token (listeners, a room per client)", mints, "mints/s",
                 ratio=f"{mints / hello:.3f}x", note="target >= 0.35x"),
            _row(f"seat take+leave over {SEAT_ROOMS} rooms", spread, "pairs/s",
                 ratio=f"{2 * spread / hello:.3f}x", note="ratio counts requests"),
            _row("seat take+leave in one room", one, "pairs/s",
                 ratio=f"{2 * one / hello:.3f}x", note="ratio counts requests")]


# ----------------------------------------------------------------------------- workers


async def _workers(cluster: ClusterStack) -> list[dict[str, Any]]:
    rows = []
    base: dict[str, float] = {}
    for count in (1, 2):
        target = Target(cluster.worker_urls[:count], cluster.app)
        tag = uuid.uuid4().hex[:6]
        mints = await _rate(_minting(target, lambda w: f"w-{tag}-{w}", "audio_room"))
        pairs = await _seat_pairs(target, SEAT_ROOMS)
        for name, value, unit in (("mints", mints, "mints/s"), ("seat pairs", pairs, "pairs/s")):
            base.setdefault(name, value)
            rows.append(_row(f"cluster, {count} worker{'s' * (count > 1)}: {name}", value, unit,
                             ratio=f"{value / base[name]:.2f}x", note="PostgreSQL, 2 LiveKit nodes"))
    return rows


def run() -> list[dict[str, Any]]:
    app = AppConfig("bench", "bench-key")
    with LocalStack(apps=[app], token_rate=UNLIMITED, mutate_rate=UNLIMITED,
                    read_rate=UNLIMITED) as stack:
        target = Target([stack.base_url], app)
        rows = asyncio.run(_shares(target))
        rows += asyncio.run(_audience(target, stack))
    with ClusterStack(workers=2, apps=[app], token_rate=UNLIMITED, mutate_rate=UNLIMITED,
                      read_rate=UNLIMITED) as cluster:
        rows += asyncio.run(_workers(cluster))
    return rows
