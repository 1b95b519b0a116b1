"""CORS: a web page on an allowed origin may call the engine; others get no headers."""

from __future__ import annotations

import argparse

import pytest

from stream_engine.config import add_arguments, from_args
from tests.ops.conftest import EngineClient, token_body

APP = "https://app.example.com"


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"}


async def test_off_by_default_a_preflight_gets_no_allow_origin(
        engine_client: EngineClient) -> None:
    client = await engine_client()
    response = await client.options("/api/v1/token", headers=_preflight(APP))
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_preflight_from_an_allowed_origin_is_answered_for_every_route(
        engine_client: EngineClient) -> None:
    client = await engine_client(cors_origins=(APP,))
    for path, method in [("/api/v1/token", "POST"), ("/api/v1/auth", "POST"),
                         ("/api/v1/rooms/r/seats/take", "POST"),
                         ("/api/v1/rooms/r/seats", "GET"), ("/api/v1/calls/c1/end", "POST")]:
        response = await client.options(path, headers=_preflight(APP, method))
        assert response.status == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == APP
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert method in response.headers["Access-Control-Allow-Methods"]


async def test_answers_and_errors_carry_the_headers_and_expose_retry_after(
        engine_client: EngineClient) -> None:
    client = await engine_client(cors_origins=(APP,))
    ok = await client.post("/api/v1/token", json=token_body("u1", "r1", role="host"),
                           headers={"Origin": APP})
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in ok.headers["Access-Control-Expose-Headers"]
    bad = await client.post("/api/v1/token", json={**token_body("u1", "r1"), "app_key": "x"},
                            headers={"Origin": APP})
    assert bad.status == 401
    assert bad.headers["Access-Control-Allow-Origin"] == APP
    seats = await client.get("/api/v1/rooms/r1/seats", headers={"Origin": APP})
    assert seats.status == 401  # no bearer
    assert seats.headers["Access-Control-Allow-Origin"] == APP


async def test_another_origin_is_refused_its_preflight(engine_client: EngineClient) -> None:
    client = await engine_client(cors_origins=(APP,))
    response = await client.options("/api/v1/token", headers=_preflight("https://evil.test"))
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    plain = await client.post("/api/v1/token", json=token_body("u2", "r2"),
                              headers={"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_any_origin_for_development(engine_client: EngineClient) -> None:
    client = await engine_client(cors_origins=("*",))
    response = await client.options("/api/v1/token", headers=_preflight("http://localhost:3000"))
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def _config(argv: list[str]) -> tuple[str, ...]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(argv)).cors_origins


def test_origins_come_from_flags_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UTD_ENGINE_CORS_ORIGINS", "https://a.test, http://b.test:8080/")
    assert _config(["--cors-origin", "https://c.test"]) == (
        "https://c.test", "https://a.test", "http://b.test:8080")
    monkeypatch.delenv("UTD_ENGINE_CORS_ORIGINS")
    assert _config([]) == ()
    with pytest.raises(SystemExit):
        _config(["--cors-origin", "app.example.com/path"])
