"""Every engine operation, named once: one row per operation, read by every layer.

A row (:class:`Operation`) names the operation, its HTTP method and path, its request
and response wire schemas, who may call it and what carries it out. From this one table:

* the reference server registers its routes and writes its OpenAPI document;
* the REST client builds each request (path parameters, query, body) and loads the answer;
* the engine service dispatches: a ``ROOM`` row calls the room method of the same name
  with the acting identity first, a ``CALL`` row fires its trigger on the call table, a
  ``SERVICE`` row calls the service method of the same name;
* sessions call ``engine.run(TAKE_SEAT, bearer, room_name=..., seat_index=...)``.

The operation's name is the session method, the room method and the row's name alike;
only the HTTP path has its own spelling (URLs are nouns and verbs under a resource, and
existing clients use them). Argument names are the wire field names everywhere.

Adding an operation: a row here, a room method, a session method, tests.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from marshmallow import Schema

from stream_core import wire
from stream_core.models import UTDCall, UTDSeatGrid, UTDSpeakRequest, UTDStage, UTDTokenResponse
from stream_core.rooms.seats import SeatRoom
from stream_core.rooms.stage import LiveStage

__all__ = ["Operation", "Target", "Credentials", "OPERATIONS", "by_name", "API_PREFIX",
           "MINT_TOKEN", "AUTHENTICATE",
           "CREATE_CALL", "GET_CALL", "INCOMING_CALLS", "WAIT_INCOMING_CALL",
           "CALL_RINGING", "ACCEPT_CALL", "REJECT_CALL", "BUSY_CALL", "END_CALL",
           "GET_STAGE", "INVITE_TO_STAGE", "REMOVE_FROM_STAGE", "REQUEST_STAGE", "LOWER_HAND",
           "LEAVE_STAGE", "GET_SEATS", "SETUP_SEATS", "TAKE_SEAT", "LEAVE_SEAT",
           "REQUEST_TO_SPEAK", "CANCEL_SPEAK_REQUEST", "APPROVE_SPEAKER", "DENY_SPEAKER",
           "INVITE_TO_SPEAK", "DECLINE_INVITE", "KICK_FROM_SEAT", "LOCK_SEAT", "MUTE_SEAT",
           "MOVE_SEAT", "BAN"]

R = TypeVar("R")
API_PREFIX = "/api/v1"
_PARAM = re.compile(r"{(\w+)}")


class Target(enum.Enum):
    """What carries an operation out in the engine service."""

    ROOM = "room"  # the room method named like the operation (reads return the snapshot)
    CALL = "call"  # the call table's trigger ``Operation.trigger``
    SERVICE = "service"  # the service method named like the operation


class Credentials(enum.Enum):
    """What proves the caller: the app's publishable credentials, or an engine bearer."""

    APP = "app"  # app_id + app_key (+ the app backend's identity signature) in the body
    BEARER = "bearer"  # Authorization: Bearer <user_token>


@dataclass(frozen=True, eq=False)
class Operation(Generic[R]):
    """One engine operation. ``R`` is what ``EnginePort.run`` returns for it."""

    name: str
    http: str
    path: str  # under API_PREFIX, with {room_name} / {call_id} parameters
    summary: str
    target: Target
    request: type[Schema] | None = None  # the JSON body's schema (None: no body)
    response: type[Schema] | None = None  # the answer's schema (None: {"ok": true})
    credentials: Credentials = Credentials.BEARER
    room: type[Any] | None = None  # the room kind a ROOM operation applies to (None: any)
    trigger: str | None = None  # the call-table trigger of a CALL operation
    query: tuple[tuple[str, str], ...] = ()  # (name, description) of query parameters
    envelope: str | None = None  # the answer is {envelope: result}
    empty: int | None = None  # the status that answers "nothing" (e.g. 204 of a long-poll)
    answer: Callable[[Any, str], Any] | None = None  # the answer from (snapshot, actor)

    @property
    def url(self) -> str:
        return API_PREFIX + self.path

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.path))

    @property
    def reads(self) -> bool:
        """A read changes nothing (and is not limited like a change)."""
        return self.http == "GET"

    def __repr__(self) -> str:
        return f"<Operation {self.name} {self.http} {self.path}>"


def _request_of(grid: UTDSeatGrid, actor: str) -> UTDSpeakRequest:
    """The speak request ``actor`` just made: what ``request_to_speak`` answers."""
    return next(r for r in grid.requests if r.identity == actor)


