"""The EnginePort contract, written once: the fake engine and the real engine (through
``RestEngine``) must both pass it. Subclass :class:`EngineContract` and provide the
``engine`` fixture (an EnginePort bound to one app)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from stream_core import operations as ops
from stream_core import (
    EnginePort, UTDCallStatus, UTDSeatMode, UTDStreamException, UTDStreamType,
)

AUDIO, LIVE = UTDStreamType.AUDIO_ROOM, UTDStreamType.LIVE_STREAM


def fails(status: int, fn: Any, code: str | None = None) -> UTDStreamException:
    with pytest.raises(UTDStreamException) as info:
        fn()
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
        if kwargs.pop("as_host", False):
            kwargs["role"] = "host"
        return engine.run(ops.MINT_TOKEN, None, identity=identity, room_name=room,
                          stream_type=kind, **kwargs).user_token

    # -- tokens ---------------------------------------------------------------------
    def test_token_mint_answers_every_field(self, engine: EnginePort, room: str) -> None:
        grant = engine.run(ops.MINT_TOKEN, None, identity="alice", room_name=room, stream_type=LIVE, role="host", name="Alice")
        assert grant.token and grant.user_token and grant.url and grant.room_name == room
        assert "token" not in repr(grant).replace("user_token", "")  # repr hides secrets

    def test_token_mint_says_which_state_it_committed(self, engine: EnginePort,
                                                       room: str) -> None:
        host = engine.run(ops.MINT_TOKEN, None, identity="h", room_name=room,
                          stream_type=AUDIO, role="host", seat_count=2)
        assert host.state_version == engine.run(ops.GET_SEATS, host.user_token,
                                                room_name=room).version
        seated = engine.run(ops.TAKE_SEAT, host.user_token, room_name=room, seat_index=0)
        listener = engine.run(ops.MINT_TOKEN, None, identity="l", room_name=room,
                              stream_type=AUDIO)
        assert listener.state_version == seated.version > host.state_version

    def test_bad_mints_are_refused(self, engine: EnginePort, room: str) -> None:
        fails(422, lambda: engine.run(ops.MINT_TOKEN, None, identity="", room_name=room, stream_type=AUDIO))
        fails(422, lambda: engine.run(ops.MINT_TOKEN, None, identity="a", room_name=room, stream_type=UTDStreamType.AUDIO_CALL))
        fails(403, lambda: engine.run(ops.MINT_TOKEN, None, identity="a", room_name=room, stream_type=AUDIO, seat_count=4))
        fails(422, lambda: engine.run(ops.MINT_TOKEN, None, identity="h", room_name=room, stream_type=AUDIO, role="host", seat_count=65))
        self.join(engine, room, "h", as_host=True, seat_count=2)
        fails(409, lambda: engine.run(ops.MINT_TOKEN, None, identity="x", room_name=room, stream_type=LIVE))
        fails(403, lambda: engine.run(ops.MINT_TOKEN, None, identity="other", room_name=room, stream_type=AUDIO, role="host"))

    def test_unknown_bearer_is_401(self, engine: EnginePort, room: str) -> None:
        fails(401, lambda: engine.run(ops.GET_SEATS, "not-a-bearer", room_name=room))

    # -- seats ----------------------------------------------------------------------
    def test_free_mode_seats(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=4)
        a = self.join(engine, room, "a")
        b = self.join(engine, room, "b")
        grid = engine.run(ops.TAKE_SEAT, a, room_name=room, seat_index=0)
        assert grid.seats[0].occupant == "a" and grid.seat_count == 4
        fails(409, lambda: engine.run(ops.TAKE_SEAT, b, room_name=room, seat_index=0), code="seat_taken")
        fails(409, lambda: engine.run(ops.TAKE_SEAT, a, room_name=room, seat_index=1))  # one seat per participant
        fails(422, lambda: engine.run(ops.TAKE_SEAT, b, room_name=room, seat_index=4))
        assert engine.run(ops.MOVE_SEAT, a, room_name=room, seat_index=2).seat_of("a") == 2
        fails(403, lambda: engine.run(ops.LOCK_SEAT, b, room_name=room, seat_index=3))
        assert engine.run(ops.LOCK_SEAT, host, room_name=room, seat_index=2).seats[2].locked  # kicks a
        assert engine.run(ops.GET_SEATS, b, room_name=room).seat_of("a") is None
        assert not engine.run(ops.LOCK_SEAT, host, room_name=room, seat_index=2, locked=False).seats[2].locked
        assert engine.run(ops.TAKE_SEAT, b, room_name=room, seat_index=None).seat_of("b") == 0
        assert engine.run(ops.MUTE_SEAT, host, room_name=room, seat_index=0).seats[0].muted
        assert engine.run(ops.KICK_FROM_SEAT, host, room_name=room, identity="b").seat_of("b") is None
        fails(409, lambda: engine.run(ops.LEAVE_SEAT, b, room_name=room))

    def test_request_mode_and_invites(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=3,
                         seat_mode=UTDSeatMode.REQUEST)
        c = self.join(engine, room, "c")
        d = self.join(engine, room, "d")
        fails(409, lambda: engine.run(ops.TAKE_SEAT, c, room_name=room, seat_index=0))
        request = engine.run(ops.REQUEST_TO_SPEAK, c, room_name=room)
        assert [r.identity for r in engine.run(ops.GET_SEATS, host, room_name=room).requests] == ["c"]
        fails(403, lambda: engine.run(ops.APPROVE_SPEAKER, c, room_name=room, request_id=request.request_id))
        fails(404, lambda: engine.run(ops.APPROVE_SPEAKER, host, room_name=room, request_id=request.request_id + 1000))
        assert engine.run(ops.APPROVE_SPEAKER, host, room_name=room, request_id=request.request_id).seat_of("c") == 0
        assert engine.run(ops.INVITE_TO_SPEAK, host, room_name=room, identity="d", seat_index=2).invites == {"d": 2}
        assert engine.run(ops.TAKE_SEAT, d, room_name=room).seat_of("d") == 2
        assert engine.run(ops.LEAVE_SEAT, d, room_name=room).seat_of("d") is None
        again = engine.run(ops.REQUEST_TO_SPEAK, d, room_name=room)
        assert engine.run(ops.DENY_SPEAKER, host, room_name=room, request_id=again.request_id).requests == ()
        engine.run(ops.REQUEST_TO_SPEAK, d, room_name=room)
        assert engine.run(ops.CANCEL_SPEAK_REQUEST, d, room_name=room).requests == ()
        engine.run(ops.INVITE_TO_SPEAK, host, room_name=room, identity="d")
        assert engine.run(ops.DECLINE_INVITE, d, room_name=room).invites == {}
        grid = engine.run(ops.SETUP_SEATS, host, room_name=room, seat_count=5,
                          seat_mode=UTDSeatMode.FREE, mode_id="debate")
        assert grid.seat_count == 5 and grid.mode is UTDSeatMode.FREE
        # the app's own name for the mode reaches the engine and everyone's grid
        assert engine.run(ops.GET_SEATS, d, room_name=room).mode_id == "debate"

    def test_refused_operations_change_nothing(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=2)
        a = self.join(engine, room, "a")
        before = engine.run(ops.GET_SEATS, host, room_name=room)
        fails(422, lambda: engine.run(ops.SETUP_SEATS, host, room_name=room, seat_count=0))
        fails(403, lambda: engine.run(ops.SETUP_SEATS, a, room_name=room, seat_count=2))
        fails(403, lambda: engine.run(ops.KICK_FROM_SEAT, a, room_name=room, identity="h"))
        fails(404, lambda: engine.run(ops.GET_SEATS, a, room_name="no-such-room"))
        fails(404, lambda: engine.run(ops.INVITE_TO_SPEAK, host, room_name=room, identity="stranger"))
        assert engine.run(ops.GET_SEATS, host, room_name=room) == before

    def test_ban_refuses_the_next_mint(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", as_host=True, seat_count=2)
        e = self.join(engine, room, "e")
        engine.run(ops.TAKE_SEAT, e, room_name=room, seat_index=1)
        engine.run(ops.BAN, host, room_name=room, identity="e")
        assert engine.run(ops.GET_SEATS, host, room_name=room).seat_of("e") is None
        error = fails(403, lambda: engine.run(ops.MINT_TOKEN, None, identity="e", room_name=room, stream_type=AUDIO))
        assert error.is_banned

    # -- stage ----------------------------------------------------------------------
    def test_stage(self, engine: EnginePort, room: str) -> None:
        host = self.join(engine, room, "h", LIVE, as_host=True)
        v = self.join(engine, room, "v", LIVE)
        w = self.join(engine, room, "w", LIVE)
        assert engine.run(ops.REQUEST_STAGE, v, room_name=room).hands == ("v",)
        assert engine.run(ops.LOWER_HAND, v, room_name=room).hands == ()
        engine.run(ops.REQUEST_STAGE, v, room_name=room)
        fails(403, lambda: engine.run(ops.INVITE_TO_STAGE, w, room_name=room, identity="v"))
        stage = engine.run(ops.INVITE_TO_STAGE, host, room_name=room, identity="v")
        assert [m.identity for m in stage.members] == ["h", "v"] and stage.hands == ()
        stage = engine.run(ops.INVITE_TO_STAGE, host, room_name=room, identity="w")
        assert [m.identity for m in stage.members] == ["h", "v", "w"]
        assert [m.identity for m in engine.run(ops.LEAVE_STAGE, w, room_name=room).members] == ["h", "v"]
        assert [m.identity for m in engine.run(ops.REMOVE_FROM_STAGE, host, room_name=room, identity="v").members] == ["h"]
        fails(409, lambda: engine.run(ops.LEAVE_STAGE, host, room_name=room))
        fails(404, lambda: engine.run(ops.INVITE_TO_STAGE, host, room_name=room, identity="ghost"))
        assert engine.run(ops.GET_STAGE, v, room_name=room).host == "h"

    # -- calls ----------------------------------------------------------------------
    def _pair(self, engine: EnginePort) -> tuple[str, str, str, str]:
        tag = uuid.uuid4().hex[:6]
        caller, callee = f"ann-{tag}", f"ben-{tag}"
        return (caller, engine.run(ops.AUTHENTICATE, None, identity=caller), callee,
                engine.run(ops.AUTHENTICATE, None, identity=callee))

    def test_call_lifecycle(self, engine: EnginePort) -> None:
        caller, ann, callee, ben = self._pair(engine)
        call = engine.run(ops.CREATE_CALL, ann, callee_identity=callee, type=UTDStreamType.VIDEO_CALL, metadata={"k": "v"})
        assert call.status is UTDCallStatus.INITIATING and call.token and call.url
        assert [c.call_id for c in engine.run(ops.INCOMING_CALLS, ben)] == [call.call_id]
        waited = engine.run(ops.WAIT_INCOMING_CALL, ben, timeout=2.0)
        assert waited is not None and waited.call_id == call.call_id
        assert engine.run(ops.WAIT_INCOMING_CALL, ben, timeout=0.05) is None  # handed out once
        assert engine.run(ops.CALL_RINGING, ben, call_id=call.call_id).status is UTDCallStatus.RINGING
        accepted = engine.run(ops.ACCEPT_CALL, ben, call_id=call.call_id)
        assert accepted.status is UTDCallStatus.ACTIVE and accepted.token
        assert engine.run(ops.GET_CALL, ann, call_id=call.call_id).status is UTDCallStatus.ACTIVE
        ended = engine.run(ops.END_CALL, ann, call_id=call.call_id)
        assert ended.status is UTDCallStatus.ENDED and ended.ended_by == caller
        assert engine.run(ops.END_CALL, ben, call_id=call.call_id).status is UTDCallStatus.ENDED  # idempotent
        fails(409, lambda: engine.run(ops.ACCEPT_CALL, ben, call_id=call.call_id))

    @pytest.mark.parametrize("op,status", [("reject_call", UTDCallStatus.REJECTED),
                                           ("busy_call", UTDCallStatus.BUSY)])
    def test_callee_declines(self, engine: EnginePort, op: str, status: UTDCallStatus) -> None:
        _, ann, callee, ben = self._pair(engine)
        call = engine.run(ops.CREATE_CALL, ann, callee_identity=callee, type=UTDStreamType.AUDIO_CALL)
        fails(403, lambda: engine.run(ops.by_name(op), ann, call_id=call.call_id))
        assert engine.run(ops.by_name(op), ben, call_id=call.call_id).status is status
        assert engine.run(ops.INCOMING_CALLS, ben) == []

    def test_caller_cancels_and_strangers_are_refused(self, engine: EnginePort) -> None:
        caller, ann, callee, ben = self._pair(engine)
        carol = engine.run(ops.AUTHENTICATE, None, identity=f"carol-{uuid.uuid4().hex[:6]}")
        call = engine.run(ops.CREATE_CALL, ann, callee_identity=callee,
                          type=UTDStreamType.AUDIO_CALL)
        fails(403, lambda: engine.run(ops.ACCEPT_CALL, carol, call_id=call.call_id))
        fails(403, lambda: engine.run(ops.GET_CALL, carol, call_id=call.call_id))
        fails(404, lambda: engine.run(ops.GET_CALL, ann, call_id="no-such-call"))
        assert engine.run(ops.END_CALL, ann, call_id=call.call_id).status is UTDCallStatus.ENDED
        call = engine.run(ops.CREATE_CALL, ann, callee_identity=callee,
                          type=UTDStreamType.AUDIO_CALL)
        # the callee's hang-up of an unanswered call is a reject (a row of the call table)
        ended = engine.run(ops.END_CALL, ben, call_id=call.call_id)
        assert ended.status is UTDCallStatus.REJECTED
        fails(422, lambda: engine.run(ops.CREATE_CALL, ann, callee_identity=caller,
                                      type=UTDStreamType.AUDIO_CALL))
