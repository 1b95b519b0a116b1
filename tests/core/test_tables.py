"""Every table, every state x trigger x set of actors: the table is the whole truth.

A fire either moves the model to exactly the row's destination (or leaves it in place
for a documented no-op row) or raises ``UTDStreamException`` -- 409 when no row exists,
403 when a row exists for someone else -- and leaves the state as it was. The expected
outcome is computed here from the rows by a plain scan and an explicit table of which
held roles satisfy which required role, independently of ``Table``'s index and
``_permits``. The sweep is exhaustive (all 2**8 actor sets), not sampled: it is small.
"""

from __future__ import annotations

import enum
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions import Machine, MachineError

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.machines import ALL_TABLES, CALL_TABLE, STAGE_TABLE, CallState, StageState
from stream_core.machines.call import TERMINAL
from stream_core.machines.speaker import SPEAKER_TABLE, SpeakerState, mode_condition
from stream_core.models import UTDSeatMode
from stream_core.machines.table import Actor, Rule, Table

#: Held roles that satisfy each required role (``ANY`` is satisfied by every set, even {}).
SATISFIED_BY: dict[Actor, frozenset[Actor]] = {
    Actor.SELF: frozenset({Actor.SELF}),
    Actor.HOST: frozenset({Actor.HOST}),
    Actor.SELF_OR_HOST: frozenset({Actor.SELF_OR_HOST, Actor.SELF, Actor.HOST}),
    Actor.CALLER: frozenset({Actor.CALLER}),
    Actor.CALLEE: frozenset({Actor.CALLEE}),
    Actor.PARTY: frozenset({Actor.PARTY, Actor.CALLER, Actor.CALLEE}),
    Actor.SYSTEM: frozenset({Actor.SYSTEM}),
}

ACTOR_SETS: tuple[frozenset[Actor], ...] = tuple(
    frozenset(c) for n in range(len(Actor) + 1) for c in itertools.combinations(Actor, n)
)

TABLE_IDS = [t.name for t in ALL_TABLES]
CASES = [(t, s, trig) for t in ALL_TABLES for s in t.states for trig in t.triggers]


class _Model:
    """A bare model: ``transitions`` gives it ``state`` and the trigger methods."""

    state: Any


def _states(table: Table[Any]) -> list[enum.Enum]:
    return [*table.states.__members__.values()]


def _rows(table: Table[Any], trigger: str, state: enum.Enum) -> list[Rule[Any]]:
    return [r for r in table.rules if r.trigger == trigger and state in r.source]


def _permitted(rule: Rule[Any], held: frozenset[Actor]) -> bool:
    return rule.actor is Actor.ANY or bool(held & SATISFIED_BY[rule.actor])


def _attached(machine: Machine, state: enum.Enum) -> _Model:
    model = _Model()
    machine.add_model(model, initial=state)
    return model


@pytest.fixture(scope="module")
def machines() -> dict[str, Machine]:
    return {t.name: t.new_machine() for t in ALL_TABLES}


def _conditions(table: Table[Any]) -> list[frozenset[str]]:
    """Every subset of the conditions the table's rows name (``when``)."""
    names = sorted({r.when for r in table.rules if r.when is not None})
    return [frozenset(c) for n in range(len(names) + 1)
            for c in itertools.combinations(names, n)]


def _expected(table: Table[Any], trigger: str, state: enum.Enum, held: frozenset[Actor],
              holding: frozenset[str]) -> Rule[Any] | int:
    """The row a fire must take, or the status code it must refuse with (plain scan)."""
    rows = _rows(table, trigger, state)
    if not rows:
        return 409
    permitted = [r for r in rows if _permitted(r, held)]
    if not permitted:
        return 403
    ready = [r for r in permitted if r.when is None or r.when in holding]
    return ready[0] if ready else 409


