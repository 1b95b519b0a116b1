"""The console's JSON: behind the operator token, what is live, and host-grade actions that
go through the engine's rules (the page itself is tested in Chromium, tests/browser)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from stream_engine.config import OperatorConfig, add_arguments, from_args
from tests.ops.conftest import EngineClient, token_body

TOKEN = "op-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


async def _join(client: TestClient[Any, Any], identity: str, room: str,
                **kwargs: Any) -> dict[str, str]:
    answer = await client.post("/api/v1/token", json=token_body(identity, room, **kwargs))
    assert answer.status == 200, await answer.text()
    return {"Authorization": f"Bearer {(await answer.json())['user_token']}"}


async def _live(client: TestClient[Any, Any]) -> dict[str, Any]:
    answer = await client.get("/console/api/live", headers=OPERATOR)
    assert answer.status == 200, await answer.text()
    live: dict[str, Any] = await answer.json()
    return live


@pytest.fixture
async def console(engine_client: EngineClient) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await engine_client(
        operators=[OperatorConfig("ops", TOKEN)])
    return client


async def test_without_operators_there_is_no_console(engine_client: EngineClient) -> None:
    client = await engine_client()
    assert (await client.get("/console")).status == 404
    assert (await client.get("/console/api/live")).status == 404


async def test_the_page_is_served_and_the_data_needs_the_token(
        console: TestClient[Any, Any]) -> None:
    page = await console.get("/console")
    assert page.status == 200 and "utd-stream console" in await page.text()
    assert (await console.get("/console/console.js")).status == 200
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        refused = await console.get("/console/api/live", headers=headers)
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "unauthenticated"
    bearer = await _join(console, "someone", "r")  # a participant's bearer is no operator
    assert (await console.get("/console/api/live", headers=bearer)).status == 401


async def test_live_rooms_and_calls_with_audience_counts(console: TestClient[Any, Any]) -> None:
    host = await _join(console, "host", "lobby", role="host", seat_count=3)
    ann = await _join(console, "ann", "lobby")
    await _join(console, "bob", "lobby")
    await console.post("/api/v1/rooms/lobby/seats/take", json={"seat_index": 0}, headers=host)
    await console.post("/api/v1/rooms/lobby/seats/take", json={"seat_index": 2}, headers=ann)
    await _join(console, "star", "show", role="host", stream_type="live_stream")
    fan = await _join(console, "fan", "show", stream_type="live_stream")
    await console.post("/api/v1/rooms/show/stage/request", headers=fan)
    caller = await console.post("/api/v1/auth", json={"app_id": "a", "app_key": "k",
                                                      "identity": "c1"})
    call = await console.post("/api/v1/calls", json={"callee_identity": "c2",
                                                     "type": "audio_call"},
                              headers={"Authorization": f"Bearer {(await caller.json())['user_token']}"})
    assert call.status == 200

    live = await _live(console)
    assert live["operator"] == "ops"
    rooms = {r["name"]: r for r in live["rooms"]}
    lobby, show = rooms["lobby"], rooms["show"]
    assert lobby["kind"] == "audio_room" and lobby["app_id"] == "a"
    assert [s["occupant"] for s in lobby["state"]["seats"]] == ["host", None, "ann"]
    assert (lobby["present"], lobby["audience"]) == (3, 1)
    assert show["kind"] == "live_stream" and show["state"]["hands"] == ["fan"]
    assert show["audience"] == 1
    assert [(c["app_id"], c["caller_identity"]) for c in live["calls"]] == [("a", "c1")]
    assert live["calls"][0]["status"] in ("initiating", "ringing")


async def test_host_grade_actions_follow_the_rules(console: TestClient[Any, Any]) -> None:
    host = await _join(console, "host", "lobby", role="host", seat_count=2)
    ann = await _join(console, "ann", "lobby")
    await console.post("/api/v1/rooms/lobby/seats/take", json={"seat_index": 1}, headers=ann)
    kick = await console.post("/console/api/rooms/a/lobby/kick_from_seat",
                              json={"identity": "ann"}, headers=OPERATOR)
    assert kick.status == 200, await kick.text()
    grid = await (await console.get("/api/v1/rooms/lobby/seats", headers=host)).json()
    assert grid["seats"][1]["occupant"] is None
    again = await console.post("/console/api/rooms/a/lobby/kick_from_seat",
                               json={"identity": "ann"}, headers=OPERATOR)
    assert again.status == 409  # the core's rule: nobody to kick
    banned = await console.post("/console/api/rooms/a/lobby/ban", json={"identity": "ann"},
                                headers=OPERATOR)
    assert banned.status == 422  # not an operator action
    unauthenticated = await console.post("/console/api/rooms/a/lobby/close")
    assert unauthenticated.status == 401

    await _join(console, "star", "show", role="host", stream_type="live_stream")
    fan = await _join(console, "fan", "show", stream_type="live_stream")
    star = await _join(console, "star", "show", role="host", stream_type="live_stream")
    await console.post("/api/v1/rooms/show/stage/invite", json={"identity": "fan"},
                       headers=star)
    removed = await console.post("/console/api/rooms/a/show/remove_from_stage",
                                 json={"identity": "fan"}, headers=OPERATOR)
    assert removed.status == 200, await removed.text()
    stage = await (await console.get("/api/v1/rooms/show/stage", headers=fan)).json()
    assert [m["identity"] for m in stage["members"]] == ["star"]

    closed = await console.post("/console/api/rooms/a/lobby/close", headers=OPERATOR)
    assert closed.status == 200
    assert "lobby" not in {r["name"] for r in (await _live(console))["rooms"]}
    assert (await console.get("/api/v1/rooms/lobby/seats", headers=host)).status == 404


async def test_an_operator_ends_a_call(console: TestClient[Any, Any]) -> None:
    caller = await console.post("/api/v1/auth", json={"app_id": "a", "app_key": "k",
                                                      "identity": "c1"})
    bearer = {"Authorization": f"Bearer {(await caller.json())['user_token']}"}
    call = await (await console.post("/api/v1/calls", json={"callee_identity": "c2",
                                                            "type": "audio_call"},
                                     headers=bearer)).json()
    ended = await console.post(f"/console/api/calls/a/{call['call_id']}/end", headers=OPERATOR)
    assert ended.status == 200
    assert (await ended.json())["status"] == "ended"
    assert (await _live(console))["calls"] == []
    missing = await console.post("/console/api/calls/a/nope/end", headers=OPERATOR)
    assert missing.status == 404


def test_operators_come_from_flags_and_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.setenv("UTD_ENGINE_OPERATORS", "eve:eve-token-0123456789")
    config = from_args(parser.parse_args(["--operator", "ops:ops-token-0123456789"]))
    assert [o.name for o in config.operators] == ["ops", "eve"]
    assert "ops-token" not in repr(config)  # secrets never in a repr
    with pytest.raises(SystemExit):
        from_args(parser.parse_args(["--operator", "ops:short"]))
