"""``/metrics``: a scenario, then a scrape that must show what the scenario did."""

from __future__ import annotations

import asyncio
import re

from prometheus_client.parser import text_string_to_metric_families

from stream_core.engine.settings import RateLimit
from tests.ops.conftest import EngineClient, token_body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_scrape_after_a_scenario_shows_its_counts(engine_client: EngineClient) -> None:
    client = await engine_client(ring_timeout=0.3, mutate_limit=RateLimit(0.01, 2))
    host = await (await client.post("/api/v1/token",
                                     json=token_body("host", "r", role="host"))).json()
    bearer = {"Authorization": f"Bearer {host['user_token']}"}
    setup = await client.post("/api/v1/rooms/r/seats/setup", json={"seat_count": 4},
                              headers=bearer)
    assert setup.status == 200, await setup.text()
    taken = await client.post("/api/v1/rooms/r/seats/take", json={"seat_index": 1},
                              headers=bearer)
    assert taken.status == 200
    refused = await client.post("/api/v1/rooms/r/seats/take", json={"seat_index": 2},
                                headers=bearer)
    assert refused.status == 429  # a burst of 2 mutations, then the limit
    await client.get("/no/such/path")

    caller = await (await client.post("/api/v1/auth", json={
        "app_id": "a", "app_key": "k", "identity": "caller"})).json()
    callee = await (await client.post("/api/v1/auth", json={
        "app_id": "a", "app_key": "k", "identity": "callee"})).json()
    created = await client.post("/api/v1/calls", json={"callee_identity": "x",
                                                       "type": "audio_call"},
                                headers={"Authorization": f"Bearer {caller['user_token']}"})
    assert created.status == 200, await created.text()
    # a long-poll is open while we scrape (it returns the ringing call... for "x" only)
    poll = asyncio.ensure_future(client.get(
        "/api/v1/calls/incoming/next?timeout=5",
        headers={"Authorization": f"Bearer {callee['user_token']}"}))
    try:
        for _ in range(100):
            during = samples(await (await client.get("/metrics")).text())
            if value(during, "utd_engine_long_polls_open") == 1:
                break
            await asyncio.sleep(0.02)
        assert value(during, "utd_engine_long_polls_open") == 1
        for _ in range(100):  # the ring timer misses the call after 0.3 s
            scrape = samples(await (await client.get("/metrics")).text())
            if value(scrape, "utd_engine_ring_timeouts_total") == 1:
                break
            await asyncio.sleep(0.05)
    finally:
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)

    assert value(scrape, "utd_engine_ring_timeouts_total") == 1
    take = "/api/v1/rooms/{room_name}/seats/take"
    assert value(scrape, "utd_engine_requests_total", route=take, method="POST",
                 status="200") == 1
    assert value(scrape, "utd_engine_requests_total", route=take, method="POST",
                 status="429") == 1
    assert value(scrape, "utd_engine_rate_limited_total", route=take) == 1
    assert value(scrape, "utd_engine_requests_total", route="/api/v1/token", method="POST",
                 status="200") == 1
    assert value(scrape, "utd_engine_requests_total", route="unmatched", method="GET",
                 status="404") == 1
    assert value(scrape, "utd_engine_request_duration_seconds_count", route=take,
                 method="POST") == 2
    text = await (await client.get("/metrics")).text()
    assert re.search(r'utd_engine_request_duration_seconds_bucket\{le="0.005",method="POST"',
                     text)
