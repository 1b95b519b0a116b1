"""Behaviour of the authoritative rooms: SeatRoom and LiveStage (calls: ``test_calls``).

Rooms are driven directly, no mocks: each test performs operations as some identity and
asserts the end state (snapshot) and the effects returned. Every refusal is checked the
same way (:func:`refused`): the right ``UTDStreamException`` status and the snapshot,
version included, exactly as before. A Hypothesis state machine at the end throws random
actors and operations at a SeatRoom and checks the grid's invariants after every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, initialize, invariant, precondition, rule,
)

from stream_core.effects import ParticipantRemoved, PublishChanged
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.machines.seat import SeatState
from stream_core.machines.speaker import SpeakerState
from stream_core.machines.stage import StageState
from stream_core.models import UTDSeatMode, UTDSpeakRequest
from stream_core.rooms import LiveStage, SeatRoom
from stream_core.wire import SeatGridSchema, StageSchema, dump, load

MIC = frozenset({"microphone"})
AV = frozenset({"microphone", "camera"})
NONE: frozenset[str] = frozenset()
FREE, REQUEST = UTDSeatMode.FREE, UTDSeatMode.REQUEST
L, R, I, S = (SpeakerState.LISTENER, SpeakerState.REQUESTING, SpeakerState.INVITED,
              SpeakerState.SPEAKER)


def ask(room: SeatRoom, who: str, seat_index: int | None = None) -> UTDSpeakRequest:
    """``who`` asks to speak; the request as the grid shows it (what the engine answers)."""
    room.request_to_speak(who, seat_index)
    return next(r for r in room.snapshot().requests if r.identity == who)


def refused(room: Any, status: int, op: Callable[..., Any], *args: Any,
            code: str | None = None, **kwargs: Any) -> UTDStreamException:
    """``op(*args)`` raises ``status`` (and ``code``) and leaves ``room`` exactly as it was."""
    before, version = room.snapshot(), room.version
    with pytest.raises(UTDStreamException) as info:
        op(*args, **kwargs)
    assert info.value.status_code == status, repr(info.value)
    if code is not None:
        assert info.value.code == code, repr(info.value)
    assert room.snapshot() == before
    assert room.version == version
    return info.value


def seat_room(mode: UTDSeatMode = FREE, seats: int = 4) -> SeatRoom:
    room = SeatRoom("audio-1", mode=mode)
    room.join("h", as_host=True, name="Host")
    room.setup_seats("h", seat_count=seats)
    for who in ("ann", "bob", "cat"):
        room.join(who)
    return room


def occupants(room: SeatRoom) -> list[str | None]:
    return [s.occupant for s in room.snapshot().seats]


def granted(room_name: str, identity: str, sources: frozenset[str] = MIC) -> PublishChanged:
    return PublishChanged(room_name, identity, NONE, sources)


def revoked(room_name: str, identity: str, sources: frozenset[str] = MIC) -> PublishChanged:
    return PublishChanged(room_name, identity, sources, NONE)


# ---------------------------------------------------------------------------------------
# SeatRoom: free mode
# ---------------------------------------------------------------------------------------
def test_take_first_free_seat_grants_the_microphone() -> None:
    room = seat_room()
    version = room.version
    assert room.take_seat("ann") == [granted("audio-1", "ann")]
    assert occupants(room) == ["ann", None, None, None]
    assert room.state_of("ann") is S and room.publish_sources("ann") == MIC
    assert room.version == version + 1


def test_take_a_chosen_seat_then_leave_it() -> None:
    room = seat_room()
    room.take_seat("ann", 2)
    assert room.snapshot().seat_of("ann") == 2
    assert room.leave_seat("ann") == [revoked("audio-1", "ann")]
    assert occupants(room) == [None] * 4
    assert room.state_of("ann") is L and room.publish_sources("ann") == NONE


def test_move_by_self_and_by_host_keeps_the_role() -> None:
    room = seat_room()
    room.take_seat("ann", 0)
    assert room.move_seat("ann", 3) == []
    assert occupants(room) == [None, None, None, "ann"]
    assert room.move_seat("h", 1, "ann") == []
    assert occupants(room) == [None, "ann", None, None]
    assert room.state_of("ann") is S


def test_move_refusals() -> None:
    room = seat_room()
    room.take_seat("ann", 0)
    room.take_seat("bob", 1)
    room.lock_seat("h", 2)
    refused(room, 403, room.move_seat, "cat", 3, "ann")  # neither self nor host
    refused(room, 409, room.move_seat, "ann", 1, code=ErrorCode.SEAT_TAKEN)
    refused(room, 409, room.move_seat, "ann", 2, code=ErrorCode.ILLEGAL_TRANSITION)  # locked
    refused(room, 409, room.move_seat, "ann", 0)  # its own seat is not empty
    refused(room, 409, room.move_seat, "cat", 3)  # a listener has no seat to move from
    refused(room, 404, room.move_seat, "h", 3, "nobody")


def test_one_seat_per_participant() -> None:
    room = seat_room()
    room.take_seat("ann", 0)
    refused(room, 409, room.take_seat, "ann", 1)
    refused(room, 409, room.take_seat, "ann")
    refused(room, 409, room.take_seat, "bob", 0, code=ErrorCode.SEAT_TAKEN)


def test_full_grid_and_missing_grid() -> None:
    room = seat_room(seats=2)
    room.take_seat("ann")
    room.take_seat("bob")
    refused(room, 409, room.take_seat, "cat", code=ErrorCode.SEAT_TAKEN)
    bare = SeatRoom("bare")
    bare.join("h", as_host=True)
    bare.join("ann")
    refused(bare, 409, bare.take_seat, "ann")


def test_taking_requires_presence() -> None:
    room = seat_room()
    refused(room, 404, room.take_seat, "stranger")


# ---------------------------------------------------------------------------------------
# SeatRoom: request mode
# ---------------------------------------------------------------------------------------
def test_request_mode_listeners_ask_and_host_approves() -> None:
    room = seat_room(REQUEST)
    refused(room, 409, room.take_seat, "ann")
    req = ask(room, "ann")
    assert (req.identity, req.seat_index) == ("ann", None)
    assert room.snapshot().requests == (req,) and room.state_of("ann") is R
    refused(room, 409, room.request_to_speak, "ann")  # one pending request
    assert room.approve_speaker("h", req.request_id) == [granted("audio-1", "ann")]
    assert occupants(room)[0] == "ann" and room.snapshot().requests == ()
    refused(room, 404, room.approve_speaker, "h", req.request_id)  # no longer pending


def test_request_for_a_seat_is_approved_into_it_or_the_first_free_one() -> None:
    room = seat_room(REQUEST)
    a = ask(room, "ann", 2)
    b = ask(room, "bob", 2)
    room.approve_speaker("h", a.request_id)
    room.approve_speaker("h", b.request_id)  # seat 2 went to ann: bob falls back to the first free
    assert occupants(room) == ["bob", None, "ann", None]


def test_deny_and_cancel_return_to_listening() -> None:
    room = seat_room(REQUEST)
    a = ask(room, "ann")
    room.request_to_speak("bob")
    assert room.deny_speaker("h", a.request_id) == []
    assert room.cancel_speak_request("bob") == []
    assert room.snapshot().requests == () and room.state_of("ann") is L
    refused(room, 409, room.cancel_speak_request, "bob")
    refused(room, 404, room.deny_speaker, "h", a.request_id)


def test_request_refusals() -> None:
    free = seat_room(FREE)
    refused(free, 409, free.request_to_speak, "ann")  # request mode only
    room = seat_room(REQUEST)
    req = ask(room, "ann")
    refused(room, 403, room.approve_speaker, "bob", req.request_id)
    refused(room, 403, room.deny_speaker, "ann", req.request_id)
    refused(room, 404, room.approve_speaker, "h", 10_000)
    refused(room, 422, room.approve_speaker, "h", True)
    refused(room, 422, room.approve_speaker, "h", "1")
    refused(room, 422, room.request_to_speak, "bob", 4)
    refused(room, 404, room.request_to_speak, "stranger")


def test_host_is_exempt_from_request_mode_when_taking() -> None:
    room = seat_room(REQUEST)
    assert room.take_seat("h", 1) == [granted("audio-1", "h")]
    assert occupants(room)[1] == "h"


# ---------------------------------------------------------------------------------------
# SeatRoom: invitations
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [FREE, REQUEST])
def test_invite_to_a_seat_then_take_it(mode: UTDSeatMode) -> None:
    room = seat_room(mode)
    assert room.invite_to_speak("h", "ann", 3) == []
    assert room.snapshot().invites == {"ann": 3} and room.state_of("ann") is I
    assert room.take_seat("ann") == [granted("audio-1", "ann")]
    assert occupants(room) == [None, None, None, "ann"] and room.snapshot().invites == {}


def test_invite_without_a_seat_takes_the_first_free_or_a_chosen_one() -> None:
    room = seat_room(REQUEST)
    room.take_seat("h", 0)
    room.invite_to_speak("h", "ann")
    room.invite_to_speak("h", "bob")
    assert room.snapshot().invites == {"ann": None, "bob": None}
    room.take_seat("ann")
    room.take_seat("bob", 3)
    assert occupants(room) == ["h", "ann", None, "bob"]


def test_invite_a_requester_replaces_the_request_and_decline_returns_to_listening() -> None:
    room = seat_room(REQUEST)
    room.request_to_speak("ann", 1)
    room.invite_to_speak("h", "ann", 2)
    grid = room.snapshot()
    assert grid.requests == () and grid.invites == {"ann": 2}
    assert room.decline_invite("ann") == []
    assert room.snapshot().invites == {} and room.state_of("ann") is L
    refused(room, 409, room.decline_invite, "ann")


def test_invite_refusals() -> None:
    room = seat_room()
    room.take_seat("bob")
    refused(room, 403, room.invite_to_speak, "ann", "cat")
    refused(room, 404, room.invite_to_speak, "h", "stranger")
    refused(room, 409, room.invite_to_speak, "h", "bob")  # already speaking
    refused(room, 422, room.invite_to_speak, "h", "ann", 9)
    room.invite_to_speak("h", "ann", 0)  # bob's seat: taking it later is a conflict
    refused(room, 409, room.take_seat, "ann", code=ErrorCode.SEAT_TAKEN)


# ---------------------------------------------------------------------------------------
# SeatRoom: kick, lock, mute
# ---------------------------------------------------------------------------------------
def test_host_kicks_a_speaker() -> None:
    room = seat_room()
    room.take_seat("ann", 1)
    refused(room, 403, room.kick_from_seat, "bob", "ann")
    assert room.kick_from_seat("h", "ann") == [revoked("audio-1", "ann")]
    assert occupants(room) == [None] * 4
    refused(room, 409, room.kick_from_seat, "h", "ann")  # now a listener


def test_lock_and_unlock_an_empty_seat() -> None:
    room = seat_room()
    assert room.lock_seat("h", 1) == []
    assert room.snapshot().seats[1].locked
    refused(room, 409, room.take_seat, "ann", 1)
    refused(room, 409, room.lock_seat, "h", 1)
    refused(room, 403, room.lock_seat, "ann", 1, False)
    assert room.lock_seat("h", 1, locked=False) == []
    refused(room, 409, room.lock_seat, "h", 1, locked=False)
    room.take_seat("ann", 1)


def test_lock_seat_takes_only_a_boolean_lock_flag() -> None:
    """``lock_seat`` both locks and unlocks, so a non-boolean flag must not mean either."""
    room = seat_room()
    err = refused(room, 422, room.lock_seat, "h", 1, locked="no")
    assert err.field == "locked"


def test_locking_an_occupied_seat_kicks_its_speaker() -> None:
    room = seat_room()
    room.take_seat("ann", 2)
    version = room.version
    assert room.lock_seat("h", 2) == [revoked("audio-1", "ann")]
    seat = room.snapshot().seats[2]
    assert seat.locked and seat.occupant is None
    assert room.state_of("ann") is L and room.version == version + 1


def test_mute_revokes_and_unmute_restores_the_microphone() -> None:
    room = seat_room()
    room.take_seat("ann", 0)
    (effect,) = room.mute_seat("h", 0)
    assert isinstance(effect, PublishChanged) and effect.revoked == MIC
    assert effect == revoked("audio-1", "ann")
    assert room.publish_sources("ann") == NONE and room.state_of("ann") is S
    version = room.version
    assert room.mute_seat("h", 0, True) == [] and room.version == version  # already muted
    (effect,) = room.mute_seat("h", 0, False)
    assert isinstance(effect, PublishChanged) and effect.granted == MIC
    assert room.publish_sources("ann") == MIC
    refused(room, 403, room.mute_seat, "ann", 0)


def test_muted_seat_stays_muted_for_whoever_sits_there() -> None:
    room = seat_room()
    assert room.mute_seat("h", 1) == []
    assert room.take_seat("ann", 1) == []  # seated, nothing to publish
    assert room.publish_sources("ann") == NONE
    assert room.move_seat("ann", 2) == [granted("audio-1", "ann")]
    assert room.move_seat("ann", 1) == [revoked("audio-1", "ann")]


# ---------------------------------------------------------------------------------------
# SeatRoom: presence, bans, set-up
# ---------------------------------------------------------------------------------------
def test_leaving_the_media_room_drops_seat_request_and_invitation() -> None:
    room = seat_room(REQUEST)
    room.take_seat("h", 0)
    room.request_to_speak("ann")
    room.invite_to_speak("h", "bob")
    assert room.leave("h") == [revoked("audio-1", "h")]
    assert room.leave("ann") == [] and room.leave("bob") == []
    grid = room.snapshot()
    assert grid.speakers == () and grid.requests == () and grid.invites == {}
    assert room.leave("nobody") == []


def test_ban_removes_and_refuses_rejoining() -> None:
    room = seat_room()
    room.take_seat("ann")
    assert room.ban("h", "ann") == [revoked("audio-1", "ann"),
                                    ParticipantRemoved("audio-1", "ann", "banned")]
    assert room.snapshot().speakers == ()
    err = refused(room, 403, room.join, "ann")
    assert err.is_banned
    refused(room, 403, room.ban, "bob", "cat")
    refused(room, 409, room.ban, "h", "h")
    refused(room, 422, room.ban, "h", "")


def test_one_host_per_room() -> None:
    room = seat_room()
    refused(room, 403, room.join, "ann", as_host=True)
    room.join("h", as_host=True)  # the host rejoining is fine


def test_setup_grows_shrinks_and_switches_mode() -> None:
    room = seat_room(seats=4)
    room.take_seat("ann", 1)
    room.lock_seat("h", 3)
    refused(room, 409, room.setup_seats, "h", seat_count=1)  # ann sits on seat 1
    room.setup_seats("h", seat_count=2, seat_mode="request")
    grid = room.snapshot()
    assert grid.seat_count == 2 and grid.mode is REQUEST and grid.seat_of("ann") == 1
    room.setup_seats("h", seat_count=6)
    assert room.snapshot().seat_count == 6 and not room.snapshot().seats[3].locked


def test_shrinking_forgets_wanted_seats_beyond_the_grid() -> None:
    room = seat_room(REQUEST, seats=4)
    req = ask(room, "ann", 3)
    room.invite_to_speak("h", "bob", 2)
    room.setup_seats("h", seat_count=2)
    grid = room.snapshot()
    assert grid.requests[0].seat_index is None and grid.invites == {"bob": None}
    room.approve_speaker("h", req.request_id)
    assert grid.seat_count == 2 and room.snapshot().seat_of("ann") == 0


@pytest.mark.parametrize("count", [0, -1, 65, True, False, "4", 4.0, None])
def test_bad_seat_count_is_invalid(count: object) -> None:
    bare = SeatRoom("bare")
    bare.join("h", as_host=True)
    err = refused(bare, 422, bare.setup_seats, "h", seat_count=count)
    assert err.field == "seat_count"
    room = seat_room()
    if count is not None:
        refused(room, 422, room.setup_seats, "h", seat_count=count)


def test_bad_seat_mode_is_invalid() -> None:
    room = seat_room()
    refused(room, 422, room.setup_seats, "h", seat_mode="chaotic")
    refused(room, 422, room.setup_seats, "h", seat_count=2, seat_mode=3)


@pytest.mark.parametrize("index", [-1, 4, 64, True, "1", 1.0])
def test_bad_seat_index_is_invalid_everywhere(index: object) -> None:
    room = seat_room()
    room.take_seat("h", 0)
    ops: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (room.take_seat, ("ann", index)),
        (room.lock_seat, ("h", index)),
        (room.lock_seat, ("h", index, False)),
        (room.mute_seat, ("h", index)),
        (room.move_seat, ("h", index)),
        (room.request_to_speak, ("ann", index)),
        (room.invite_to_speak, ("h", "ann", index)),
    ]
    for op, args in ops:
        err = refused(room, 422, op, *args)
        assert err.field == "seat_index", op


@pytest.mark.parametrize("bad", ["", "   ", "x" * 129, "a\nb", None, 7])
def test_bad_identity_is_invalid(bad: Any) -> None:
    room = seat_room()
    room.take_seat("ann")
    refused(room, 422, room.join, bad)
    refused(room, 422, room.take_seat, bad)
    refused(room, 422, room.leave_seat, bad)
    refused(room, 422, room.request_to_speak, bad)
    refused(room, 422, room.cancel_speak_request, bad)
    refused(room, 422, room.decline_invite, bad)
    refused(room, 422, room.invite_to_speak, "h", bad)
    refused(room, 422, room.move_seat, bad, 1)
    if bad is not None:  # None is move's default: the actor itself
        refused(room, 422, room.move_seat, "h", 1, bad)
    refused(room, 422, room.ban, "h", bad)
    refused(room, 422, room.leave, bad)


def test_kick_of_an_empty_identity_is_invalid() -> None:
    """Regression: the kicked identity is validated (422), not reported as a listener (409)."""
    room = seat_room()
    refused(room, 422, room.kick_from_seat, "h", "")


def test_host_operations_are_refused_to_others() -> None:
    room = seat_room(REQUEST)
    req = ask(room, "ann")
    room.take_seat("h", 0)
    ops: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
        (room.setup_seats, ("bob",), {"seat_count": 2}),
        (room.approve_speaker, ("bob", req.request_id), {}),
        (room.deny_speaker, ("bob", req.request_id), {}),
        (room.invite_to_speak, ("bob", "cat"), {}),
        (room.kick_from_seat, ("bob", "h"), {}),
        (room.lock_seat, ("bob", 1), {}),
        (room.lock_seat, ("bob", 1), {"locked": False}),
        (room.mute_seat, ("bob", 0), {}),
        (room.ban, ("bob", "cat"), {}),
        (room.move_seat, ("bob", 2, "h"), {}),
    ]
    for op, args, kwargs in ops:
        refused(room, 403, op, *args, **kwargs)


# ---------------------------------------------------------------------------------------
# SeatRoom: snapshots
# ---------------------------------------------------------------------------------------
def busy_room() -> SeatRoom:
    """A grid with every kind of state: seated, muted, locked, requested, invited."""
    room = seat_room(REQUEST, seats=6)
    room.join("dan")
    room.take_seat("h", 0)
    room.invite_to_speak("h", "ann", 1)
    room.take_seat("ann")
    room.mute_seat("h", 1)
    room.lock_seat("h", 5)
    room.mute_seat("h", 4)
    room.request_to_speak("bob", 3)
    room.request_to_speak("cat")
    room.invite_to_speak("h", "dan", 2)
    return room


def test_snapshot_restore_round_trip() -> None:
    room = busy_room()
    grid = room.snapshot()
    copy = SeatRoom.restore(grid)
    assert copy.snapshot() == grid and copy.version == room.version
    assert [copy.state_of(i) for i in ("h", "ann", "bob", "cat", "dan")] == [S, S, R, R, I]
    assert copy.publish_sources("ann") == NONE and copy.publish_sources("h") == MIC
    # the mirror keeps working where the original left off
    copy.approve_speaker("h", grid.requests[0].request_id)
    room.approve_speaker("h", grid.requests[0].request_id)
    assert copy.snapshot() == room.snapshot()
    copy.join("eve")
    copy.request_to_speak("eve")  # request ids keep growing after a restore
    assert copy.snapshot().requests[-1].request_id > grid.requests[-1].request_id


def test_snapshot_round_trips_through_the_wire_schema() -> None:
    grid = busy_room().snapshot()
    payload = dump(SeatGridSchema(), grid)
    assert payload["seat_count"] == 6 and payload["mode"] == "request"
    assert load(SeatGridSchema(), payload) == grid
    assert SeatRoom.restore(load(SeatGridSchema(), payload)).snapshot() == grid


# ---------------------------------------------------------------------------------------
# LiveStage
# ---------------------------------------------------------------------------------------
def stage() -> LiveStage:
    room = LiveStage("live-1")
    assert room.join("h", as_host=True, name="Host") == [granted("live-1", "h", AV)]
    for who in ("ann", "bob", "cat"):
        assert room.join(who, name=who.title()) == []
    return room


def test_raise_promote_demote() -> None:
    room = stage()
    assert room.request_stage("ann") == []
    assert room.snapshot().hands == ("ann",) and room.state_of("ann") is StageState.HAND_RAISED
    assert room.invite_to_stage("h", "ann") == [granted("live-1", "ann", AV)]
    assert [m.identity for m in room.snapshot().members] == ["h", "ann"]
    assert room.snapshot().members[1].name == "Ann"
    assert room.remove_from_stage("h", "ann") == [revoked("live-1", "ann", AV)]
    assert room.state_of("ann") is StageState.VIEWER and room.snapshot().hands == ()


def test_lower_hand_step_down_and_promote_without_a_hand() -> None:
    room = stage()
    room.request_stage("ann")
    assert room.lower_hand("ann") == []
    room.invite_to_stage("h", "bob")
    assert room.leave_stage("bob") == [revoked("live-1", "bob", AV)]
    assert [m.identity for m in room.snapshot().members] == ["h"]


def test_stage_refusals() -> None:
    room = stage()
    room.invite_to_stage("h", "bob")
    refused(room, 403, room.invite_to_stage, "ann", "cat")
    refused(room, 403, room.remove_from_stage, "ann", "bob")
    refused(room, 409, room.lower_hand, "ann")
    refused(room, 409, room.leave_stage, "ann")
    refused(room, 409, room.remove_from_stage, "h", "ann")
    refused(room, 409, room.invite_to_stage, "h", "bob")
    refused(room, 409, room.request_stage, "bob")
    refused(room, 404, room.invite_to_stage, "h", "stranger")
    refused(room, 422, room.invite_to_stage, "h", "")
    refused(room, 422, room.invite_to_stage, "", "ann")


def test_host_cannot_leave_the_host_state() -> None:
    room = stage()
    ops: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (room.remove_from_stage, ("h", "h")), (room.leave_stage, ("h",)), (room.request_stage, ("h",)),
        (room.invite_to_stage, ("h", "h")), (room.lower_hand, ("h",)),
    ]
    for op, args in ops:
        refused(room, 409, op, *args)
    assert room.leave("h") == []  # dropping out of the media room keeps the stage role
    assert room.state_of("h") is StageState.HOST and room.publish_sources("h") == AV


def test_no_cap_on_co_publishers() -> None:
    room = stage()
    for n in range(50):
        room.join(f"v{n}")
        assert room.invite_to_stage("h", f"v{n}") == [granted("live-1", f"v{n}", AV)]
    members = room.snapshot().members
    assert len(members) == 51 and all(m.role == "on_stage" for m in members[1:])


def test_leaving_and_ban_take_a_co_publisher_off_stage() -> None:
    room = stage()
    room.invite_to_stage("h", "ann")
    room.request_stage("bob")
    assert room.leave("ann") == [revoked("live-1", "ann", AV)]
    assert room.ban("h", "bob") == [ParticipantRemoved("live-1", "bob", "banned")]
    assert room.snapshot().hands == ()
    refused(room, 403, room.join, "bob", code=ErrorCode.BANNED)
    refused(room, 409, room.ban, "h", "h")
    refused(room, 403, room.join, "cat", as_host=True)


def test_stage_snapshot_round_trips() -> None:
    room = stage()
    room.request_stage("ann")
    room.invite_to_stage("h", "bob")
    room.request_stage("cat")
    snap = room.snapshot()
    assert LiveStage.restore(snap).snapshot() == snap
    assert load(StageSchema(), dump(StageSchema(), snap)) == snap
    # hands carry no display names: a mirror takes them from the media room's presence
    copy = LiveStage.restore(load(StageSchema(), dump(StageSchema(), snap)),
                             present=dict(room.presence.present))
    copy.invite_to_stage("h", "ann")
    room.invite_to_stage("h", "ann")
    assert copy.snapshot() == room.snapshot()


def test_whoever_joins_as_host_is_in_the_host_state() -> None:
    """Regression: a viewer with a raised hand who joins as host stops being a hand."""
    room = LiveStage("live-2")
    room.join("ann")
    room.request_stage("ann")
    assert room.join("ann", as_host=True) == [granted("live-2", "ann", AV)]
    assert room.host == "ann" and room.state_of("ann") is StageState.HOST
    assert room.snapshot().hands == () and room.join("ann", as_host=True) == []


# ---------------------------------------------------------------------------------------
# SeatRoom: random operations, invariants after every step
# ---------------------------------------------------------------------------------------
PEOPLE = ("h", "ann", "bob", "cat", "dan")
people = st.sampled_from(PEOPLE)
actors = st.one_of(st.just("h"), people)  # the host half the time: its moves unlock the rest
seat_numbers = st.one_of(st.integers(min_value=0, max_value=3), st.sampled_from([-1, 7]))
indexes = st.one_of(st.none(), seat_numbers)
picks = st.integers(min_value=0, max_value=4)


class SeatRoomMachine(RuleBasedStateMachine):
    """Random actors doing random things; the grid must stay coherent no matter what.

    Invariants read two private fields (``_speakers``, ``_seats``) on purpose: "a seat's
    occupant has a speaker model sitting on that seat" is a statement about the models.
    """

    def __init__(self) -> None:
        super().__init__()
        self.room = SeatRoom("prop")

    @initialize(mode=st.sampled_from([FREE, REQUEST]), count=st.integers(min_value=2, max_value=4))
    def open_room(self, mode: UTDSeatMode, count: int) -> None:
        self.room.join("h", as_host=True)
        for who in PEOPLE[1:]:
            self.room.join(who)
        self.room.setup_seats("h", seat_count=count, seat_mode=mode)

    def _do(self, op: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        before, version = self.room.snapshot(), self.room.version
        try:
            result = op(*args, **kwargs)
        except UTDStreamException as exc:
            assert exc.status_code in (403, 404, 409, 422), repr(exc)
            assert self.room.snapshot() == before and self.room.version == version
            return
        effects = result if isinstance(result, list) else []
        for effect in effects:
            if isinstance(effect, PublishChanged):
                assert effect.before != effect.after
                assert effect.after == self.room.publish_sources(effect.identity)
        after = self.room.snapshot()
        assert self.room.version >= version
        if after != before:
            assert self.room.version > version

    def _someone(self, pick: int, apt: bool, *states: SpeakerState) -> str:
        """Usually someone in one of ``states`` (so the move can succeed), else anyone."""
        fitting = [p for p in PEOPLE if self.room.state_of(p) in states
                   and p in self.room.presence.present]
        pool = fitting if apt and fitting else list(PEOPLE)
        return pool[pick % len(pool)]

    def _anyone_in(self, state: SpeakerState) -> bool:
        return any(self.room.state_of(p) is state for p in PEOPLE)

    @rule(pick=picks, apt=st.booleans(), index=indexes)
    def take(self, pick: int, apt: bool, index: int | None) -> None:
        self._do(self.room.take_seat, self._someone(pick, apt, L, I), index)

    @precondition(lambda self: self._anyone_in(S))
    @rule(pick=picks, apt=st.booleans(), actor=actors, host=st.booleans())
    def unseat(self, pick: int, apt: bool, actor: str, host: bool) -> None:
        who = self._someone(pick, apt, S)
        if host:
            self._do(self.room.kick_from_seat, actor, who)
        else:
            self._do(self.room.leave_seat, who)

    @rule(pick=picks, apt=st.booleans(), index=indexes)
    def request(self, pick: int, apt: bool, index: int | None) -> None:
        self._do(self.room.request_to_speak, self._someone(pick, apt, L), index)

    @precondition(lambda self: self._anyone_in(R))
    @rule(pick=picks, apt=st.booleans())
    def cancel_request(self, pick: int, apt: bool) -> None:
        self._do(self.room.cancel_speak_request, self._someone(pick, apt, R))

    @precondition(lambda self: self._anyone_in(R))
    @rule(actor=actors, pick=picks, approve=st.booleans())
    def answer(self, actor: str, pick: int, approve: bool) -> None:
        pending = [r.request_id for r in self.room.snapshot().requests] + [10_000]
        request_id = pending[pick % len(pending)]
        self._do(self.room.approve_speaker if approve else self.room.deny_speaker, actor, request_id)

    @rule(actor=actors, pick=picks, apt=st.booleans(), index=indexes)
    def invite(self, actor: str, pick: int, apt: bool, index: int | None) -> None:
        self._do(self.room.invite_to_speak, actor, self._someone(pick, apt, L, R), index)

    @precondition(lambda self: self._anyone_in(I))
    @rule(pick=picks, apt=st.booleans())
    def decline(self, pick: int, apt: bool) -> None:
        self._do(self.room.decline_invite, self._someone(pick, apt, I))

    @precondition(lambda self: self._anyone_in(S))
    @rule(actor=actors, pick=picks, apt=st.booleans(), by_self=st.booleans(), index=seat_numbers)
    def move(self, actor: str, pick: int, apt: bool, by_self: bool, index: int) -> None:
        who = self._someone(pick, apt, S)
        self._do(self.room.move_seat, who if by_self else actor, index, who)

    @rule(actor=actors, index=seat_numbers, lock=st.booleans())
    def lock(self, actor: str, index: int, lock: bool) -> None:
        self._do(self.room.lock_seat, actor, index, lock)

    @rule(actor=actors, index=seat_numbers, muted=st.booleans())
    def mute(self, actor: str, index: int, muted: bool) -> None:
        self._do(self.room.mute_seat, actor, index, muted)

    @rule(actor=actors, count=st.integers(min_value=0, max_value=5),
          mode=st.sampled_from([None, "free", "request"]))
    def setup(self, actor: str, count: int, mode: str | None) -> None:
        self._do(self.room.setup_seats, actor, seat_count=count, seat_mode=mode)

    @rule(who=people, back=st.booleans())
    def leave_room(self, who: str, back: bool) -> None:
        self._do(self.room.leave, who)
        if back:
            self._do(self.room.join, who, as_host=who == "h")

    @precondition(lambda self: not self.room.presence.banned)
    @rule(actor=actors, who=people)
    def ban(self, actor: str, who: str) -> None:
        self._do(self.room.ban, actor, who)

    @invariant()
    def one_seat_each_and_locked_seats_are_empty(self) -> None:
        grid = self.room.snapshot()
        seated = [s.occupant for s in grid.seats if s.occupant is not None]
        assert len(seated) == len(set(seated))
        assert all(s.occupant is None for s in grid.seats if s.locked)
        assert [s.index for s in grid.seats] == list(range(grid.seat_count))

    @invariant()
    def occupants_are_speaker_models_on_that_seat(self) -> None:
        room = self.room
        speakers = room._speakers
        for seat in room._seats:
            expected = (SeatState.LOCKED if seat.state is SeatState.LOCKED else
                        SeatState.OCCUPIED if seat.occupant else SeatState.EMPTY)
            assert seat.state is expected
            if seat.occupant is not None:
                model = speakers[seat.occupant]
                assert model.state is S and model.seat == seat.index
        for identity, model in speakers.items():
            assert model.state is not L, "listeners hold no model"
            assert (model.state is S) == (model.seat is not None)
            if model.seat is not None:
                assert room._seats[model.seat].occupant == identity
        assert len(room._speaker_machine.models) == len(speakers)
        assert len(room._seat_machine.models) == len(room._seats)

    @invariant()
    def roles_match_the_snapshot(self) -> None:
        grid = self.room.snapshot()
        requesting = {r.identity for r in grid.requests}
        for who in PEOPLE:
            state = self.room.state_of(who)
            assert (state is S) == (who in grid.speakers)
            assert (state is R) == (who in requesting)
            assert (state is I) == (who in grid.invites)
            assert who not in self.room.presence.banned or state is L

    @invariant()
    def only_unmuted_seated_speakers_publish(self) -> None:
        grid = self.room.snapshot()
        for who in PEOPLE:
            index = grid.seat_of(who)
            live = index is not None and not grid.seats[index].muted
            assert self.room.publish_sources(who) == (MIC if live else NONE)

    @invariant()
    def restore_round_trips(self) -> None:
        grid = self.room.snapshot()
        assert SeatRoom.restore(grid).snapshot() == grid
        assert load(SeatGridSchema(), dump(SeatGridSchema(), grid)) == grid


SeatRoomMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSeatRoomStateful = SeatRoomMachine.TestCase


def test_grid_publish_sources_agrees_with_the_restored_room() -> None:
    room = SeatRoom("agree")
    room.join("h", as_host=True)
    room.setup_seats("h", seat_count=3)
    for who in ("a", "b", "c"):
        room.join(who)
    room.take_seat("a", 0)
    room.take_seat("b", 1)
    room.mute_seat("h", 1)
    grid = room.snapshot()
    restored = SeatRoom.restore(grid)
    for who in ("h", "a", "b", "c"):
        assert SeatRoom.grid_publish_sources(grid, who) == restored.publish_sources(who)


def test_only_the_host_state_may_go_live_and_it_changes_nothing() -> None:
    """The go_live row is the host's: a client checks its mirror, not a flag of its own."""
    room = LiveStage("live-3")
    room.join("h", as_host=True)
    room.join("ann")
    room.invite_to_stage("h", "ann")
    before = room.snapshot()
    assert room.go_live("h") == AV and room.snapshot() == before
    for who in ("ann", "bob"):  # on stage, or a viewer: neither is the host
        refused(room, 409, room.go_live, who)