@pytest.mark.parametrize(
    ("table", "state", "trigger"), CASES,
    ids=[f"{t.name}-{s.name}-{trig}" for t, s, trig in CASES],
)
def test_fire_moves_to_the_row_or_refuses_precisely(
    machines: dict[str, Machine], table: Table[Any], state: enum.Enum, trigger: str
) -> None:
    machine = machines[table.name]
    codes = {409: ErrorCode.ILLEGAL_TRANSITION, 403: ErrorCode.FORBIDDEN}
    for held, holding in itertools.product(ACTOR_SETS, _conditions(table)):
        expected = _expected(table, trigger, state, held, holding)
        model = _attached(machine, state)
        try:
            if isinstance(expected, int):
                with pytest.raises(UTDStreamException) as info:
                    table.fire(model, trigger, actors=held, conditions=holding)
                assert (info.value.status_code, info.value.code) == (expected, codes[expected])
                assert model.state is state
                with pytest.raises(UTDStreamException):
                    table.target(state, trigger, actors=held, conditions=holding)
            else:
                assert table.fire(model, trigger, actors=held, conditions=holding) is expected
                after = state if expected.dest is None else expected.dest
                assert model.state is after
                assert table.target(state, trigger, actors=held, conditions=holding) is after
        finally:
            machine.remove_model(model)


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_unknown_trigger_is_invalid_and_changes_nothing(
    machines: dict[str, Machine], table: Table[Any]
) -> None:
    for state in table.states:
        model = _attached(machines[table.name], state)
        for trigger in ("to_" + state.name, "no_such_trigger", "trigger"):
            with pytest.raises(UTDStreamException) as info:
                table.fire(model, trigger, actors=set(Actor))
            assert info.value.status_code == 422
            assert model.state is state
        machines[table.name].remove_model(model)


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_no_auto_transitions_on_models(machines: dict[str, Machine], table: Table[Any]) -> None:
    """Models get the table's triggers and nothing that could set a state by hand."""
    machine = machines[table.name]
    assert machine.auto_transitions is False
    model = _attached(machine, table.initial)
    try:
        for state in table.states:
            assert not hasattr(model, f"to_{state.name}")
            assert not hasattr(model, f"to_{state.value}")
        bound = {
            name for name in dir(model)
            if not name.startswith(("_", "is_", "may_")) and callable(getattr(model, name))
        }
        assert bound == set(table.triggers) | {"trigger"}
        assert set(machine.events) == set(table.triggers)
    finally:
        machine.remove_model(model)


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_index_equals_transitions_own_view(machines: dict[str, Machine], table: Table[Any]) -> None:
    machine = machines[table.name]
    for state in table.states:
        assert set(machine.get_triggers(state)) == set(table.allowed_triggers(state)), state
        for trigger in table.triggers:
            rows = _rows(table, trigger, state)
            legs = machine.events[trigger].transitions.get(state.name, [])
            assert [leg.dest for leg in legs] == [None if r.dest is None else r.dest.name
                                                  for r in rows]


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_raw_machine_refuses_what_the_table_refuses(
    machines: dict[str, Machine], table: Table[Any]
) -> None:
    """``ignore_invalid_triggers`` is off: the machine itself raises where no row exists."""
    machine = machines[table.name]
    for state in table.states:
        for trigger in set(table.triggers) - set(table.allowed_triggers(state)):
            model = _attached(machine, state)
            with pytest.raises(MachineError):
                getattr(model, trigger)()
            assert model.state is state
            machine.remove_model(model)


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_rows_are_well_formed(table: Table[Any]) -> None:
    assert isinstance(table.initial, table.states)
    for rule in table.rules:
        assert rule.source, rule
        assert all(isinstance(s, table.states) for s in rule.source), rule
        assert rule.dest is None or isinstance(rule.dest, table.states), rule
        if rule.dest is None:
            assert rule.note, f"no-op row {rule} must say why it exists"


def test_tables_have_distinct_names() -> None:
    assert len({t.name for t in ALL_TABLES}) == len(ALL_TABLES)


def test_terminal_call_states_only_allow_documented_noops() -> None:
    """A party's duplicate ``end``, the engine's late ``miss`` or ``drop``: nothing else."""
    machine = CALL_TABLE.new_machine()
    for state in TERMINAL:
        assert CALL_TABLE.allowed_triggers(state) == ("end", "miss", "drop")
        for trigger, actor in (("end", Actor.PARTY), ("miss", Actor.SYSTEM),
                               ("drop", Actor.SYSTEM)):
            (rule,) = CALL_TABLE.rules_for(trigger, state)
            assert rule.dest is None and rule.actor is actor and "no-op" in rule.note
        assert machine.get_triggers(state) == ["end", "miss", "drop"]


def test_end_of_an_unanswered_call_is_two_rows_told_apart_by_who_hangs_up() -> None:
    for state in (CallState.INITIATING, CallState.RINGING):
        assert CALL_TABLE.target(state, "end", actors={Actor.CALLER}) is CallState.ENDED
        assert CALL_TABLE.target(state, "end", actors={Actor.CALLEE}) is CallState.REJECTED
        with pytest.raises(UTDStreamException) as info:
            CALL_TABLE.target(state, "end", actors={Actor.SYSTEM})
        assert info.value.status_code == 403


def test_no_rule_leaves_the_host_stage_state_and_only_the_engine_admits_a_host() -> None:
    assert STAGE_TABLE.allowed_triggers(StageState.HOST) == ("go_live",)
    (live,) = STAGE_TABLE.rules_for("go_live", StageState.HOST)
    assert live.dest is None and live.actor is Actor.SELF  # broadcasting changes no state
    for state in set(StageState) - {StageState.HOST}:
        with pytest.raises(UTDStreamException) as info:
            STAGE_TABLE.check(state, "go_live", actors=set(Actor))
        assert info.value.status_code == 409
    (admit,) = [r for r in STAGE_TABLE.rules if r.dest is StageState.HOST]
    assert admit.trigger == "admit_host" and admit.actor is Actor.SYSTEM
    assert set(admit.source) == set(StageState) - {StageState.HOST}


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_every_state_is_reachable_from_the_initial_state_through_the_rows(
    table: Table[Any],
) -> None:
    """A state no row reaches is set by hand somewhere: an island on the diagram."""
    reached, frontier = {table.initial}, [table.initial]
    while frontier:
        state = frontier.pop()
        for rule in table.rules:
            if state in rule.source and rule.dest is not None and rule.dest not in reached:
                reached.add(rule.dest)
                frontier.append(rule.dest)
    assert reached == set(table.states), f"unreachable: {set(table.states) - reached}"


