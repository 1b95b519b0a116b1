"""Marshmallow schemas for every object that crosses the wire (snake_case JSON).

Client and engine load and dump with these very schemas, so a field can only be renamed in
one place and the engine's OpenAPI document is generated from them. :func:`load` turns a
``ValidationError`` into a 422 :class:`UTDStreamException` naming the first bad field.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from stream_core.errors import UTDStreamException
from stream_core.models import (
    MAX_SEATS, UTDCall, UTDCallStatus, UTDSeat, UTDSeatGrid, UTDSeatMode, UTDSpeakRequest,
    UTDStage, UTDStageMember, UTDStreamType, UTDTokenResponse,
)
from stream_core.names import check_app_id, check_identity, check_room_name

__all__ = [
    "schema_of", "load", "dump",
    "TokenRequestSchema", "TokenResponseSchema", "AuthenticateRequestSchema",
    "CallSchema", "CallCreateSchema", "StageMemberSchema", "StageSchema", "IdentitySchema",
    "SeatSchema", "SeatGridSchema", "SeatSetupSchema", "SeatIndexSchema", "SeatMoveSchema",
    "SeatMuteSchema", "SeatLockSchema", "AuthResponseSchema", "CallListSchema",
    "SpeakRequestSchema", "ApproveSchema", "InviteSchema", "ErrorSchema",
    "RoomStateSchema",
]

T = TypeVar("T")

def _checked(check: Any) -> Any:
    """A marshmallow validator from one of :mod:`stream_core.names`' checks."""
    def validator(value: object) -> None:
        try:
            check(value)
        except UTDStreamException as exc:
            raise ValidationError(exc.message.split(" ", 1)[1]) from None
    return validator


_identity = _checked(check_identity)
_room = _checked(check_room_name)
_app_id = _checked(check_app_id)
_seat_index = validate.Range(min=0, max=MAX_SEATS - 1)


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE  # newer engines may add fields; old clients keep working


class TokenRequestSchema(_Base):
    """``POST /token``: mint a LiveKit room token (or, without ``room_name``, a bearer)."""

    app_id = fields.String(required=True, validate=_app_id)
    app_key = fields.String(required=True, validate=validate.Length(min=1, max=256),
                            load_only=True)
    identity = fields.String(required=True, validate=_identity)
    room_name = fields.String(load_default=None, validate=_room)
    stream_type = fields.Enum(UTDStreamType, by_value=True, load_default=None)
    role = fields.String(load_default="audience", validate=validate.OneOf(["host", "audience"]))
    name = fields.String(load_default=None, validate=validate.Length(max=128))
    device_id = fields.String(load_default=None, validate=validate.Length(max=128))
    seat_count = fields.Integer(load_default=None, strict=True,
                                validate=validate.Range(min=1, max=MAX_SEATS))
    seat_mode = fields.Enum(UTDSeatMode, by_value=True, load_default=None)
    signature = fields.String(load_default=None, load_only=True)


class AuthenticateRequestSchema(_Base):
    app_id = fields.String(required=True, validate=_app_id)
    app_key = fields.String(required=True, load_only=True)
    identity = fields.String(required=True, validate=_identity)
    name = fields.String(load_default=None)
    device_id = fields.String(load_default=None)
    signature = fields.String(load_default=None, load_only=True)


