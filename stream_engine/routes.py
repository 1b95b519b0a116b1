"""The engine's HTTP surface as data: one table drives both routing and the OpenAPI document.

Each :class:`Route` names its method and path, the wire schema of its body and of its
answer, whether it needs the bearer, and how a loaded body becomes arguments of the
service. Nothing is described twice, so the document cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema

from stream_core import wire

__all__ = ["Route", "ROUTES", "ROOM_ROUTES"]

Args = Callable[[dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def _none(_: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (), {}


def _pick(*names: str) -> Args:
    return lambda body: (tuple(body.get(n) for n in names), {})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    request: type[Schema] | None = None
    response: type[Schema] | None = None
    auth: bool = True
    op: str | None = None  # the service's room operation, for room routes
    args: Args = _none
    query: dict[str, str] = field(default_factory=dict)  # name -> description


_ROOM = "/api/v1/rooms/{room_name}"
_STAGE = wire.StageSchema
_SEATS = wire.SeatGridSchema

#: Room routes: each maps to one ``EngineService.room_op`` operation.
ROOM_ROUTES: tuple[Route, ...] = (
    Route("GET", f"{_ROOM}/stage", "The live stream's stage", response=_STAGE, op="get_stage"),
    Route("POST", f"{_ROOM}/stage/invite", "Host: promote a viewer to the stage",
          wire.IdentitySchema, _STAGE, op="invite_to_stage", args=_pick("identity")),
    Route("POST", f"{_ROOM}/stage/remove", "Host: send a co-publisher back to the audience",
          wire.IdentitySchema, _STAGE, op="remove_from_stage", args=_pick("identity")),
    Route("POST", f"{_ROOM}/stage/request", "Viewer: raise a hand", response=_STAGE,
          op="request_stage"),
    Route("POST", f"{_ROOM}/stage/lower", "Viewer: lower a raised hand", response=_STAGE,
          op="lower_hand"),
    Route("POST", f"{_ROOM}/stage/leave", "Co-publisher: step down", response=_STAGE,
          op="leave_stage"),
    Route("GET", f"{_ROOM}/seats", "The audio room's seat grid", response=_SEATS,
          op="get_seats"),
    Route("POST", f"{_ROOM}/seats/setup", "Host: set the seat count (1-64) and mode",
          wire.SeatSetupSchema, _SEATS, op="setup_seats",
          args=lambda b: ((), {"seat_count": b.get("seat_count"), "mode": b.get("seat_mode")})),
    Route("POST", f"{_ROOM}/seats/take", "Take a seat (free mode, invited, or host)",
          wire.SeatIndexSchema, _SEATS, op="take_seat", args=_pick("seat_index")),
    Route("POST", f"{_ROOM}/seats/leave", "Leave your seat", response=_SEATS, op="leave_seat"),
    Route("POST", f"{_ROOM}/seats/request", "Request mode: ask to speak",
          wire.SeatIndexSchema, wire.SpeakRequestSchema, op="request_to_speak",
          args=_pick("seat_index")),
    Route("POST", f"{_ROOM}/seats/cancel", "Withdraw your speak request", response=_SEATS,
          op="cancel_speak_request"),
    Route("POST", f"{_ROOM}/seats/approve", "Host: approve a speak request (seats them)",
          wire.ApproveSchema, _SEATS, op="approve_speaker", args=_pick("request_id")),
    Route("POST", f"{_ROOM}/seats/deny", "Host: deny a speak request",
          wire.ApproveSchema, _SEATS, op="deny_speaker", args=_pick("request_id")),
    Route("POST", f"{_ROOM}/seats/invite", "Host: invite a listener to speak",
          wire.InviteSchema, _SEATS, op="invite_to_speak", args=_pick("identity", "seat_index")),
    Route("POST", f"{_ROOM}/seats/decline", "Decline an invitation", response=_SEATS,
          op="decline_invite"),
    Route("POST", f"{_ROOM}/seats/kick", "Host: send a speaker back to listening",
          wire.IdentitySchema, _SEATS, op="kick_from_seat", args=_pick("identity")),
    Route("POST", f"{_ROOM}/seats/lock", "Host: lock (kicks its speaker) or unlock a seat",
          wire.SeatLockSchema, _SEATS, op="lock_seat", args=_pick("seat_index", "locked")),
    Route("POST", f"{_ROOM}/seats/mute", "Host: mute or unmute a seat",
          wire.SeatMuteSchema, _SEATS, op="mute_seat", args=_pick("seat_index", "muted")),
    Route("POST", f"{_ROOM}/seats/move", "Move to another seat (the host may move anyone)",
          wire.SeatMoveSchema, _SEATS, op="move_seat", args=_pick("seat_index", "identity")),
    Route("POST", f"{_ROOM}/ban", "Host: remove a participant and refuse its return",
          wire.IdentitySchema, None, op="ban", args=_pick("identity")),
)

_CALL = "/api/v1/calls/{call_id}"

ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/v1/token", "Mint a LiveKit room token and an engine bearer",
          wire.TokenRequestSchema, wire.TokenResponseSchema, auth=False),
    Route("POST", "/api/v1/auth", "Mint a room-less engine bearer (needed for calls)",
          wire.AuthenticateRequestSchema, wire.AuthResponseSchema, auth=False),
    Route("POST", "/api/v1/calls", "Start a 1:1 call (returns the caller's room token)",
          wire.CallCreateSchema, wire.CallSchema),
    Route("GET", "/api/v1/calls/incoming", "Calls ringing for you, oldest first",
          response=wire.CallListSchema),
    Route("GET", "/api/v1/calls/incoming/next", "Long-poll for the next incoming call (204: none)",
          response=wire.CallSchema, query={"timeout": "seconds to wait (capped)"}),
    Route("GET", _CALL, "A call you are a party of", response=wire.CallSchema),
    Route("POST", f"{_CALL}/ringing", "Callee: the call rings here", response=wire.CallSchema),
    Route("POST", f"{_CALL}/accept", "Callee: accept (returns the callee's room token)",
          response=wire.CallSchema),
    Route("POST", f"{_CALL}/reject", "Callee: reject", response=wire.CallSchema),
    Route("POST", f"{_CALL}/busy", "Callee: busy", response=wire.CallSchema),
    Route("POST", f"{_CALL}/end", "Hang up (caller cancels an unanswered call); idempotent",
          response=wire.CallSchema),
) + ROOM_ROUTES
