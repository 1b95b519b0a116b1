"""An in-memory engine with the real engine's authoritative rules, for tests and demos.

It is the reference engine minus HTTP and a database: the same ``stream_core.rooms``
objects decide (host-only operations, seat capacity, modes, one seat per participant,
calls capped at two parties, bans), the same effects drive the media server (a
:class:`~adapters.fakes.sfu.FakeSFU`), and the same ``RoomStateSchema`` JSON is pushed into
room metadata. Time is injected (``clock``) and ring timeouts fire on :meth:`tick`, so call
tests are deterministic. Webhooks from the SFU are handled on a worker thread, as a real
engine receives them: asynchronously.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stream_core.effects import Effect, ParticipantRemoved, PublishChanged, RoomClosed
from stream_core.errors import UTDStreamException
from stream_core.models import (
    UTDCall, UTDSeatGrid, UTDSeatMode, UTDSpeakRequest, UTDStage,
    UTDStreamType, UTDTokenResponse,
)
from stream_core.ports import EnginePort
from stream_core.rooms import (
    ROOM_OPERATIONS, CallLedger, Room, admit, call_publish_sources, call_state, check_identity,
    grant_for, new_room, room_state, room_type,
)
from stream_core.wire import RoomStateSchema, dump

from adapters.fakes.sfu import FakeSFU

__all__ = ["FakeEngine", "RateLimiter"]

#: ``(operation, identity) -> seconds to wait`` to refuse with 429, or ``None`` to allow.
RateLimiter = Callable[[str, str], "float | None"]
_STATE = RoomStateSchema()


class FakeEngine:
    """The engine port, in memory, bound to one app's credentials."""

    def __init__(self, sfu: FakeSFU, *, clock: Callable[[], float] = time.monotonic,
                 ring_timeout: float = 30.0, rate_limiter: RateLimiter | None = None) -> None:
        self.sfu = sfu
        self._clock = clock
        self._rate_limiter = rate_limiter
        self._lock = threading.RLock()
        self._incoming = threading.Condition(self._lock)
        self._bearers: dict[str, str] = {}
        self._rooms: dict[str, Room] = {}
        self._calls = CallLedger(ring_timeout=ring_timeout)
        self._call_rooms: dict[str, str] = {}  # room name -> call id
        self._polled: dict[str, set[str]] = {}  # identity -> call ids handed out by long-poll
        self._pushes: dict[str, int] = {}
        # webhook events, barriers (drain_webhooks) and None (stop), handled in order
        self._webhooks: queue.Queue[tuple[str, str, str | None] | threading.Event | None] = \
            queue.Queue()
        self._worker = threading.Thread(target=self._webhook_loop, name="fake-engine-webhooks",
                                        daemon=True)
        self._worker.start()
        self._unhook = sfu.add_webhook(lambda *event: self._webhooks.put(event))
        self._closed = False

    # -- identity and tokens --------------------------------------------------------
    def authenticate(self, *, identity: str, name: str | None = None,
                     device_id: str | None = None, signature: str | None = None) -> str:
        check_identity(identity)
        with self._lock:
            self._limit("authenticate", identity)
            return self._new_bearer(identity)

    def mint_token(self, *, identity: str, room_name: str, stream_type: UTDStreamType,
                   as_host: bool = False, name: str | None = None,
                   device_id: str | None = None, seat_count: int | None = None,
                   seat_mode: UTDSeatMode | None = None,
                   signature: str | None = None) -> UTDTokenResponse:
        check_identity(identity)
        check_identity(room_name, "room_name")
        with self._lock:
            self._limit("token", identity)
            room = self._rooms.get(room_name) or new_room(stream_type, room_name)
            effects = admit(room, identity, stream_type=stream_type, as_host=as_host, name=name,
                            seat_count=seat_count, seat_mode=seat_mode)
            self._rooms[room_name] = room
            self.sfu.create_room(room_name)
            token = self.sfu.issue_token(room=room_name, identity=identity, name=name,
                                         permissions=grant_for(room.publish_sources(identity)))
            self._apply(effects)
            self._push(room_name)
            return UTDTokenResponse(token=token, url=self.sfu.url, room_name=room_name,
                                    user_token=self._new_bearer(identity), ws_url=self.sfu.url)

    # -- calls ----------------------------------------------------------------------
    def create_call(self, user_token: str, *, callee_identity: str, type: UTDStreamType,
                    callee_name: str | None = None,
                    metadata: dict[str, Any] | None = None) -> UTDCall:
        with self._lock:
            caller = self._who(user_token, "create_call")
            call_id = secrets.token_hex(8)
            call = self._calls.create(call_id=call_id, caller=caller, callee=callee_identity,
                                      type=type, now=self._clock(), callee_name=callee_name,
                                      metadata=metadata, room_name=f"call-{call_id}")
            assert call.room_name is not None
            self._call_rooms[call.room_name] = call_id
            self.sfu.create_room(call.room_name, max_participants=2)
            self._push(call.room_name)
            self._incoming.notify_all()
            return self._with_token(call, caller)

    def call_ringing(self, user_token: str, call_id: str) -> UTDCall:
        return self._call_op(user_token, call_id, "ring")

    def accept_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call_op(user_token, call_id, "accept", with_token=True)

    def reject_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call_op(user_token, call_id, "reject")

    def busy_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call_op(user_token, call_id, "busy")

    def end_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call_op(user_token, call_id, "end")

    def get_call(self, user_token: str, call_id: str) -> UTDCall:
        with self._lock:
            who = self._who(user_token, "get_call")
            self._expire()
            call = self._calls.get(call_id)
            if who not in (call.caller_identity, call.callee_identity):
                raise UTDStreamException.forbidden("only the two parties of a call may see it")
            return call

    def incoming_calls(self, user_token: str) -> list[UTDCall]:
        with self._lock:
            who = self._who(user_token, "incoming_calls")
            self._expire()
            return self._calls.calls_for(who)

    def wait_incoming_call(self, user_token: str, timeout: float) -> UTDCall | None:
        """Long-poll: the oldest ringing call for this identity not yet handed out."""
        with self._lock:
            who = self._who(user_token, "incoming_calls")
            seen = self._polled.setdefault(who, set())

            def fresh() -> list[UTDCall]:
                self._expire()
                return [c for c in self._calls.calls_for(who) if c.call_id not in seen]

            if not self._incoming.wait_for(lambda: bool(fresh()) or self._closed, timeout):
                return None
            calls = fresh()
            if not calls:
                return None
            seen.add(calls[0].call_id)
            return calls[0]

    def tick(self) -> list[UTDCall]:
        """Mark calls whose ring deadline passed (by ``clock``) missed; return them."""
        with self._lock:
            return self._expire()

    # -- stage and seats: the core's ROOM_OPERATIONS table decides what each one does ---
    def get_stage(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage(user_token, room_name, "get_stage")

    def invite_to_stage(self, user_token: str, room_name: str, identity: str) -> UTDStage:
        return self._stage(user_token, room_name, "invite_to_stage", identity)

    def remove_from_stage(self, user_token: str, room_name: str, identity: str) -> UTDStage:
        return self._stage(user_token, room_name, "remove_from_stage", identity)

    def request_stage(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage(user_token, room_name, "request_stage")

    def lower_hand(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage(user_token, room_name, "lower_hand")

    def leave_stage(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage(user_token, room_name, "leave_stage")

    def setup_seats(self, user_token: str, room_name: str, *, seat_count: int | None = None,
                    seat_mode: UTDSeatMode | None = None,
                    mode_id: str | None = None) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "setup_seats",
                             seat_count=seat_count, mode=seat_mode)

    def get_seats(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "get_seats")

    def take_seat(self, user_token: str, room_name: str,
                  seat_index: int | None = None) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "take_seat", seat_index)

    def leave_seat(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "leave_seat")

    def request_to_speak(self, user_token: str, room_name: str,
                         seat_index: int | None = None) -> UTDSpeakRequest:
        request: UTDSpeakRequest = self._room_op(user_token, room_name, "request_to_speak",
                                                 seat_index)
        return request

    def cancel_speak_request(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "cancel_speak_request")

    def approve_speaker(self, user_token: str, room_name: str, request_id: int) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "approve_speaker", request_id)

    def deny_speaker(self, user_token: str, room_name: str, request_id: int) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "deny_speaker", request_id)

    def invite_to_speak(self, user_token: str, room_name: str, identity: str,
                        seat_index: int | None = None) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "invite_to_speak",
                             identity, seat_index)

    def decline_invite(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "decline_invite")

    def kick_from_seat(self, user_token: str, room_name: str, identity: str) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "kick_from_seat", identity)

    def lock_seat(self, user_token: str, room_name: str, seat_index: int,
                  locked: bool = True) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "lock_seat",
                             seat_index, locked)

    def mute_seat(self, user_token: str, room_name: str, seat_index: int,
                  muted: bool = True) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "mute_seat",
                             seat_index, muted)

    def move_seat(self, user_token: str, room_name: str, seat_index: int,
                  identity: str | None = None) -> UTDSeatGrid:
        return self._seats(user_token, room_name, "move_seat",
                             seat_index, identity)

    # -- moderation and lifecycle ---------------------------------------------------
    def ban(self, user_token: str, room_name: str, identity: str) -> None:
        self._room_op(user_token, room_name, "ban", identity)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._incoming.notify_all()
        self._unhook()
        self._webhooks.put(None)
        self._worker.join(timeout=5)

    def drain_webhooks(self, timeout: float = 5.0) -> None:
        """Block until every webhook received so far is handled (for tests)."""
        done = threading.Event()
        self._webhooks.put(done)
        if not done.wait(timeout):
            raise UTDStreamException("webhooks not drained in time", code="timeout")

    # -- internals ------------------------------------------------------------------
    def _who(self, user_token: str, op: str) -> str:
        identity = self._bearers.get(user_token) if isinstance(user_token, str) else None
        if identity is None:
            raise UTDStreamException.unauthenticated("missing or unknown user token")
        self._limit(op, identity)
        return identity

    def _limit(self, op: str, identity: str) -> None:
        if self._rate_limiter is not None:
            retry_after = self._rate_limiter(op, identity)
            if retry_after is not None:
                raise UTDStreamException.rate_limited(retry_after)

    def _new_bearer(self, identity: str) -> str:
        bearer = secrets.token_urlsafe(24)
        self._bearers[bearer] = identity
        return bearer

    def _any_room(self, room_name: str) -> Room:
        found = self._rooms.get(room_name)
        if found is None:
            raise UTDStreamException.not_found(f"no room {room_name!r}")
        return found

    def _room(self, room_name: str, cls: type[Any]) -> Any:
        room = self._any_room(room_name)
        if not isinstance(room, cls):
            raise UTDStreamException.conflict(f"room {room_name!r} is a {room_type(room).value}")
        return room

    def _stage(self, user_token: str, room_name: str, op: str, *args: Any) -> UTDStage:
        stage: UTDStage = self._room_op(user_token, room_name, op, *args)
        return stage

    def _seats(self, user_token: str, room_name: str, op: str, *args: Any,
               **kwargs: Any) -> UTDSeatGrid:
        grid: UTDSeatGrid = self._room_op(user_token, room_name, op, *args, **kwargs)
        return grid

    def _room_op(self, user_token: str, room_name: str, op: str, *args: Any,
                 **kwargs: Any) -> Any:
        """Run port operation ``op`` as the bearer's identity; the room's new snapshot (or,
        for a speak request, the request)."""
        cls, method = ROOM_OPERATIONS[op]
        with self._lock:
            actor = self._who(user_token, op)
            room = self._room(room_name, cls)
            room.presence.require_present(actor)
            if method is None:
                return room.snapshot()
            out = getattr(room, method)(actor, *args, **kwargs)
            if isinstance(out, list):
                self._apply(out)
            self._push(room_name)
            return room.snapshot() if isinstance(out, list) else out

    def _call_op(self, user_token: str, call_id: str, trigger: str, *,
                 with_token: bool = False) -> UTDCall:
        with self._lock:
            who = self._who(user_token, trigger)
            self._expire()
            call, effects = self._calls.apply(call_id, trigger, actor=who)
            assert call.room_name is not None
            self._push(call.room_name)
            self._apply(effects)
            return self._with_token(call, who) if with_token else call

    def _with_token(self, call: UTDCall, identity: str) -> UTDCall:
        assert call.room_name is not None
        token = self.sfu.issue_token(
            room=call.room_name, identity=identity, name=None,
            permissions=grant_for(call_publish_sources(call.type, call.status)))
        return replace(call, token=token, url=self.sfu.url)

    def _expire(self) -> list[UTDCall]:
        missed = self._calls.expire(self._clock())
        for call in missed:
            assert call.room_name is not None
            self._push(call.room_name)
            self._apply([RoomClosed(call.room_name)])
        return missed

    def _apply(self, effects: list[Effect]) -> None:
        """Carry out the core's effects on the media server (absent participants skipped)."""
        for effect in effects:
            try:
                if isinstance(effect, PublishChanged):
                    self.sfu.update_permissions(effect.room_name, effect.identity,
                                                grant_for(effect.after))
                elif isinstance(effect, ParticipantRemoved):
                    self.sfu.remove_participant(effect.room_name, effect.identity)
                elif isinstance(effect, RoomClosed):
                    self.sfu.close_room(effect.room_name)
            except UTDStreamException as exc:
                if exc.status_code != 404:
                    raise

    def _push(self, room_name: str) -> None:
        """Write the room's whole state into its media-room metadata."""
        version = self._pushes.get(room_name, 0) + 1
        self._pushes[room_name] = version
        call_id = self._call_rooms.get(room_name)
        state = call_state(self._calls.get(call_id), version) if call_id is not None else \
            room_state(self._rooms[room_name])
        try:
            self.sfu.set_room_metadata(room_name, json.dumps(dump(_STATE, state)))
        except UTDStreamException as exc:
            if exc.status_code != 404:
                raise

    def _webhook_loop(self) -> None:
        while True:
            event = self._webhooks.get()
            if event is None:
                return
            if isinstance(event, threading.Event):
                event.set()
                continue
            kind, room_name, identity = event
            if kind == "participant_left" and identity is not None:
                with self._lock:
                    self._participant_left(room_name, identity)

    def _participant_left(self, room_name: str, identity: str) -> None:
        call_id = self._call_rooms.get(room_name)
        if call_id is not None:
            if not self._calls.get(call_id).status.is_terminal:
                _, effects = self._calls.apply(call_id, "drop", actor=None)
                self._push(room_name)
                self._apply(effects)
            return
        room = self._rooms.get(room_name)
        if room is not None:
            self._apply(room.leave(identity))
            self._push(room_name)


if TYPE_CHECKING:
    _: type[EnginePort] = FakeEngine