_ROOM = "/rooms/{room_name}"
_CALL = "/calls/{call_id}"
_STG, _SEATS = wire.StageSchema, wire.SeatGridSchema
_CALLS = wire.CallSchema


def _room_op(name: str, http: str, tail: str, summary: str, room: type[Any] | None,
             request: type[Schema] | None = None, response: type[Schema] | None = None,
             **extra: Any) -> Operation[Any]:
    return Operation(name, http, f"{_ROOM}/{tail}", summary, Target.ROOM, request, response,
                     room=room, **extra)


def _call_op(name: str, tail: str, trigger: str, summary: str) -> Operation[UTDCall]:
    return Operation(name, "POST", f"{_CALL}/{tail}", summary, Target.CALL, response=_CALLS,
                     trigger=trigger)


MINT_TOKEN: Operation[UTDTokenResponse] = Operation(
    "mint_token", "POST", "/token", "Mint a LiveKit room token and an engine bearer",
    Target.SERVICE, wire.TokenRequestSchema, wire.TokenResponseSchema,
    credentials=Credentials.APP)
AUTHENTICATE: Operation[str] = Operation(
    "authenticate", "POST", "/auth", "Mint a room-less engine bearer (needed for calls)",
    Target.SERVICE, wire.AuthenticateRequestSchema, wire.AuthResponseSchema,
    credentials=Credentials.APP, envelope="user_token")

CREATE_CALL: Operation[UTDCall] = Operation(
    "create_call", "POST", "/calls", "Start a 1:1 call (returns the caller's room token)",
    Target.SERVICE, wire.CallCreateSchema, _CALLS)
INCOMING_CALLS: Operation[list[UTDCall]] = Operation(
    "incoming_calls", "GET", "/calls/incoming", "Calls ringing for you, oldest first",
    Target.SERVICE, response=wire.CallListSchema, envelope="calls")
WAIT_INCOMING_CALL: Operation[UTDCall | None] = Operation(
    "wait_incoming_call", "GET", "/calls/incoming/next",
    "Long-poll for the next incoming call (204: none)", Target.SERVICE, response=_CALLS,
    query=(("timeout", "seconds to wait (capped)"),), empty=204)
GET_CALL: Operation[UTDCall] = Operation(
    "get_call", "GET", _CALL, "A call you are a party of", Target.SERVICE, response=_CALLS)
CALL_RINGING = _call_op("call_ringing", "ringing", "ring", "Callee: the call rings here")
ACCEPT_CALL = _call_op("accept_call", "accept", "accept",
                       "Callee: accept (returns the callee's room token)")
REJECT_CALL = _call_op("reject_call", "reject", "reject", "Callee: reject")
BUSY_CALL = _call_op("busy_call", "busy", "busy", "Callee: busy")
END_CALL = _call_op("end_call", "end", "end",
                    "Hang up (the caller cancels, the callee rejects an unanswered call); "
                    "idempotent")

GET_STAGE: Operation[UTDStage] = _room_op(
    "get_stage", "GET", "stage", "The live stream's stage", LiveStage, response=_STG)
INVITE_TO_STAGE: Operation[UTDStage] = _room_op(
    "invite_to_stage", "POST", "stage/invite", "Host: promote a viewer to the stage", LiveStage,
    wire.IdentitySchema, _STG)
REMOVE_FROM_STAGE: Operation[UTDStage] = _room_op(
    "remove_from_stage", "POST", "stage/remove", "Host: send a co-publisher back to the audience",
    LiveStage, wire.IdentitySchema, _STG)
REQUEST_STAGE: Operation[UTDStage] = _room_op(
    "request_stage", "POST", "stage/request", "Viewer: raise a hand", LiveStage, response=_STG)
LOWER_HAND: Operation[UTDStage] = _room_op(
    "lower_hand", "POST", "stage/lower", "Viewer: lower a raised hand", LiveStage, response=_STG)
LEAVE_STAGE: Operation[UTDStage] = _room_op(
    "leave_stage", "POST", "stage/leave", "Co-publisher: step down", LiveStage, response=_STG)

GET_SEATS: Operation[UTDSeatGrid] = _room_op(
    "get_seats", "GET", "seats", "The audio room's seat grid", SeatRoom, response=_SEATS)
