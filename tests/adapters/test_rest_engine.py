"""What only the REST adapter promises: retries, timeouts and error mapping at the boundary.

A scripted loopback HTTP server plays the engine, so every answer (429, 503, garbage) is
exactly the one under test.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from adapters.rest.engine import RestEngine
from stream_core import operations as ops
from stream_core import UTDStreamException


class Script:
    """Answers to give, in order (the last one repeats), and the requests seen."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], Any]] = []
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.seen.append((self.command, self.path, dict(self.headers),
                                self.rfile.read(length)))
            status, headers, body = script.answers[min(len(script.seen), len(script.answers)) - 1]
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    thread.join(5)


GRID = {"room_name": "r", "host": "h", "mode": "free", "seats": [], "requests": [],
        "invites": {}, "version": 3}


def engine(url: str, **kwargs: Any) -> RestEngine:
    return RestEngine(app_id="app", app_key="sekrit-app-key", base_url=url, **kwargs)


def test_error_answers_map_to_utd_stream_exception(server):
    url, script = server
    script.answers = [(422, {}, {"error": {"code": "invalid_argument",
                                           "message": "seat_index: too big",
                                           "field": "seat_index"}})]
    with pytest.raises(UTDStreamException) as info:
        engine(url).run(ops.TAKE_SEAT, "bearer", room_name="r", seat_index=99)
    exc = info.value
    assert (exc.status_code, exc.code, exc.field) == (422, "invalid_argument", "seat_index")
    assert exc.message == "seat_index: too big"


def test_429_is_retried_honouring_retry_after_then_succeeds(server):
    url, script = server
    script.answers = [(429, {"Retry-After": "0"}, {"error": {"code": "rate_limited",
                                                              "message": "slow down"}}),
                      (200, {}, GRID)]
    grid = engine(url).run(ops.TAKE_SEAT, "bearer", room_name="r", seat_index=0)  # a POST: retried only because of 429
    assert grid.version == 3 and len(script.seen) == 2


def test_429_without_retries_reports_retry_after(server):
    url, script = server
    script.answers = [(429, {"Retry-After": "7"}, {"error": {"code": "rate_limited",
                                                              "message": "slow down"}})]
    with pytest.raises(UTDStreamException) as info:
        engine(url, retries=0).run(ops.GET_SEATS, "bearer", room_name="r")
    assert info.value.is_rate_limited and info.value.retry_after == 7.0


def test_reads_retry_on_503_but_writes_do_not(server):
    url, script = server
    script.answers = [(503, {}, {"error": {"code": "unavailable", "message": "busy"}}),
                      (200, {}, GRID)]
    assert engine(url).run(ops.GET_SEATS, "bearer", room_name="r").version == 3
    script.seen.clear()
    script.answers = [(503, {}, {"error": {"code": "unavailable", "message": "busy"}})]
    with pytest.raises(UTDStreamException) as info:
        engine(url).run(ops.TAKE_SEAT, "bearer", room_name="r", seat_index=0)
    assert info.value.status_code == 503 and len(script.seen) == 1


def test_malformed_answers_are_502(server):
    url, script = server
    script.answers = [(200, {}, {"room_name": "r"})]  # no mode
    with pytest.raises(UTDStreamException) as info:
        engine(url).run(ops.GET_SEATS, "bearer", room_name="r")
    assert info.value.status_code == 502 and info.value.field == "mode"
    script.answers = [(200, {}, b"<html>")]
    with pytest.raises(UTDStreamException) as info:
        engine(url).run(ops.GET_SEATS, "bearer", room_name="r")
    assert info.value.code == "bad_response"


def test_unreachable_engine_fails_fast_as_engine_unavailable_and_retryable():
    started = time.monotonic()
    with pytest.raises(UTDStreamException) as info:
        engine("http://127.0.0.1:9", connect_timeout=0.5).run(
            ops.TAKE_SEAT, "b", room_name="r", seat_index=0)
    assert time.monotonic() - started < 1.0  # default retries: no backoff on a refusal
    assert info.value.code == "engine_unavailable" and info.value.status_code is None
    assert info.value.is_engine_unavailable and info.value.is_retryable


def test_retryable_means_nothing_was_decided():
    assert UTDStreamException("busy", status_code=503, code="unavailable").is_retryable
    assert UTDStreamException.rate_limited(1.0).is_retryable
    assert not UTDStreamException.illegal("no").is_retryable
    assert not UTDStreamException("slow", code="timeout").is_retryable


def test_token_mints_go_to_the_token_url_and_secrets_stay_out_of_urls_and_logs(server, caplog):
    url, script = server
    script.answers = [(200, {}, {"token": "lk-jwt", "url": "ws://x", "room_name": "r",
                                 "user_token": "bearer-xyz"})]
    with caplog.at_level(logging.DEBUG):
        rest = RestEngine(app_id="app", app_key="sekrit-app-key", base_url="http://127.0.0.1:9",
                          token_base_url=url)
        from stream_core import UTDStreamType
        grant = rest.run(ops.MINT_TOKEN, None, identity="u", room_name="r",
                         stream_type=UTDStreamType.AUDIO_ROOM)
    method, path, headers, body = script.seen[0]
    assert (method, path) == ("POST", "/api/v1/token")
    assert json.loads(body)["app_key"] == "sekrit-app-key"
    assert "sekrit" not in caplog.text and "bearer-xyz" not in caplog.text
    assert "bearer-xyz" not in repr(grant) and "lk-jwt" not in repr(grant)


def test_bearer_travels_in_the_authorization_header(server):
    url, script = server
    script.answers = [(200, {}, GRID)]
    engine(url).run(ops.GET_SEATS, "my-bearer", room_name="room with space")
    _, path, headers, _ = script.seen[0]
    assert path == "/api/v1/rooms/room%20with%20space/seats"
    assert headers["Authorization"] == "Bearer my-bearer"


def test_every_operation_is_requested_at_its_rows_method_and_path(server):
    """The client builds no URL of its own: each row's method and path, parameters filled."""
    url, script = server
    rest = engine(url, retries=0)
    for op in ops.OPERATIONS:
        script.answers = [(204, {}, b"")]
        args = {p: f"{p}-x" for p in op.path_params}
        rest.run(op, None if op.credentials is ops.Credentials.APP else "b", **args)
        method, path, headers, body = script.seen[-1]
        assert method == op.http, op
        assert path.split("?")[0] == op.url.format_map({p: f"{p}-x" for p in op.path_params})


def test_a_proxy_in_the_environment_is_still_used(server, monkeypatch):
    """The environment is read once, at construction, not at every request; what it says
    still holds: with ``HTTP_PROXY`` set, requests go through the proxy (here the scripted
    server, which sees the absolute URL a proxy is asked for)."""
    proxy_url, script = server
    script.answers = [(200, {}, {"rooms": []})]
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    client = engine("http://engine.invalid:9999")
    monkeypatch.delenv("HTTP_PROXY")  # read once: later changes do not matter
    client._request("GET", "/api/v1/healthz", None)
    assert script.seen[0][1] == "http://engine.invalid:9999/api/v1/healthz"


def test_no_proxy_in_the_environment_goes_direct(server, monkeypatch):
    url, script = server
    script.answers = [(200, {}, {})]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    engine(url)._request("GET", "/api/v1/healthz", None)
    assert script.seen[0][1] == "/api/v1/healthz"
