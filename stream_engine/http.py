"""The engine's aiohttp application: one route per row of ``stream_core.operations``.

Every failure leaves as ``{"error": {"code", "message", "field"?}}`` with its status (429
with ``Retry-After``); bad input is 400/422, never 500. Bodies are loaded with the wire
schemas the client uses, answers dumped with them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from livekit import api as lk_api

from stream_core.engine.service import EngineService
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.operations import OPERATIONS, Credentials, Operation
from stream_core.ports import ControlPort, WebhookEvent
from stream_core.wire import dump, load, schema_of

from stream_engine.bearers import JwtBearers
from stream_engine.config import EngineConfig
from stream_engine.console import add_console
from stream_engine.cors import enable_cors
from stream_engine.livekit_control import LiveKitControl
from stream_engine.livekit_tokens import SOURCE_BY_VALUE
from stream_engine.metrics import METRICS, EngineMetrics
from stream_engine.openapi import build_openapi
from stream_engine.shared_limits import RedisRateLimiter
from stream_engine.wakeups import listen
from stream_engine.store import Store

__all__ = ["create_app", "SERVICE"]

_log = logging.getLogger("utd_stream.engine")
SERVICE = web.AppKey("service", EngineService)
CONFIG = web.AppKey("config", EngineConfig)
#: Request bodies: bytes and nesting, bounded before parsing (the largest valid body, a
#: call's metadata, is capped well below this).
MAX_BODY_BYTES = 64 * 1024
MAX_BODY_DEPTH = 16
_REASON_NAMES = {value: name for name, value in lk_api.DisconnectReason.items()}
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
    except Exception:
        _log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, ErrorCode.INTERNAL, "internal error")


async def _body(request: web.Request, op: Operation[Any]) -> dict[str, Any]:
    if op.request is None:
        return {}
    raw = await request.read()  # bytes: a bad charset or non-UTF-8 body is a 400, not a 500
    if _depth(raw) > MAX_BODY_DEPTH:  # before parsing: the parser recurses per level
        raise _bad_body(f"body nests deeper than {MAX_BODY_DEPTH} levels")
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except ValueError:  # includes UnicodeDecodeError
        raise _bad_body("body is not valid JSON") from None
    if not _encodable(payload):  # "\ud800" escapes decode to lone surrogates
        raise _bad_body("body contains a lone surrogate (not valid Unicode)")
    if not isinstance(payload, dict):
        raise UTDStreamException("body must be a JSON object", status_code=400,
                                 code=ErrorCode.INVALID_ARGUMENT, field="body")
    loaded: dict[str, Any] = load(schema_of(op.request), payload)
    return loaded


def _depth(raw: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (strings skipped), without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _encodable(value: Any) -> bool:
    """True if every string in a loaded JSON value is valid Unicode (encodes as UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def _bad_body(message: str) -> UTDStreamException:
    return UTDStreamException(message, status_code=400, code=ErrorCode.INVALID_ARGUMENT,
                              field="body")


def _answer(op: Operation[Any], result: Any) -> web.Response:
    if result is None and op.empty is not None:
        return web.Response(status=op.empty)
    if op.response is None or result is None:
        return web.json_response({"ok": True})
    if op.envelope is not None:
        result = {op.envelope: result}
    return web.json_response(dump(schema_of(op.response), result))


def _handler(op: Operation[Any]) -> Handler:
    """One handler for every operation: prove the caller, load, perform, dump."""

    async def handle(request: web.Request) -> web.StreamResponse:
        service = request.app[SERVICE]
        # credentials first: an unauthenticated caller gets 401, never a schema lesson (422)
        caller = None
        if op.credentials is Credentials.BEARER:
            caller = service.caller(_bearer(request.headers.get("Authorization")))
        args = await _body(request, op)
        args.update(request.match_info)
        for name, _ in op.query:
            args[name] = _seconds(request, name)
        return _answer(op, await service.perform(op, caller, args))

    return handle


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _seconds(request: web.Request, name: str, default: str = "30") -> float:
    raw = request.query.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UTDStreamException.invalid(f"{name} must be a non-negative number of seconds",
                                         field=name)
    return value


async def _webhook(request: web.Request) -> web.Response:
    """LiveKit webhooks, verified with LiveKit's own receiver (signed with the API secret)."""
    service = request.app[SERVICE]
    body = (await request.read()).decode("utf-8", errors="replace")  # garbage fails the check
    config = request.app[CONFIG]
    receiver = lk_api.WebhookReceiver(lk_api.TokenVerifier(config.livekit_api_key,
                                                            config.livekit_api_secret))
    try:
        event = receiver.receive(body, request.headers.get("Authorization", ""))
    except Exception:
        raise UTDStreamException.unauthenticated("webhook signature did not verify") from None
    with request.app[METRICS].webhook(event.event or "unknown"):
        await _handle_webhook(service, event)
    return web.json_response({"ok": True})


async def _handle_webhook(service: EngineService, event: lk_api.WebhookEvent) -> None:
    """Record the event (once per id) and answer; the service applies it after, per room
    in arrival order (LiveKit drops a room's events that wait too long behind a slow one)."""
    reason = event.participant.disconnect_reason
    _log.info("webhook %s room=%s identity=%s sid=%s reason=%s", event.event, event.room.name,
              event.participant.identity, event.participant.sid,
              _REASON_NAMES.get(reason, reason))
    granted = event.participant.permission
    # LiveKit reports the end of a connection that never became active (the client left or
    # was replaced while still joining) as participant_connection_aborted, not
    # participant_left (livekit-server telemetry/events.go): the service takes it as a leave.
    recorded = WebhookEvent(
        event_id=event.id or uuid.uuid4().hex, event=event.event, room=event.room.name,
        identity=event.participant.identity, sid=event.participant.sid,
        replaced=reason == lk_api.DisconnectReason.DUPLICATE_IDENTITY,
        hidden=granted.hidden, can_publish=granted.can_publish,
        sources=frozenset(SOURCE_BY_VALUE.get(s, "unknown")
                          for s in granted.can_publish_sources),
        created_at=float(event.created_at))  # LiveKit's clock, whole seconds (0: not sent)
    if not await service.receive(recorded):
        _log.info("webhook %s replayed: ignored", recorded.event_id)


def create_app(config: EngineConfig, *, store: Store | None = None,
               control_factory: Callable[[], ControlPort] | None = None) -> web.Application:
    """The engine as an aiohttp app; LiveKit control and the ring timer start with it."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = config
    metrics = app[METRICS] = EngineMetrics()
    app.middlewares.insert(0, metrics.middleware)  # outermost: sees every final status
    document = build_openapi()
    own_store = store is None
    the_store = store or Store(config.db_url)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def lifecycle(app: web.Application) -> Any:
        control = (control_factory or (lambda: LiveKitControl(
            config.livekit_url, config.livekit_api_key, config.livekit_api_secret,
            client_url=config.public_livekit_url, meter=metrics.livekit_call)))()
        settings = config.service_settings()
        limiter = None
        if config.redis_url:  # several workers: one count for all of them
            limiter = RedisRateLimiter(config.redis_url, {
                "token": settings.token_limit, "mutate": settings.mutate_limit,
                "read": settings.read_limit})
        service = EngineService(settings, the_store, control,
                                JwtBearers(config.signing_secret, ttl=config.bearer_ttl),
                                on_missed=metrics.ring_timed_out, limiter=limiter,
                                absent_grace=config.absent_grace)
        app[SERVICE] = service
        loop = asyncio.get_running_loop()
        loops = [loop.create_task(service.run_ring_timer(), name="utd-engine-ring-timer"),
                 loop.create_task(service.outbox.run(), name="utd-engine-outbox"),
                 loop.create_task(service.run_webhooks(), name="utd-engine-webhooks"),
                 loop.create_task(service.run_audience(), name="utd-engine-audience"),
                 loop.create_task(service.run_reconcile(interval=config.reconcile_interval),
                                  name="utd-engine-reconcile")]
        stop_wakeups = (listen(the_store.url, loop, service.calls_changed)
                        if the_store.shared else None)
        yield
        if stop_wakeups is not None:
            await asyncio.to_thread(stop_wakeups)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await service.outbox.stop()
        await service.stop_webhooks()
        await control.aclose()
        if own_store:
            the_store.close()

    app.cleanup_ctx.append(lifecycle)
    for op in OPERATIONS:
        app.router.add_route(op.http, op.url, _handler(op))
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", metrics.serve)
    add_console(app, SERVICE, config.operators)
    app.router.add_post("/api/v1/livekit/webhook", _webhook)
    enable_cors(app, config.cors_origins)  # last: it covers every route registered above
    return app
