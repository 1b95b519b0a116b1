"""The join and call-setup pairs of :mod:`bench.sessions` again, over a simulated WAN.

A Toxiproxy (:mod:`bench.toxiproxy`, started and stopped here) sits on loopback in front of
the engine's HTTP port and LiveKit's signalling port, with a latency toxic of
:data:`LATENCY_MS` on what each sends back (downstream): every request/response round trip
to either gains that much, while media (UDP) and the engine's own calls to LiveKit stay
direct. The SDK reaches the engine through its proxy and is told LiveKit's proxied URL
(``--livekit-public-url``); raw rooms connect through the same proxy. ``SDK - raw`` divided
by the added latency counts the round trips the SDK adds.

A proxied TCP connect costs no round trip here (Toxiproxy accepts locally): on a real WAN
a cold engine connection adds one (plus TLS); the clients below keep theirs pooled, as an
app's does. Skipped, with a row saying why, when no ``toxiproxy-server`` is installed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from bench.paired import Paired, quartiles, spread
from bench.call_setup import call_pairs, milestone_rows
from bench.rig import Clients, Endpoints, Plan
from bench.sessions import join_pairs
from bench.toxiproxy import Toxiproxy, toxiproxy_binary
from stream_core.engine.settings import AppConfig
from stream_devstack.stack import LocalStack, free_port

__all__ = ["TITLE", "LATENCY_MS", "run"]

LATENCY_MS = 50
TITLE = (f"SDK vs raw LiveKit over a simulated WAN (+{LATENCY_MS} ms per round trip to the "
         "engine and to LiveKit signalling; Toxiproxy on loopback)")


def _round_trip_ms(url: str, body: Callable[[], dict[str, Any]] | None = None,
                   tries: int = 9) -> float:
    """Median time of a GET of ``url``, or of a POST of ``body()`` (pooled connection)."""
    with requests.Session() as http:
        http.get(url, timeout=5)  # the connection, pooled
        times = []
        for _ in range(tries):
            payload = body() if body is not None else None
            t0 = time.perf_counter()
            answer = http.post(url, json=payload, timeout=5) if payload is not None \
                else http.get(url, timeout=5)
            times.append((time.perf_counter() - t0) * 1000)
            answer.raise_for_status()
    return quartiles(times)[1]


def _calibration(stack: LocalStack, ends: Endpoints) -> list[dict[str, Any]]:
    """One round trip, and one mint into a new room (the join's only engine request)."""
    app = stack.app

    def mint() -> dict[str, Any]:
        return {"app_id": app.app_id, "app_key": app.app_key, "identity": "calibrator",
                "room_name": f"c-{uuid.uuid4().hex[:8]}", "stream_type": "audio_room"}

    rows = []
    for what, path, body in (("GET /healthz", "/healthz", None),
                             ("POST /api/v1/token (new room)", "/api/v1/token", mint)):
        rows.append({"calibration": what,
                     "direct ms": round(_round_trip_ms(f"{stack.base_url}{path}", body), 1),
                     "through the proxy ms": round(_round_trip_ms(f"{ends.engine}{path}",
                                                                  body), 1)})
    return rows


def _row(paired: Paired) -> dict[str, Any]:
    extra = [s - r for s, r in zip(paired.sdk, paired.raw, strict=True)]
    row = paired.row()
    row["SDK-raw ms"] = round(quartiles(extra)[1], 1)
    row["SDK-raw IQR"] = spread(extra, 0)
    row["round trips"] = round(quartiles(extra)[1] / LATENCY_MS, 2)
    return row


async def _measure(stack: LocalStack, ends: Endpoints, plan: Plan
                   ) -> dict[str, list[dict[str, Any]]]:
    clients = Clients(stack, ends)
    try:
        join = await join_pairs(stack, ends, clients, plan)
        call, sdk_marks, raw_marks = await call_pairs(stack, ends, clients, plan)
    finally:
        clients.dispose()
    return {f"SDK vs raw floor, +{LATENCY_MS} ms per round trip": [_row(join), _row(call)],
            "where call setup's time goes over the WAN (SDK trials, then raw)":
            milestone_rows("SDK", sdk_marks) + milestone_rows("raw", raw_marks)}


def run(plan: Plan | None = None) -> dict[str, list[dict[str, Any]]]:
    if toxiproxy_binary() is None:
        return {"": [{"skipped": "no toxiproxy-server: `make toxiproxy` builds it"}]}
    plan = plan or Plan(join=21, call=11, warmup=2)
    livekit_proxy = free_port()
    stack = LocalStack(apps=[AppConfig("bench-w", "bench-w-key")], token_rate="0/1",
                       read_rate="0/1", mutate_rate="0/1",
                       engine_args=["--livekit-public-url", f"ws://127.0.0.1:{livekit_proxy}"])
    with Toxiproxy() as toxi, stack:
        engine_port = toxi.proxy("engine", stack.port)
        toxi.proxy("livekit", stack.livekit.http_port, listen_port=livekit_proxy)
        for name in ("engine", "livekit"):
            toxi.latency(name, LATENCY_MS)
        ends = Endpoints(f"http://127.0.0.1:{engine_port}", f"ws://127.0.0.1:{livekit_proxy}",
                         f"{stack.base_url}/metrics")
        calibration = _calibration(stack, ends)
        tables = asyncio.run(_measure(stack, ends, plan))
    return {"calibration": calibration, **tables}
