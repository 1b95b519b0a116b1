"""What the engine shows Prometheus at ``GET /metrics``: requests, LiveKit, webhooks, rings.

Each engine app has its own registry (several apps in one process, as in tests, never share
a counter). Counters are per process, as Prometheus expects: a deployment of several engines
is summed by the scraper. Route labels are the route's path template
(``/api/v1/rooms/{room_name}/seats/take``), never the concrete path, so the number of series
stays bounded whatever the callers send; an unknown path is ``unmatched``.

| metric | labels | what |
|---|---|---|
| ``utd_engine_requests_total`` | route, method, status | answered requests |
| ``utd_engine_request_duration_seconds`` | route, method | latency histogram |
| ``utd_engine_rate_limited_total`` | route | 429 refusals |
| ``utd_engine_long_polls_open`` | | long-polls waiting for a call right now |
| ``utd_engine_livekit_calls_total`` | call | LiveKit server API calls |
| ``utd_engine_livekit_failures_total`` | call, code | failed ones, by the engine's code |
| ``utd_engine_webhook_events_total`` | event | LiveKit webhooks handled, by type |
| ``utd_engine_webhook_duration_seconds`` | event | their handling time |
| ``utd_engine_ring_timeouts_total`` | | calls that rang out unanswered |
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stream_core.models import UTDCall
from stream_core.operations import WAIT_INCOMING_CALL

__all__ = ["EngineMetrics", "METRICS"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LONG_POLL = WAIT_INCOMING_CALL.url


class EngineMetrics:
    """The engine's Prometheus metrics, on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("utd_engine_requests", "Answered HTTP requests",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("utd_engine_request_duration_seconds",
                                 "HTTP request latency", ["route", "method"], registry=r)
        self.rate_limited = Counter("utd_engine_rate_limited", "Requests refused with 429",
                                    ["route"], registry=r)
        self.long_polls = Gauge("utd_engine_long_polls_open",
                                "Long-polls for an incoming call waiting now", registry=r)
        self.livekit_calls = Counter("utd_engine_livekit_calls", "LiveKit server API calls",
                                     ["call"], registry=r)
        self.livekit_failures = Counter("utd_engine_livekit_failures",
                                        "LiveKit server API calls that failed",
                                        ["call", "code"], registry=r)
        self.webhooks = Counter("utd_engine_webhook_events", "LiveKit webhooks handled",
                                ["event"], registry=r)
        self.webhook_seconds = Histogram("utd_engine_webhook_duration_seconds",
                                         "LiveKit webhook handling time", ["event"],
                                         registry=r)
        self.ring_timeouts = Counter("utd_engine_ring_timeouts",
                                     "Calls that rang out unanswered", registry=r)

    # -- the hooks the engine's parts call ---------------------------------------------
    def livekit_call(self, call: str, failure: str | None) -> None:
        """A LiveKit server API call ended (``failure``: the engine's error code, if any)."""
        self.livekit_calls.labels(call).inc()
        if failure is not None:
            self.livekit_failures.labels(call, failure).inc()

    def ring_timed_out(self, call: UTDCall) -> None:
        self.ring_timeouts.inc()

    @contextmanager
    def webhook(self, event: str) -> Iterator[None]:
        """Count and time the handling of one webhook (``event`` is LiveKit's type)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.webhooks.labels(event).inc()
            self.webhook_seconds.labels(event).observe(time.perf_counter() - started)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost middleware: sees the status every answer leaves with."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started = time.perf_counter()
        status = 500
        polling = route == _LONG_POLL
        if polling:
            self.long_polls.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if polling:
                self.long_polls.dec()
            self.requests.labels(route, request.method, str(status)).inc()
            self.latency.labels(route, request.method).observe(time.perf_counter() - started)
            if status == 429:
                self.rate_limited.labels(route).inc()

    async def serve(self, _: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    def __repr__(self) -> str:
        return f"<EngineMetrics registry={id(self.registry):#x}>"


METRICS = web.AppKey("metrics", EngineMetrics)
