"""Engine throughput on this machine: token mints/s and seat take+leave pairs/s, each beside
the same server's bare ``/healthz`` (aiohttp's hello world) measured in the same run as the
ceiling. Load comes from this process (aiohttp client, fixed concurrency) against a real
engine process + livekit-server on loopback, so client and server share the 2 cores; the
ratio is what to read, not the absolute numbers.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from stream_core.engine.settings import AppConfig
from stream_devstack.stack import LocalStack

__all__ = ["TITLE", "run", "rate", "Op"]

TITLE = "Engine throughput (real engine + livekit-server + SQLite, loopback)"
Op = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


async def rate(op: Op, *, seconds: float, concurrency: int) -> float:
    """Completed operations per second with ``concurrency`` workers for ``seconds``."""
    done = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker(w: int) -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await op(http, w)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return done / (time.perf_counter() - start)


async def _expect(response: aiohttp.ClientResponse) -> Any:
    if response.status != 200:
        raise RuntimeError(f"{response.method} {response.url.path}: {response.status} "
                           f"{await response.text()}")
    return await response.json()


async def _measure(stack: LocalStack, seconds: float, concurrency: int,
                   trials: int) -> list[dict[str, Any]]:
    base, app = stack.base_url, stack.app
    token_url = f"{base}/api/v1/token"
    creds = {"app_id": app.app_id, "app_key": app.app_key}

    async def hello(http: aiohttp.ClientSession, _: int) -> None:
        async with http.get(f"{base}/healthz") as r:
            await _expect(r)

    async def mint(http: aiohttp.ClientSession, w: int) -> None:
        body = {**creds, "identity": f"u{w}-{uuid.uuid4().hex[:6]}", "room_name": f"bench-{w}",
                "stream_type": "audio_room"}
        async with http.post(token_url, json=body) as r:
            await _expect(r)

    # one room with a seat per worker; each worker takes and leaves its own seat
    async with aiohttp.ClientSession() as http:
        async with http.post(token_url, json={**creds, "identity": "host", "role": "host",
                                              "room_name": "seats", "stream_type": "audio_room",
                                              "seat_count": 64}) as r:
            await _expect(r)
        bearers = []
        for w in range(concurrency):
            async with http.post(token_url, json={**creds, "identity": f"s{w}",
                                                  "room_name": "seats",
                                                  "stream_type": "audio_room"}) as r:
                bearers.append((await _expect(r))["user_token"])
    seats = f"{base}/api/v1/rooms/seats/seats"

    async def take_leave(http: aiohttp.ClientSession, w: int) -> None:
        headers = {"Authorization": f"Bearer {bearers[w]}"}
        async with http.post(f"{seats}/take", json={"seat_index": w}, headers=headers) as r:
            await _expect(r)
        async with http.post(f"{seats}/leave", json={}, headers=headers) as r:
            await _expect(r)

    results: dict[str, list[float]] = {"hello": [], "mint": [], "pair": []}
    for _ in range(trials):
        for name, op in (("hello", hello), ("mint", mint), ("pair", take_leave)):
            results[name].append(await rate(op, seconds=seconds, concurrency=concurrency))
    ceiling = statistics.median(results["hello"])
    rows = []
    for name, label in (("hello", "GET /healthz (hello-world ceiling)"),
                        ("mint", "POST /token (audio room join)"),
                        ("pair", "seat take + leave pair")):
        median = statistics.median(results[name])
        rows.append({"operation": label, "per_second": round(median, 1),
                     "of_ceiling": f"{median / ceiling:.1%}",
                     "trials": trials, "concurrency": concurrency})
    return rows


def run(seconds: float = 3.0, concurrency: int = 8, trials: int = 3) -> list[dict[str, Any]]:
    stack = LocalStack(apps=[AppConfig("bench", "bench-key")], token_rate="0/1", read_rate="0/1",
                       mutate_rate="0/1")  # rate 0 = unlimited
    with stack:
        return asyncio.run(_measure(stack, seconds, concurrency, trials))
