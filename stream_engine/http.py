"""The engine's aiohttp application: routes from ``stream_engine.routes``, errors as JSON.

Every failure leaves as ``{"error": {"code", "message", "field"?}}`` with its status (429
with ``Retry-After``); bad input is 400/422, never 500. Bodies are loaded with the wire
schemas the client uses, answers dumped with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from livekit import api as lk_api

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.wire import CallListSchema, CallSchema, dump, load

from stream_engine.config import EngineConfig
from stream_engine.livekit_control import TRACK_SOURCE_NAMES, LiveKitControl
from stream_engine.openapi import build_openapi
from stream_engine.routes import ROUTES, Route
from stream_engine.service import EngineService
from stream_engine.store import Store

__all__ = ["create_app", "SERVICE"]

_log = logging.getLogger("utd_stream.engine")
_SOURCE_NAMES = {int(value): name for name, value in TRACK_SOURCE_NAMES.items()}
SERVICE = web.AppKey("service", EngineService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return web.json_response({"error": body}, status=status, headers=headers)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UTDStreamException as exc:
        headers = None
        if exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return _error(exc.status_code or 500, exc.code or ErrorCode.INTERNAL, exc.message,
                      exc.field, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: ErrorCode.NOT_FOUND, 405: "method_not_allowed"}.get(exc.status, "http_error")
        return _error(exc.status, code, exc.reason)
    except asyncio.CancelledError:
        raise
    except SQLAlchemyError as exc:  # the database is unreachable or refusing: retry later
        _log.error("database error on %s %s: %s", request.method, request.path,
                   type(exc).__name__)
        return _error(503, ErrorCode.UNAVAILABLE, "the engine's database is unavailable",
                      headers={"Retry-After": "1"})
    except Exception:
        _log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, ErrorCode.INTERNAL, "internal error")


async def _body(request: web.Request, route: Route) -> dict[str, Any]:
    if route.request is None:
        return {}
    raw = await request.read()  # bytes: a bad charset or non-UTF-8 body is a 400, not a 500
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except ValueError:  # includes UnicodeDecodeError
        raise UTDStreamException("body is not valid JSON", status_code=400,
                                 code=ErrorCode.INVALID_ARGUMENT, field="body") from None
    if not isinstance(payload, dict):
        raise UTDStreamException("body must be a JSON object", status_code=400,
                                 code=ErrorCode.INVALID_ARGUMENT, field="body")
    loaded: dict[str, Any] = load(route.request(), payload)
    return loaded


def _answer(route: Route, result: Any) -> web.Response:
    if route.response is None or result is None:
        return web.json_response({"ok": True})
    return web.json_response(dump(route.response(), result))


def _handler(route: Route) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        service = request.app[SERVICE]
        if not route.auth:
            body = await _body(request, route)
            if route.path.endswith("/token"):
                return _answer(route, await service.mint_token(body))
            return _answer(route, await service.authenticate(body))
        # credentials first: an unauthenticated caller gets 401, never a schema lesson (422)
        who = service.caller(request.headers.get("Authorization"))
        body = await _body(request, route)
        info = request.match_info
        if route.op is not None:
            args, kwargs = route.args(body)
            result = await service.room_op(who, info["room_name"], route.op, *args, **kwargs)
            return _answer(route, result)
        if route.path == "/api/v1/calls":
            return _answer(route, await service.create_call(who, body))
        if route.path == "/api/v1/calls/incoming":
            calls = await service.incoming_calls(who)
            return web.json_response(dump(CallListSchema(), {"calls": calls}))
        if route.path == "/api/v1/calls/incoming/next":
            call = await service.next_incoming_call(who, _timeout(request))
            return web.Response(status=204) if call is None else \
                web.json_response(dump(CallSchema(), call))
        if route.method == "GET":
            return _answer(route, await service.get_call(who, info["call_id"]))
        trigger = {"ringing": "ring"}.get(route.path.rsplit("/", 1)[1],
                                          route.path.rsplit("/", 1)[1])
        return _answer(route, await service.call_op(who, info["call_id"], trigger))

    return handle


def _timeout(request: web.Request) -> float:
    raw = request.query.get("timeout", "30")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UTDStreamException.invalid("timeout must be a non-negative number of seconds",
                                         field="timeout")
    return value


async def _webhook(request: web.Request) -> web.Response:
    """LiveKit webhooks, verified with LiveKit's own receiver (signed with the API secret)."""
    service = request.app[SERVICE]
    body = (await request.read()).decode("utf-8", errors="replace")  # garbage fails the check
    receiver = lk_api.WebhookReceiver(lk_api.TokenVerifier(service.config.livekit_api_key,
                                                            service.config.livekit_api_secret))
    try:
        event = receiver.receive(body, request.headers.get("Authorization", ""))
    except Exception:
        raise UTDStreamException.unauthenticated("webhook signature did not verify") from None
    _log.info("webhook %s room=%s identity=%s sid=%s", event.event, event.room.name,
              event.participant.identity, event.participant.sid)
    if event.event == "participant_left" and event.participant.identity:
        await service.participant_left(event.room.name, event.participant.identity,
                                       sid=event.participant.sid)
    elif event.event == "participant_joined" and event.participant.identity:
        granted = event.participant.permission
        await service.participant_joined(
            event.room.name, event.participant.identity, can_publish=granted.can_publish,
            sources=frozenset(_SOURCE_NAMES.get(s, "unknown")
                              for s in granted.can_publish_sources))
    elif event.event == "room_finished":
        await service.room_finished(event.room.name)
    return web.json_response({"ok": True})


def create_app(config: EngineConfig, *, store: Store | None = None,
               control_factory: Callable[[], LiveKitControl] | None = None) -> web.Application:
    """The engine as an aiohttp app; LiveKit control and the ring timer start with it."""
    app = web.Application(middlewares=[errors_as_json])
    document = build_openapi()
    own_store = store is None
    the_store = store or Store(config.db_url)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def lifecycle(app: web.Application) -> Any:
        control = (control_factory or (lambda: LiveKitControl(
            config.livekit_url, config.livekit_api_key, config.livekit_api_secret)))()
        service = EngineService(config, the_store, control)
        app[SERVICE] = service
        timer = asyncio.get_running_loop().create_task(service.run_ring_timer(),
                                                       name="utd-engine-ring-timer")
        yield
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
        await control.aclose()
        if own_store:
            the_store.close()

    app.cleanup_ctx.append(lifecycle)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _handler(route))
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/healthz", health)
    app.router.add_post("/api/v1/livekit/webhook", _webhook)
    return app
