"""Behaviour of 1:1 calls: the pure ``apply_call``/``expire_call`` and the ``CallLedger``.

Calls are driven directly, no mocks: each test fires triggers as some identity and asserts
the resulting call and the effects returned; a refusal leaves the call exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_core.effects import RoomClosed
from stream_core.errors import UTDStreamException
from stream_core.machines.call import CALL_PUBLISH, CALL_TABLE, TERMINAL, UNANSWERED
from stream_core.models import (
    TERMINAL_CALL_STATUSES, UNANSWERED_CALL_STATUSES, UTDCallStatus, UTDStreamType,
)
from stream_core.rooms import CallLedger, apply_call, call_publish_sources, expire_call
from stream_core.rooms.calls import noop_for
from stream_core.wire import CallSchema, dump, load

MIC = frozenset({"microphone"})
AV = frozenset({"microphone", "camera"})


# ---------------------------------------------------------------------------------------
# CallLedger
# ---------------------------------------------------------------------------------------
def ledger(call_type: UTDStreamType = UTDStreamType.AUDIO_CALL) -> CallLedger:
    calls = CallLedger(ring_timeout=30.0)
    calls.create(call_id="c1", caller="ann", callee="bob", type=call_type, now=100.0)
    return calls


def closed(sources: frozenset[str] = MIC) -> list[Any]:
    """The effects of call c1 ending: the room closes, which ends every grant at once (no
    separate revokes racing the room's deletion). ``sources`` is what was granted."""
    return [RoomClosed("call-c1")]


def test_create_ring_accept_end() -> None:
    calls = ledger()
    call = calls.get("c1")
    assert (call.status, call.room_name, call.ring_deadline) == \
        (UTDCallStatus.INITIATING, "call-c1", 130.0)
    ringing = replace(call, status=UTDCallStatus.RINGING)
    assert calls.apply("c1", "ring", actor="bob") == (ringing, [])
    assert calls.apply("c1", "accept", actor="bob")[0].status is UTDCallStatus.ACTIVE
    ended, effects = calls.apply("c1", "end", actor="ann")
    assert (ended.status, ended.ended_by) == (UTDCallStatus.ENDED, "ann")
    assert effects == closed()


def test_video_call_effects_cover_the_camera() -> None:
    calls = ledger(UTDStreamType.VIDEO_CALL)
    calls.apply("c1", "accept", actor="bob")
    assert calls.apply("c1", "end", actor="bob")[1] == closed(AV)


@pytest.mark.parametrize(("trigger", "status"), [("reject", UTDCallStatus.REJECTED),
                                                 ("busy", UTDCallStatus.BUSY)])
def test_callee_refuses(trigger: str, status: UTDCallStatus) -> None:
    calls = ledger()
    calls.apply("c1", "ring", actor="bob")
    call, effects = calls.apply("c1", trigger, actor="bob")
    assert call.status is status and call.ended_by is None and effects == closed()


@pytest.mark.parametrize("ring", [False, True])
def test_end_of_an_unanswered_call_cancels_for_the_caller_and_rejects_for_the_callee(
    ring: bool,
) -> None:
    for actor, status, ended_by in (("ann", UTDCallStatus.ENDED, "ann"),
                                    ("bob", UTDCallStatus.REJECTED, None)):
        calls = ledger()
        if ring:
            calls.apply("c1", "ring", actor="bob")
        call, effects = calls.apply("c1", "end", actor=actor)
        assert (call.status, call.ended_by, effects) == (status, ended_by, closed())


def test_duplicate_end_is_a_no_op() -> None:
    calls = ledger()
    calls.apply("c1", "accept", actor="bob")
    first, _ = calls.apply("c1", "end", actor="bob")
    assert calls.apply("c1", "end", actor="ann") == (first, [])
    assert calls.get("c1").ended_by == "bob"
    calls.create(call_id="c2", caller="ann", callee="bob", type=UTDStreamType.AUDIO_CALL, now=0)
    calls.apply("c2", "reject", actor="bob")
    assert calls.apply("c2", "end", actor="ann")[1] == []


@pytest.mark.parametrize(("trigger", "actor", "status"), [
    ("ring", "ann", 403), ("accept", "ann", 403), ("accept", "eve", 403),
    ("accept", None, 403), ("end", "eve", 403), ("miss", "bob", 403), ("drop", "ann", 403),
    ("hang_up", "ann", 422),
])
def test_call_refusals_leave_the_call_unchanged(trigger: str, actor: str | None,
                                                status: int) -> None:
    calls = ledger()
    before = calls.get("c1")
    with pytest.raises(UTDStreamException) as info:
        calls.apply("c1", trigger, actor=actor)
    assert info.value.status_code == status and calls.get("c1") == before


def test_terminal_calls_refuse_the_parties_and_take_the_engines_races_as_no_ops() -> None:
    calls = ledger()
    calls.apply("c1", "end", actor="ann")
    before = calls.get("c1")
    for trigger, actor in [("ring", "bob"), ("accept", "bob"), ("reject", "bob")]:
        with pytest.raises(UTDStreamException) as info:
            calls.apply("c1", trigger, actor=actor)
        assert info.value.status_code == 409 and calls.get("c1") == before
    for trigger in ("miss", "drop"):  # a ring timer or a leave racing the end
        assert calls.apply("c1", trigger, actor=None) == (before, [])


def test_the_ring_timer_racing_an_accept_is_a_no_op() -> None:
    calls = ledger()
    active, _ = calls.apply("c1", "accept", actor="bob")
    assert calls.apply("c1", "miss", actor=None) == (active, [])
    assert calls.expire(1e9) == [] and calls.get("c1") == active


def test_unanswered_calls_are_missed_at_their_deadline() -> None:
    calls = ledger()
    calls.create(call_id="c2", caller="cat", callee="bob", type=UTDStreamType.AUDIO_CALL,
                 now=110.0)
    calls.create(call_id="c3", caller="cat", callee="dan", type=UTDStreamType.AUDIO_CALL,
                 now=90.0)
    calls.apply("c3", "accept", actor="dan")
    assert calls.next_deadline() == 130.0
    assert calls.expire(129.9) == []
    (missed,) = calls.expire(130.0)
    assert (missed.call_id, missed.status) == ("c1", UTDCallStatus.MISSED)
    assert calls.next_deadline() == 140.0
    assert [c.call_id for c in calls.expire(1e9)] == ["c2"]
    assert calls.next_deadline() is None and calls.get("c3").status is UTDCallStatus.ACTIVE


def test_engine_drops_a_call() -> None:
    calls = ledger()
    calls.apply("c1", "accept", actor="bob")
    call, effects = calls.apply("c1", "drop", actor=None)
    assert (call.status, call.ended_by) == (UTDCallStatus.ENDED, None) and effects == closed()


def test_may_join_admits_the_two_parties_until_the_call_is_over() -> None:
    calls = ledger()
    assert calls.may_join("c1", "ann") and calls.may_join("c1", "bob")
    assert not calls.may_join("c1", "eve")
    calls.apply("c1", "accept", actor="bob")
    assert calls.may_join("c1", "bob") and not calls.may_join("c1", "cat")
    calls.apply("c1", "end", actor="bob")
    assert not calls.may_join("c1", "ann") and not calls.may_join("c1", "bob")


def test_follow_mirrors_the_engine_step_by_step() -> None:
    engine = ledger(UTDStreamType.VIDEO_CALL)
    client = CallLedger()
    mirrored, effects = client.follow(engine.get("c1"))
    assert mirrored == engine.get("c1") and effects == []
    for trigger, actor in [("ring", "bob"), ("accept", "bob"), ("end", "ann")]:
        expected = engine.apply("c1", trigger, actor=actor)
        assert client.follow(expected[0]) == expected
    assert client.follow(engine.get("c1")) == (engine.get("c1"), [])  # same status: nothing


def test_follow_can_jump_straight_to_a_terminal_status() -> None:
    engine, client = ledger(), CallLedger()
    client.follow(engine.get("c1"))
    (missed,) = engine.expire(1e9)
    call, effects = client.follow(missed)
    assert call == missed and effects == closed()


def test_follow_refuses_an_impossible_jump() -> None:
    engine, client = ledger(), CallLedger()
    client.follow(engine.get("c1"))
    (missed,) = engine.expire(1e9)
    client.follow(missed)
    stale = replace(missed, status=UTDCallStatus.RINGING)
    with pytest.raises(UTDStreamException) as info:
        client.follow(stale)
    assert info.value.status_code == 409
    assert client.get("c1").status is UTDCallStatus.MISSED


def test_a_refused_follow_leaves_the_whole_call_unchanged() -> None:
    """Regression: a stale answer is refused before any of its fields are copied."""
    engine, client = ledger(), CallLedger()
    engine.apply("c1", "end", actor="ann")
    client.follow(engine.get("c1"))
    before = client.get("c1")
    with pytest.raises(UTDStreamException):
        client.follow(replace(before, status=UTDCallStatus.RINGING, ended_by="eve"))
    assert client.get("c1") == before


call_steps = st.lists(st.one_of(
    st.tuples(st.sampled_from(["ring", "accept", "reject", "busy", "end", "miss", "drop"]),
              st.sampled_from(["ann", "bob", "eve", None])),
    st.tuples(st.just("expire"), st.floats(min_value=100.0, max_value=140.0)),
), max_size=12)


@settings(max_examples=150, deadline=None)
@given(steps=call_steps, video=st.booleans())
def test_a_following_client_always_agrees_with_the_engine(
    steps: list[tuple[str, Any]], video: bool
) -> None:
    """Whatever the engine does (or refuses), a client that follows it ends up identical."""
    engine = ledger(UTDStreamType.VIDEO_CALL if video else UTDStreamType.AUDIO_CALL)
    client = CallLedger()
    client.follow(engine.get("c1"))
    for trigger, arg in steps:
        before = engine.get("c1")
        if trigger == "expire":
            engine.expire(arg)
            effects = None
        else:
            try:
                effects = engine.apply("c1", trigger, actor=arg)[1]
            except UTDStreamException as exc:
                assert exc.status_code in (403, 409) and engine.get("c1") == before
                continue
        call, mirrored = client.follow(engine.get("c1"))
        assert call == engine.get("c1")
        if effects is not None:
            assert mirrored == effects
        assert client.may_join("c1", "ann") == engine.may_join("c1", "ann")
        assert client.next_deadline() == engine.next_deadline()


def test_create_validates_its_input() -> None:
    calls = ledger()
    audio = UTDStreamType.AUDIO_CALL
    cases: list[tuple[dict[str, Any], int]] = [
        ({"call_id": "", "caller": "a", "callee": "b", "type": audio}, 422),
        ({"call_id": "x", "caller": "", "callee": "b", "type": audio}, 422),
        ({"call_id": "x", "caller": "a", "callee": " ", "type": audio}, 422),
        ({"call_id": "x", "caller": "a", "callee": "a", "type": audio}, 422),
        ({"call_id": "x", "caller": "a", "callee": "b", "type": UTDStreamType.LIVE_STREAM}, 422),
        ({"call_id": "x", "caller": "a", "callee": "b", "type": "audio_call"}, 422),
        ({"call_id": "c1", "caller": "a", "callee": "b", "type": audio}, 409),
    ]
    for kwargs, status in cases:
        with pytest.raises(UTDStreamException) as info:
            calls.create(now=0.0, **kwargs)
        assert info.value.status_code == status, kwargs
    assert len(calls) == 1
    with pytest.raises(UTDStreamException) as info:
        CallLedger(ring_timeout=0)
    assert info.value.status_code == 422


def test_unknown_call_id_is_not_found() -> None:
    calls = ledger()
    unknown: Any = None  # not even a string: still a 404, not a TypeError
    ops: list[Callable[[], object]] = [
        lambda: calls.get("nope"), lambda: calls.apply("nope", "end", actor="ann"),
        lambda: calls.may_join("nope", "ann"), lambda: calls.get(unknown),
        lambda: calls.discard("nope"),
    ]
    for op in ops:
        with pytest.raises(UTDStreamException) as info:
            op()
        assert info.value.status_code == 404
    assert "nope" not in calls and "c1" in calls


def test_discard_of_an_unknown_call_is_not_found() -> None:
    """Regression: discard raises the ledger's 404 like every other lookup, not KeyError."""
    with pytest.raises(UTDStreamException) as info:
        ledger().discard("nope")
    assert info.value.status_code == 404


def test_discard_and_calls_for() -> None:
    calls = ledger()
    calls.create(call_id="c2", caller="cat", callee="bob", type=UTDStreamType.AUDIO_CALL,
                 now=50.0)
    assert [c.call_id for c in calls.calls_for("bob")] == ["c2", "c1"]
    assert [c.call_id for c in calls.calls_for("ann", as_callee=False)] == ["c1"]
    calls.discard("c2")
    assert len(calls) == 1 and "c2" not in calls


def test_call_round_trips_through_the_wire_schema_and_restore() -> None:
    calls = ledger(UTDStreamType.VIDEO_CALL)
    calls.apply("c1", "accept", actor="bob")
    call = replace(calls.get("c1"), metadata={"topic": "x", "n": 2})
    assert load(CallSchema(), dump(CallSchema(), call)) == call
    other = CallLedger()
    assert other.restore(load(CallSchema(), dump(CallSchema(), call))) == call
    assert other.apply("c1", "end", actor="ann")[0].status is UTDCallStatus.ENDED


# ---------------------------------------------------------------------------------------
# apply_call / expire_call: pure, so the engine needs neither a ledger nor a lock
# ---------------------------------------------------------------------------------------
def fresh(call_type: UTDStreamType = UTDStreamType.AUDIO_CALL) -> Any:
    return ledger(call_type).get("c1")


call_moves = st.lists(st.tuples(
    st.sampled_from(["ring", "accept", "reject", "busy", "end", "miss", "drop", "nope"]),
    st.sampled_from(["ann", "bob", "eve", None])), max_size=10)


@settings(max_examples=150, deadline=None)
@given(moves=call_moves, video=st.booleans())
def test_apply_call_is_what_the_ledger_does_and_never_changes_its_input(
    moves: list[tuple[str, str | None]], video: bool,
) -> None:
    calls = ledger(UTDStreamType.VIDEO_CALL if video else UTDStreamType.AUDIO_CALL)
    call = calls.get("c1")
    for trigger, actor in moves:
        copy = replace(call)
        try:
            expected = calls.apply("c1", trigger, actor=actor)
        except UTDStreamException as refused:
            with pytest.raises(UTDStreamException) as info:
                apply_call(call, trigger, actor)
            assert info.value.status_code == refused.status_code
            assert call == copy
            continue
        assert apply_call(call, trigger, actor) == expected
        assert call == copy  # the input is a value: never changed
        call = expected[0]


def test_apply_call_from_many_threads_at_once_needs_no_lock() -> None:
    """Each thread moves its own value; none sees another's move (no shared scratch)."""
    start = fresh(UTDStreamType.VIDEO_CALL)
    moves = [("accept", "bob"), ("reject", "bob"), ("end", "ann"), ("end", "bob"),
             ("miss", None), ("drop", None), ("busy", "bob")] * 200
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda m: apply_call(start, m[0], m[1])[0].status, moves))
    expected = {("accept", "bob"): UTDCallStatus.ACTIVE, ("reject", "bob"): UTDCallStatus.REJECTED,
                ("end", "ann"): UTDCallStatus.ENDED, ("end", "bob"): UTDCallStatus.REJECTED,
                ("miss", None): UTDCallStatus.MISSED, ("drop", None): UTDCallStatus.ENDED,
                ("busy", "bob"): UTDCallStatus.BUSY}
    assert results == [expected[m] for m in moves]
    assert start.status is UTDCallStatus.INITIATING