SETUP_SEATS: Operation[UTDSeatGrid] = _room_op(
    "setup_seats", "POST", "seats/setup", "Host: set the seat count (1-64), mode and mode id",
    SeatRoom, wire.SeatSetupSchema, _SEATS)
TAKE_SEAT: Operation[UTDSeatGrid] = _room_op(
    "take_seat", "POST", "seats/take", "Take a seat (free mode, invited, or host)", SeatRoom,
    wire.SeatIndexSchema, _SEATS)
LEAVE_SEAT: Operation[UTDSeatGrid] = _room_op(
    "leave_seat", "POST", "seats/leave", "Leave your seat", SeatRoom, response=_SEATS)
REQUEST_TO_SPEAK: Operation[UTDSpeakRequest] = _room_op(
    "request_to_speak", "POST", "seats/request", "Request mode: ask to speak", SeatRoom,
    wire.SeatIndexSchema, wire.SpeakRequestSchema, answer=_request_of)
CANCEL_SPEAK_REQUEST: Operation[UTDSeatGrid] = _room_op(
    "cancel_speak_request", "POST", "seats/cancel", "Withdraw your speak request", SeatRoom,
    response=_SEATS)
APPROVE_SPEAKER: Operation[UTDSeatGrid] = _room_op(
    "approve_speaker", "POST", "seats/approve", "Host: approve a speak request (seats them)",
    SeatRoom, wire.ApproveSchema, _SEATS)
DENY_SPEAKER: Operation[UTDSeatGrid] = _room_op(
    "deny_speaker", "POST", "seats/deny", "Host: deny a speak request", SeatRoom,
    wire.ApproveSchema, _SEATS)
INVITE_TO_SPEAK: Operation[UTDSeatGrid] = _room_op(
    "invite_to_speak", "POST", "seats/invite", "Host: invite a listener to speak", SeatRoom,
    wire.InviteSchema, _SEATS)
DECLINE_INVITE: Operation[UTDSeatGrid] = _room_op(
    "decline_invite", "POST", "seats/decline", "Decline an invitation", SeatRoom,
    response=_SEATS)
KICK_FROM_SEAT: Operation[UTDSeatGrid] = _room_op(
    "kick_from_seat", "POST", "seats/kick", "Host: send a speaker back to listening", SeatRoom,
    wire.IdentitySchema, _SEATS)
LOCK_SEAT: Operation[UTDSeatGrid] = _room_op(
    "lock_seat", "POST", "seats/lock", "Host: lock (kicks its speaker) or unlock a seat",
    SeatRoom, wire.SeatLockSchema, _SEATS)
MUTE_SEAT: Operation[UTDSeatGrid] = _room_op(
    "mute_seat", "POST", "seats/mute", "Host: mute or unmute a seat", SeatRoom,
    wire.SeatMuteSchema, _SEATS)
MOVE_SEAT: Operation[UTDSeatGrid] = _room_op(
    "move_seat", "POST", "seats/move", "Move to another seat (the host may move anyone)",
    SeatRoom, wire.SeatMoveSchema, _SEATS)
BAN: Operation[None] = _room_op(
    "ban", "POST", "ban", "Host: remove a participant and refuse its return", None,
    wire.IdentitySchema)

#: Every operation, in the order the API document lists them.
OPERATIONS: tuple[Operation[Any], ...] = (
    MINT_TOKEN, AUTHENTICATE, CREATE_CALL, INCOMING_CALLS, WAIT_INCOMING_CALL, GET_CALL,
    CALL_RINGING, ACCEPT_CALL, REJECT_CALL, BUSY_CALL, END_CALL,
    GET_STAGE, INVITE_TO_STAGE, REMOVE_FROM_STAGE, REQUEST_STAGE, LOWER_HAND, LEAVE_STAGE,
    GET_SEATS, SETUP_SEATS, TAKE_SEAT, LEAVE_SEAT, REQUEST_TO_SPEAK, CANCEL_SPEAK_REQUEST,
    APPROVE_SPEAKER, DENY_SPEAKER, INVITE_TO_SPEAK, DECLINE_INVITE, KICK_FROM_SEAT, LOCK_SEAT,
    MUTE_SEAT, MOVE_SEAT, BAN,
)

_BY_NAME = {op.name: op for op in OPERATIONS}
if len(_BY_NAME) != len(OPERATIONS):  # pragma: no cover - a table error, caught at import
    raise ValueError("two operations share a name")


def by_name(name: str) -> Operation[Any]:
    return _BY_NAME[name]