class TokenResponseSchema(_Base):
    token = fields.String(required=True)
    url = fields.String(required=True)
    room_name = fields.String(required=True)
    user_token = fields.String(required=True)
    ws_url = fields.String(load_default=None, allow_none=True)
    state_version = fields.Integer(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDTokenResponse:
        return UTDTokenResponse(**data)


class CallCreateSchema(_Base):
    callee_identity = fields.String(required=True, validate=_identity)
    callee_name = fields.String(load_default=None, allow_none=True)
    type = fields.Enum(UTDStreamType, by_value=True, required=True)
    metadata = fields.Dict(keys=fields.String(), load_default=dict)


class CallSchema(_Base):
    call_id = fields.String(required=True)
    status = fields.Enum(UTDCallStatus, by_value=True, required=True)
    type = fields.Enum(UTDStreamType, by_value=True, required=True)
    caller_identity = fields.String(required=True)
    callee_identity = fields.String(required=True)
    room_name = fields.String(load_default=None, allow_none=True)
    caller_name = fields.String(load_default=None, allow_none=True)
    callee_name = fields.String(load_default=None, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), load_default=dict)
    created_at = fields.Float(load_default=0.0)
    ring_deadline = fields.Float(load_default=None, allow_none=True)
    ended_by = fields.String(load_default=None, allow_none=True)
    token = fields.String(load_default=None, allow_none=True)
    url = fields.String(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDCall:
        return UTDCall(**data)


class IdentitySchema(_Base):
    identity = fields.String(required=True, validate=_identity)


class StageMemberSchema(_Base):
    identity = fields.String(required=True)
    name = fields.String(load_default=None, allow_none=True)
    role = fields.String(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDStageMember:
        return UTDStageMember(**data)


class StageSchema(_Base):
    room_name = fields.String(required=True)
    host = fields.String(load_default=None, allow_none=True)
    members = fields.List(fields.Nested(StageMemberSchema), load_default=list)
    hands = fields.List(fields.String(), load_default=list)
    version = fields.Integer(load_default=0)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDStage:
        return UTDStage(data["room_name"], data["host"], tuple(data["members"]),
                        tuple(data["hands"]), data["version"])


class SeatSchema(_Base):
    index = fields.Integer(required=True, validate=_seat_index)
    occupant = fields.String(load_default=None, allow_none=True)
    locked = fields.Boolean(load_default=False)
    muted = fields.Boolean(load_default=False)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDSeat:
        return UTDSeat(**data)


class SpeakRequestSchema(_Base):
    request_id = fields.Integer(required=True)
    identity = fields.String(required=True)
    seat_index = fields.Integer(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDSpeakRequest:
        return UTDSpeakRequest(**data)


class SeatGridSchema(_Base):
    room_name = fields.String(required=True)
    host = fields.String(load_default=None, allow_none=True)
    mode = fields.Enum(UTDSeatMode, by_value=True, required=True)
    seat_count = fields.Integer(dump_only=True)
    seats = fields.List(fields.Nested(SeatSchema), load_default=list)
    requests = fields.List(fields.Nested(SpeakRequestSchema), load_default=list)
    invites = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True),
                          load_default=dict)
    version = fields.Integer(load_default=0)
    mode_id = fields.String(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> UTDSeatGrid:
        return UTDSeatGrid(data["room_name"], data["host"], data["mode"], tuple(data["seats"]),
                           tuple(data["requests"]), dict(data["invites"]), data["version"],
                           data["mode_id"])


class SeatSetupSchema(_Base):
    seat_count = fields.Integer(load_default=None, strict=True,
                                validate=validate.Range(min=1, max=MAX_SEATS))
    seat_mode = fields.Enum(UTDSeatMode, by_value=True, load_default=None)
    mode_id = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(max=64))


class SeatIndexSchema(_Base):
    seat_index = fields.Integer(load_default=None, allow_none=True, strict=True,
                                validate=_seat_index)


class SeatMoveSchema(_Base):
    seat_index = fields.Integer(required=True, strict=True, validate=_seat_index)
    identity = fields.String(load_default=None, allow_none=True, validate=_identity)


class SeatLockSchema(_Base):
    seat_index = fields.Integer(required=True, strict=True, validate=_seat_index)
    locked = fields.Boolean(load_default=True)


class SeatMuteSchema(_Base):
    seat_index = fields.Integer(required=True, strict=True, validate=_seat_index)
    muted = fields.Boolean(load_default=True)


class ApproveSchema(_Base):
    request_id = fields.Integer(required=True, strict=True)


class InviteSchema(_Base):
    identity = fields.String(required=True, validate=_identity)
    seat_index = fields.Integer(load_default=None, allow_none=True, strict=True,
                                validate=_seat_index)


class _ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    field = fields.String(load_default=None, allow_none=True)


class AuthResponseSchema(_Base):
    user_token = fields.String(required=True)


class CallListSchema(_Base):
    calls = fields.List(fields.Nested(CallSchema), required=True)


class ErrorSchema(Schema):
    """``{"error": {"code", "message"}}``: every engine error response."""

    error = fields.Nested(_ErrorBody, required=True)


class RoomStateSchema(_Base):
    """What the engine pushes into a room's LiveKit metadata: the room's whole state.

    Exactly one of ``seats``, ``stage`` or ``call`` is set, by the room's kind; ``version``
    orders pushes so a client ignores a stale one.
    """

    kind = fields.String(required=True, validate=validate.OneOf(["seats", "stage", "call"]))
    version = fields.Integer(required=True)
    seats = fields.Nested(SeatGridSchema, load_default=None, allow_none=True)
    stage = fields.Nested(StageSchema, load_default=None, allow_none=True)
    call = fields.Nested(CallSchema, load_default=None, allow_none=True)
    audience = fields.Integer(load_default=None, allow_none=True)  # how many are present


_S = TypeVar("_S", bound=Schema)


@functools.cache
def schema_of(cls: type[_S]) -> _S:
    """The one instance of schema ``cls``: building a schema deep-copies its fields (12 %
    of a token mint's engine time, profiled), and load and dump keep no state in it."""
    return cls()


def load(schema: Schema, payload: Any) -> Any:
    """Load ``payload`` with ``schema``; a malformed payload raises 422 naming the field."""
    try:
        return schema.load(payload)
    except ValidationError as exc:
        field, message = _first_error(exc.messages)
        raise UTDStreamException.invalid(f"{field}: {message}", field=field) from None


def dump(schema: Schema, obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = schema.dump(obj)
    return result


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                return _first_error(value, name)
            if isinstance(value, list) and value and isinstance(value[0], str):
                return (name if not name.startswith("_") else prefix or "body"), value[0]
            return _first_error(value, name)
    if isinstance(messages, list) and messages:
        return prefix or "body", str(messages[0])
    return prefix or "body", "invalid"