def test_expire_call_misses_only_an_unanswered_call_whose_deadline_passed() -> None:
    call = fresh()
    assert expire_call(call, 129.9) == (call, [])
    missed, effects = expire_call(call, 130.0)
    assert missed.status is UTDCallStatus.MISSED and effects == closed()
    active, _ = apply_call(call, "accept", "bob")
    assert expire_call(active, 1e9) == (active, [])  # the table's no-op row, no guard
    timeless = replace(call, ring_deadline=None)
    assert expire_call(timeless, 1e9) == (timeless, [])


def test_engine_fires_miss_and_drop_unconditionally() -> None:
    """Every status has a row for ``miss`` and ``drop`` by the engine (a move or a no-op)."""
    for status in UTDCallStatus:
        call = replace(fresh(), status=status)
        for trigger in ("miss", "drop"):
            after, effects = apply_call(call, trigger, None)
            if status.is_terminal or (trigger == "miss" and status is UTDCallStatus.ACTIVE):
                assert (after, effects) == (call, [])
            else:
                assert after.status.is_terminal and effects == closed()


# ---------------------------------------------------------------------------------------
# What the table defines once: publish sources, unanswered and terminal statuses
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", list(UTDCallStatus))
def test_call_publish_is_read_from_the_table_by_call_type(status: UTDCallStatus) -> None:
    live = status in UNANSWERED or status is UTDCallStatus.ACTIVE
    assert call_publish_sources(UTDStreamType.AUDIO_CALL, status) == (MIC if live else frozenset())
    assert call_publish_sources(UTDStreamType.VIDEO_CALL, status) == (AV if live else frozenset())
    assert call_publish_sources(UTDStreamType.LIVE_STREAM, status) == frozenset()
    assert set(CALL_PUBLISH) == {UTDStreamType.AUDIO_CALL, UTDStreamType.VIDEO_CALL}


def test_unanswered_and_terminal_are_one_definition_that_matches_the_rows() -> None:
    assert UNANSWERED is UNANSWERED_CALL_STATUSES and TERMINAL is TERMINAL_CALL_STATUSES
    leaving = {s for r in CALL_TABLE.rules if r.dest is not None for s in r.source}
    assert set(TERMINAL) == set(UTDCallStatus) - leaving
    answerable = {s for r in CALL_TABLE.rules if r.trigger == "accept" for s in r.source}
    assert set(UNANSWERED) == answerable
    assert {s for s in UTDCallStatus if s.is_terminal} == set(TERMINAL)
    assert {s for s in UTDCallStatus if s.is_unanswered} == set(UNANSWERED)


def test_noop_for_tells_a_client_which_hang_up_needs_no_round_trip() -> None:
    call = fresh()
    assert not noop_for(call, "end", "ann") and not noop_for(call, "end", "bob")
    over, _ = apply_call(call, "end", "ann")
    assert noop_for(over, "end", "ann") and noop_for(over, "end", "bob")
    assert not noop_for(over, "end", "eve")  # a stranger's refusal is the engine's to give
    assert not noop_for(over, "accept", "bob")
