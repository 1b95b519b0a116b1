"""The EnginePort contract, written once: the fake engine and the real engine (through
``RestEngine``) must both pass it. Subclass :class:`EngineContract` and provide the
``engine`` fixture (an EnginePort bound to one app)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stream_core import (
    EnginePort, UTDCallStatus, UTDSeatMode, UTDStreamException, UTDStreamType,
)

AUDIO, LIVE = UTDStreamType.AUDIO_ROOM, UTDStreamType.LIVE_STREAM


def fails(status: int, fn: Any, *args: Any, code: str | None = None, **kwargs: Any) -> UTDStreamException:
    with pytest.raises(UTDStreamException) as info:
        fn(*args, **kwargs)
    assert info.value.status_code == status, info.value
    if code is not None:
        assert info.value.code == code, info.value
    return info.value


class EngineContract:
    @pytest.fixture
    def engine(self) -> EnginePort:  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    @pytest.fixture
    def room(self) -> str:
        return f"r-{uuid.uuid4().hex[:10]}"

    def join(self, engine: EnginePort, room: str, identity: str, kind: UTDStreamType = AUDIO,
             **kwargs: Any) -> str:
        return engine.mint_token(identity=identity, room_name=room, stream_type=kind,
                                 **kwargs).user_token

    # -- tokens ---------------------------------------------------------------------
    def test_token_mint_answers_every_field(self, engine: EnginePort, room: str) -> None:
        grant = engine.mint_token(identity="alice", room_name=room, stream_type=LIVE,
                                  as_host=True, name="Alice")
        assert grant.token and grant.user_token and grant.url and grant.room_name == room
        assert "token" not in repr(grant).replace("user_token", "")  # repr hides secrets

    def test_bad_mints_are_refused(self, engine: EnginePort, room: str) -> None:
        fails(422, engine.mint_token, identity="", room_name=room, stream_type=AUDIO)
        fails(422, engine.mint_token, identity="a", room_name=room,
              stream_type=UTDStreamType.AUDIO_CALL)
        fails(403, engine.mint_token, identity="a", room_name=room, stream_type=AUDIO,
              seat_count=4)
        fails(422, engine.mint_token, identity="h", room_name=room, stream_type=AUDIO,
              as_host=True, seat_count=65)
        self.join(engine, room, "h", as_host=True, seat_count=2)
        fails(409, engine.mint_token, identity="x", room_name=room, stream_type=LIVE)
        fails(403, engine.mint_token, identity="other", room_name=room, stream_type=AUDIO,
              as_host=True)

    def test_unknown_bearer_is_401(self, engine: EnginePort, room: str) -> None:
        fails(401, engine.get_seats, "not-a-bearer", room)

    # -- seats ----------------------------------------------------------------------
    def test_free_mode_seats(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=4)
        a = self.join(engine, room, "a")
        b = self.join(engine, room, "b")
        grid = engine.take_seat(a, room, 0)
        assert grid.seats[0].occupant == "a" and grid.seat_count == 4
        fails(409, engine.take_seat, b, room, 0, code="seat_taken")
        fails(409, engine.take_seat, a, room, 1)  # one seat per participant
        fails(422, engine.take_seat, b, room, 4)
        assert engine.move_seat(a, room, 2).seat_of("a") == 2
        fails(403, engine.lock_seat, b, room, 3)
        assert engine.lock_seat(host, room, 2).seats[2].locked  # kicks a
        assert engine.get_seats(b, room).seat_of("a") is None
        assert not engine.lock_seat(host, room, 2, locked=False).seats[2].locked
        assert engine.take_seat(b, room, None).seat_of("b") == 0
        assert engine.mute_seat(host, room, 0).seats[0].muted
        assert engine.kick_from_seat(host, room, "b").seat_of("b") is None
        fails(409, engine.leave_seat, b, room)

    def test_request_mode_and_invites(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=3,
                         seat_mode=UTDSeatMode.REQUEST)
        c = self.join(engine, room, "c")
        d = self.join(engine, room, "d")
        fails(409, engine.take_seat, c, room, 0)
        request = engine.request_to_speak(c, room)
        assert [r.identity for r in engine.get_seats(host, room).requests] == ["c"]
        fails(403, engine.approve_speaker, c, room, request.request_id)
        fails(404, engine.approve_speaker, host, room, request.request_id + 1000)
        assert engine.approve_speaker(host, room, request.request_id).seat_of("c") == 0
        assert engine.invite_to_speak(host, room, "d", 2).invites == {"d": 2}
        assert engine.take_seat(d, room).seat_of("d") == 2
        assert engine.leave_seat(d, room).seat_of("d") is None
        again = engine.request_to_speak(d, room)
        assert engine.deny_speaker(host, room, again.request_id).requests == ()
        engine.request_to_speak(d, room)
        assert engine.cancel_speak_request(d, room).requests == ()
        engine.invite_to_speak(host, room, "d")
        assert engine.decline_invite(d, room).invites == {}
        grid = engine.setup_seats(host, room, seat_count=5, seat_mode=UTDSeatMode.FREE)
        assert grid.seat_count == 5 and grid.mode is UTDSeatMode.FREE

    def test_refused_operations_change_nothing(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=2)
        a = self.join(engine, room, "a")
        before = engine.get_seats(host, room)
        fails(422, engine.setup_seats, host, room, seat_count=0)
        fails(403, engine.setup_seats, a, room, seat_count=2)
        fails(403, engine.kick_from_seat, a, room, "h")
        fails(404, engine.get_seats, a, "no-such-room")
        fails(404, engine.invite_to_speak, host, room, "stranger")
        assert engine.get_seats(host, room) == before

    def test_ban_refuses_the_next_mint(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=2)
        e = self.join(engine, room, "e")
        engine.take_seat(e, room, 1)
        engine.ban(host, room, "e")
        assert engine.get_seats(host, room).seat_of("e") is None
        error = fails(403, engine.mint_token, identity="e", room_name=room, stream_type=AUDIO)
        assert error.is_banned

    # -- stage ----------------------------------------------------------------------
    def test_stage(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", LIVE, as_host=True)
        v = self.join(engine, room, "v", LIVE)
        w = self.join(engine, room, "w", LIVE)
        assert engine.request_stage(v, room).hands == ("v",)
        assert engine.lower_hand(v, room).hands == ()
        engine.request_stage(v, room)
        fails(403, engine.invite_to_stage, w, room, "v")
        stage = engine.invite_to_stage(host, room, "v")
        assert [m.identity for m in stage.members] == ["h", "v"] and stage.hands == ()
        stage = engine.invite_to_stage(host, room, "w")
        assert [m.identity for m in stage.members] == ["h", "v", "w"]
        assert [m.identity for m in engine.leave_stage(w, room).members] == ["h", "v"]
        assert [m.identity for m in engine.remove_from_stage(host, room, "v").members] == ["h"]
        fails(409, engine.leave_stage, host, room)
        fails(404, engine.invite_to_stage, host, room, "ghost")
        assert engine.get_stage(v, room).host == "h"

    # -- calls ----------------------------------------------------------------------
    def _pair(self, engine: EnginePort) -> tuple[str, str, str, str]:
        tag = uuid.uuid4().hex[:6]
        caller, callee = f"ann-{tag}", f"ben-{tag}"
        return (caller, engine.authenticate(identity=caller), callee,
                engine.authenticate(identity=callee))

    def test_call_lifecycle(self, engine: EnginePort) -> None:
        caller, ann, callee, ben = self._pair(engine)
        call = engine.create_call(ann, callee_identity=callee, type=UTDStreamType.VIDEO_CALL,
                                  metadata={"k": "v"})
        assert call.status is UTDCallStatus.INITIATING and call.token and call.url
        assert [c.call_id for c in engine.incoming_calls(ben)] == [call.call_id]
        waited = engine.wait_incoming_call(ben, 2.0)
        assert waited is not None and waited.call_id == call.call_id
        assert engine.wait_incoming_call(ben, 0.05) is None  # handed out once
        assert engine.call_ringing(ben, call.call_id).status is UTDCallStatus.RINGING
        accepted = engine.accept_call(ben, call.call_id)
        assert accepted.status is UTDCallStatus.ACTIVE and accepted.token
        assert engine.get_call(ann, call.call_id).status is UTDCallStatus.ACTIVE
        ended = engine.end_call(ann, call.call_id)
        assert ended.status is UTDCallStatus.ENDED and ended.ended_by == caller
        assert engine.end_call(ben, call.call_id).status is UTDCallStatus.ENDED  # idempotent
        fails(409, engine.accept_call, ben, call.call_id)

    @pytest.mark.parametrize("op,status", [("reject_call", UTDCallStatus.REJECTED),
                                           ("busy_call", UTDCallStatus.BUSY)])
    def test_callee_declines(self, engine: EnginePort, op: str, status: UTDCallStatus) -> None:
        _, ann, callee, ben = self._pair(engine)
        call = engine.create_call(ann, callee_identity=callee, type=UTDStreamType.AUDIO_CALL)
        fails(403, getattr(engine, op), ann, call.call_id)
        assert getattr(engine, op)(ben, call.call_id).status is status
        assert engine.incoming_calls(ben) == []

    def test_caller_cancels_and_strangers_are_refused(self, engine: EnginePort) -> None:
        caller, ann, callee, ben = self._pair(engine)
        carol = engine.authenticate(identity=f"carol-{uuid.uuid4().hex[:6]}")
        call = engine.create_call(ann, callee_identity=callee, type=UTDStreamType.AUDIO_CALL)
        fails(403, engine.accept_call, carol, call.call_id)
        fails(403, engine.get_call, carol, call.call_id)
        fails(404, engine.get_call, ann, "no-such-call")
        assert engine.end_call(ann, call.call_id).status is UTDCallStatus.ENDED
        call = engine.create_call(ann, callee_identity=callee, type=UTDStreamType.AUDIO_CALL)
        # the callee's hang-up of an unanswered call is a reject (a row of the call table)
        assert engine.end_call(ben, call.call_id).status is UTDCallStatus.REJECTED
        fails(422, engine.create_call, ann, callee_identity=caller,
              type=UTDStreamType.AUDIO_CALL)
