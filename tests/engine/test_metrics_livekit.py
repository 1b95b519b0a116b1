"""``/metrics`` of the real engine on a real livekit-server: control calls, their failures
and webhooks by type, counted where they happen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.stack_fixtures import StackApi, connected, unique, wait_until
from tests.ops.test_metrics import samples, value

pytestmark = [pytest.mark.livekit, pytest.mark.engine]


def _scrape(api: StackApi) -> Any:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.text)


async def test_livekit_calls_failures_and_webhooks_are_counted(api: StackApi) -> None:
    before = _scrape(api)
    room, host = api.audio_room(seats=2)
    absent = api.join(unique("absent"), room, "audio_room")  # a token, never connected
    api.act(absent, "seats/take", {"seat_index": 1})  # its grant finds nobody: not_found
    async with connected(api.stack.livekit.url, host.token):
        def joined() -> Any:
            now = _scrape(api)
            grew = (value(now, "utd_engine_webhook_events_total", event="participant_joined")
                    > value(before, "utd_engine_webhook_events_total",
                            event="participant_joined"))
            return now if grew else None

        after = wait_until(joined, "a participant_joined webhook to be counted", timeout=15)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("utd_engine_livekit_calls_total", call="create_room") >= 1
    assert grew("utd_engine_livekit_calls_total", call="update_permissions") >= 1
    assert grew("utd_engine_livekit_failures_total", call="update_permissions",
                code="not_found") >= 1
    assert grew("utd_engine_livekit_failures_total", call="create_room",
                code="not_found") == 0
    assert grew("utd_engine_webhook_duration_seconds_count", event="participant_joined") >= 1
