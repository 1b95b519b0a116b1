"""The operator console: a page served by the engine, and the JSON it reads and acts with.

``GET /console`` is plain HTML and JavaScript from the package (no build step, no data in
it); everything under ``/console/api`` takes ``Authorization: Bearer <operator token>``
(an operator configured with ``--operator NAME:TOKEN``), compared in constant time. Without
any operator configured the console is not served at all.

* ``GET /console/api/live``: live rooms (seat grid or stage and hands, host, audience
  count) and calls ringing or active, every app; the page polls it each second.
* ``POST /console/api/rooms/{app_id}/{room_name}/{action}`` with ``{"identity"}``:
  ``kick_from_seat`` or ``remove_from_stage``, done as the room's host would.
* ``POST /console/api/rooms/{app_id}/{room_name}/close``: everyone leaves, the media room
  closes.
* ``POST /console/api/calls/{app_id}/{call_id}/end``: the call is hung up as its caller
  would.

All of it goes through the engine service (:mod:`stream_core.engine.operators`), so the
core's rules hold for operators too; errors are the engine's JSON errors.
"""

from __future__ import annotations

import hmac
import json
from importlib.resources import files
from typing import Any

from aiohttp import web

from stream_core.engine.service import EngineService
from stream_core.errors import UTDStreamException
from stream_core.models import UTDSeatGrid
from stream_core.ports import RoomView
from stream_core.wire import CallSchema, SeatGridSchema, StageSchema, dump

from stream_engine.config import OperatorConfig

__all__ = ["add_console"]

_STATIC = files("stream_engine") / "static"
_SEATS, _STAGE, _CALL = SeatGridSchema(), StageSchema(), CallSchema()
_NO_STORE = {"Cache-Control": "no-store"}


def add_console(app: web.Application, service_key: web.AppKey[EngineService],
                operators: list[OperatorConfig]) -> None:
    """Register the console's routes on ``app`` (nothing when no operator is configured)."""
    if not operators:
        return

    def operator(request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        for candidate in operators:
            if token and hmac.compare_digest(candidate.token.encode(), token.encode()):
                return candidate.name
        raise UTDStreamException.unauthenticated("an operator token is required")

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=(_STATIC / "console.html").read_text(encoding="utf-8"),
                            content_type="text/html", headers=_NO_STORE)

    async def script(_: web.Request) -> web.Response:
        return web.Response(text=(_STATIC / "console.js").read_text(encoding="utf-8"),
                            content_type="application/javascript", headers=_NO_STORE)

    async def live(request: web.Request) -> web.Response:
        who = operator(request)
        rooms, calls = await request.app[service_key].live_overview()
        return web.json_response({
            "operator": who, "rooms": [_room(view) for view in rooms],
            "calls": [{"app_id": app_id, **dump(_CALL, call)} for app_id, call in calls]},
            headers=_NO_STORE)

    async def act(request: web.Request) -> web.Response:
        who = operator(request)
        body = await _json(request)
        identity = body.get("identity")
        if not isinstance(identity, str) or not identity:
            raise UTDStreamException.invalid("identity is required", field="identity")
        m = request.match_info
        await request.app[service_key].act_as_host(who, m["app_id"], m["room_name"],
                                                   m["action"], identity)
        return web.json_response({"ok": True})

    async def close(request: web.Request) -> web.Response:
        who = operator(request)
        m = request.match_info
        await request.app[service_key].close_room_as_operator(who, m["app_id"], m["room_name"])
        return web.json_response({"ok": True})

    async def end(request: web.Request) -> web.Response:
        who = operator(request)
        m = request.match_info
        call = await request.app[service_key].end_call_as_operator(who, m["app_id"],
                                                                  m["call_id"])
        return web.json_response(dump(_CALL, call))

    app.router.add_get("/console", page)
    app.router.add_get("/console/console.js", script)
    app.router.add_get("/console/api/live", live)
    app.router.add_post("/console/api/rooms/{app_id}/{room_name}/close", close)
    app.router.add_post("/console/api/rooms/{app_id}/{room_name}/{action}", act)
    app.router.add_post("/console/api/calls/{app_id}/{call_id}/end", end)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UTDStreamException.invalid("body must be a JSON object", field="body")
    return body


def _room(view: RoomView) -> dict[str, Any]:
    """A live room for the console: its state on the wire, and who is only listening."""
    snapshot = view.snapshot
    if isinstance(snapshot, UTDSeatGrid):
        kind, state = "audio_room", dump(_SEATS, snapshot)
        publishing = {s.occupant for s in snapshot.seats if s.occupant}
    else:
        kind, state = "live_stream", dump(_STAGE, snapshot)
        publishing = {m.identity for m in snapshot.members}
    audience = [who for who in view.present if who not in publishing]
    return {"app_id": view.app_id, "name": view.name, "kind": kind,
            "present": len(view.present), "audience": len(audience), "state": state}