def test_duplicate_rows_are_refused_when_a_table_is_built() -> None:
    rows = (Rule("go", (CallState.RINGING,), CallState.ACTIVE, Actor.ANY),
            Rule("go", (CallState.INITIATING, CallState.RINGING), CallState.ENDED, Actor.ANY))
    with pytest.raises(ValueError, match="two rules"):
        Table("dup", CallState, CallState.INITIATING, rows)


def test_rows_differing_by_actor_share_a_state_and_each_fires_its_own_leg() -> None:
    """The machine takes the leg of the row the table picked, not the first leg it has."""
    rows = (Rule("go", (CallState.RINGING,), CallState.ACTIVE, Actor.CALLER),
            Rule("go", (CallState.RINGING,), CallState.ENDED, Actor.CALLEE))
    table = Table("pair", CallState, CallState.INITIATING, rows)
    machine = table.new_machine()
    for held, dest in (({Actor.CALLER}, CallState.ACTIVE), ({Actor.CALLEE}, CallState.ENDED)):
        model = _attached(machine, CallState.RINGING)
        assert table.fire(model, "go", actors=held).dest is dest
        assert model.state is dest
    with pytest.raises(UTDStreamException) as info:
        table.check(CallState.RINGING, "go", actors={Actor.SYSTEM})
    assert info.value.status_code == 403 and "caller or callee" in str(info.value)


def test_a_row_whose_condition_does_not_hold_is_illegal_not_forbidden() -> None:
    rows = (Rule("go", (CallState.RINGING,), CallState.ACTIVE, Actor.CALLER, when="sunny"),)
    table = Table("weather", CallState, CallState.INITIATING, rows)
    assert table.check(CallState.RINGING, "go", actors={Actor.CALLER},
                       conditions={"sunny"}) is rows[0]
    with pytest.raises(UTDStreamException) as info:
        table.check(CallState.RINGING, "go", actors={Actor.CALLER}, conditions={"rainy"})
    assert info.value.status_code == 409 and "unless sunny" in str(info.value)
    with pytest.raises(UTDStreamException) as info:
        table.check(CallState.RINGING, "go", actors={Actor.CALLEE}, conditions={"sunny"})
    assert info.value.status_code == 403


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
def test_path_finds_a_row_between_two_states_or_none(table: Table[Any]) -> None:
    for src, dst in itertools.product(_states(table), repeat=2):
        rule = table.path(src, dst)
        legal = [r for r in table.rules if src in r.source and r.dest == dst]
        assert (rule is None) == (not legal)
        if rule is not None:
            assert rule is legal[0]


@pytest.mark.parametrize("table", ALL_TABLES, ids=TABLE_IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_walks_follow_the_rows(table: Table[Any], data: st.DataObject) -> None:
    """Long sequences of fires from one model agree with a scan of the rows at every step."""
    machine = table.new_machine()
    start = data.draw(st.sampled_from(_states(table)), label="start")
    model = _attached(machine, start)
    expected = start
    steps = data.draw(st.lists(st.tuples(st.sampled_from(table.triggers),
                                         st.sampled_from(ACTOR_SETS)), max_size=40))
    holding = data.draw(st.sampled_from(_conditions(table)), label="conditions")
    for trigger, held in steps:
        outcome = _expected(table, trigger, expected, held, holding)
        try:
            table.fire(model, trigger, actors=held, conditions=holding)
        except UTDStreamException as exc:
            assert exc.status_code == outcome
        else:
            assert isinstance(outcome, Rule)
            expected = expected if outcome.dest is None else outcome.dest
        assert model.state is expected


def test_the_seat_mode_rule_is_in_the_speaker_rows() -> None:
    """Free mode seats listeners, request mode makes them ask, the host sits in any mode."""
    free, request = {mode_condition(UTDSeatMode.FREE)}, {mode_condition(UTDSeatMode.REQUEST)}
    listener, me, host = SpeakerState.LISTENER, {Actor.SELF}, {Actor.SELF, Actor.HOST}
    take = SPEAKER_TABLE.target
    assert take(listener, "take", actors=me, conditions=free) is SpeakerState.SPEAKER
    assert take(listener, "take", actors=host, conditions=request) is SpeakerState.SPEAKER
    assert take(listener, "request", actors=me, conditions=request) is SpeakerState.REQUESTING
    for trigger, conditions in (("take", request), ("request", free)):
        with pytest.raises(UTDStreamException) as info:
            take(listener, trigger, actors=me, conditions=conditions)
        assert info.value.status_code == 409 and "unless" in str(info.value)
    invited = SpeakerState.INVITED  # an invitation is accepted in either mode
    assert take(invited, "take", actors=me, conditions=request) is SpeakerState.SPEAKER
