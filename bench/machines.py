"""What the state-machine core costs: machine layout, a fired trigger, a grid snapshot.

Why these numbers: the core keeps one shared ``transitions.Machine`` per table and room,
and adds a model per participant or call, rather than a ``Machine`` per object. Section
``create`` measures that choice on the real tables -- (a) a new ``Machine`` per model vs
(b) one shared ``Machine`` with ``add_model`` -- as creation time and traced memory per
model for N models (the shared machine's own cost is included, amortised over N).
Section ``fire`` measures a trigger fired through ``Table.fire`` (raw and inside the
rooms, which check every move first), and ``snapshot`` a full 64-seat ``SeatRoom``
snapshot and restore. Every figure is the median of ``trials`` repetitions.

Timings use ``time.perf_counter`` with the garbage collector paused, as ``timeit`` does;
memory uses ``tracemalloc`` in a separate pass, since tracing slows allocation down.
This is a benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from transitions import Machine

from stream_core.machines import ALL_TABLES, SPEAKER_TABLE, SpeakerState
from stream_core.machines.speaker import mode_condition
from stream_core.machines.table import Actor, Table
from stream_core.models import MAX_SEATS, UTDSeatMode, UTDStreamType
from stream_core.rooms import CallLedger, LiveStage, SeatRoom

__all__ = ["TITLE", "COLUMNS", "run"]

TITLE = "state machines: per-object vs shared Machine, fired triggers, seat-grid snapshots"

#: Keys of every row, in print order. ``n``: models created (create) or operations timed.
COLUMNS = ("section", "case", "table", "n", "us_per_op", "kib_per_op", "trials")

Row = dict[str, Any]


class _Model:
    """A bare model; ``transitions`` binds ``state`` and the trigger methods onto it."""


@contextmanager
def _no_gc() -> Iterator[None]:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _timed(build: Callable[[], object]) -> float:
    """Seconds ``build()`` takes (its result stays alive until the clock has stopped)."""
    with _no_gc():
        start = time.perf_counter()
        keep = build()
        elapsed = time.perf_counter() - start
    del keep
    return elapsed


def _traced(build: Callable[[], object]) -> int:
    """Bytes still allocated by ``build()`` while its result is alive."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = build()
        used = tracemalloc.get_traced_memory()[0] - base
        del keep
    finally:
        if started:
            tracemalloc.stop()
    return used


def _per_object(table: Table[Any], n: int) -> Callable[[], object]:
    """(a) A ``Machine`` of its own for each of ``n`` models."""
    def build() -> object:
        machines: list[Machine] = []
        for _ in range(n):
            machine = table.new_machine()
            machine.add_model(_Model())
            machines.append(machine)
        return machines
    return build


def _shared(table: Table[Any], n: int) -> Callable[[], object]:
    """(b) One ``Machine`` for the table, ``n`` models added to it (as the rooms do)."""
    def build() -> object:
        machine = table.new_machine()
        models = [_Model() for _ in range(n)]
        for model in models:
            machine.add_model(model)
        return machine, models
    return build


def _create_rows(n_values: Sequence[int], trials: int) -> list[Row]:
    rows: list[Row] = []
    layouts = (("per-object Machine", _per_object), ("shared Machine + add_model", _shared))
    for table in ALL_TABLES:
        for n in n_values:
            for case, layout in layouts:
                build = layout(table, n)
                seconds = [_timed(build) for _ in range(trials)]
                used = [_traced(build) for _ in range(max(1, min(trials, 3)))]
                rows.append(_row("create", case, table.name, n,
                                 statistics.median(seconds) / n * 1e6,
                                 statistics.median(used) / n / 1024, trials))
    return rows


# -- fired triggers -------------------------------------------------------------------
def _raw_fire(ops: int) -> Callable[[], None]:
    """``Table.fire`` alone: a speaker taking and leaving a seat, ``ops`` triggers."""
    machine = SPEAKER_TABLE.new_machine()
    model = _Model()
    machine.add_model(model, initial=SpeakerState.LISTENER)
    me, free = {Actor.SELF}, {mode_condition(UTDSeatMode.FREE)}

    def go() -> None:
        for _ in range(ops // 2):
            SPEAKER_TABLE.fire(model, "take", actors=me, conditions=free)
            SPEAKER_TABLE.fire(model, "leave", actors=me)
    return go


def _bare_trigger(ops: int) -> Callable[[], None]:
    """The same moves through ``transitions`` alone (``model.take()``): the baseline."""
    machine = SPEAKER_TABLE.new_machine()
    model: Any = _Model()
    machine.add_model(model, initial=SpeakerState.LISTENER)

    def go() -> None:
        for _ in range(ops // 2):
            model.take()
            model.leave()
    return go


def _seat_cycles(ops: int) -> Callable[[], None]:
    """``SeatRoom.take_seat`` + ``leave_seat``: each op fires a seat and a speaker trigger."""
    room = SeatRoom("bench-seats", mode=UTDSeatMode.FREE)
    room.join("host", as_host=True)
    room.setup_seats("host", seat_count=8)
    people = [f"p{i}" for i in range(8)]
    for who in people:
        room.join(who)

    def go() -> None:
        for i in range(ops // 2):
            who = people[i % 8]
            room.take_seat(who, i % 8)
            room.leave_seat(who)
    return go


def _stage_cycles(ops: int) -> Callable[[], None]:
    """``LiveStage.invite_to_stage`` + ``remove_from_stage``: one stage trigger per op."""
    stage = LiveStage("bench-stage")
    stage.join("host", as_host=True)
    people = [f"v{i}" for i in range(16)]
    for who in people:
        stage.join(who)

    def go() -> None:
        for i in range(ops // 2):
            who = people[i % 16]
            stage.invite_to_stage("host", who)
            stage.remove_from_stage("host", who)
    return go


def _call_cycles(ops: int) -> Callable[[], None]:
    """``CallLedger`` create, ring, accept, end (then discard): four ops per call."""
    ledger = CallLedger()
    counter = iter(range(1 << 62))

    def go() -> None:
        for _ in range(ops // 4):
            call_id = f"c{next(counter)}"
            ledger.create(call_id=call_id, caller="ann", callee="bob",
                          type=UTDStreamType.AUDIO_CALL, now=0.0)
            ledger.apply(call_id, "ring", actor="bob")
            ledger.apply(call_id, "accept", actor="bob")
            ledger.apply(call_id, "end", actor="ann")
            ledger.discard(call_id)
    return go


def _fire_rows(ops: int, trials: int) -> list[Row]:
    cases: tuple[tuple[str, str, Callable[[int], Callable[[], None]], int], ...] = (
        ("bare transitions trigger", "speaker", _bare_trigger, ops),
        ("Table.fire (take/leave)", "speaker", _raw_fire, ops),
        ("SeatRoom take/leave_seat", "seat+speaker", _seat_cycles, ops),
        ("LiveStage promote/demote", "stage", _stage_cycles, ops),
        ("CallLedger create/ring/accept/end", "call", _call_cycles, max(4, ops // 4)),
    )
    rows: list[Row] = []
    for case, table, factory, count in cases:
        seconds = [_timed(factory(count)) for _ in range(trials)]
        done = count - count % (4 if table == "call" else 2)
        rows.append(_row("fire", case, table, done,
                         statistics.median(seconds) / done * 1e6, None, trials))
    return rows


# -- snapshots ------------------------------------------------------------------------
def full_grid() -> SeatRoom:
    """A 64-seat request-mode room: 48 seated (4 muted), 4 locked, requests and invites."""
    room = SeatRoom("bench-grid", mode=UTDSeatMode.REQUEST)
    room.join("host", as_host=True)
    room.setup_seats("host", seat_count=MAX_SEATS)
    for i in range(60):
        room.join(f"p{i}")
    room.take_seat("host", 0)
    for i in range(1, 48):
        room.invite_to_speak("host", f"p{i}", i)
        room.take_seat(f"p{i}")
    for index in (1, 2, 3, 4):
        room.mute_seat("host", index)
    for index in (60, 61, 62, 63):
        room.lock_seat("host", index)
    for i in range(48, 56):
        room.request_to_speak(f"p{i}")
    for i in range(56, 60):
        room.invite_to_speak("host", f"p{i}")
    return room


def _snapshot_rows(ops: int, trials: int) -> list[Row]:
    room = full_grid()
    grid = room.snapshot()
    count = max(1, ops // 200)  # a restore builds ~120 models: milliseconds each

    def snapshots() -> None:
        for _ in range(count):
            room.snapshot()

    def restores() -> None:
        for _ in range(count):
            SeatRoom.restore(grid)

    def round_trips() -> None:
        for _ in range(count):
            SeatRoom.restore(room.snapshot()).snapshot()

    rows: list[Row] = []
    for case, go in (("snapshot()", snapshots), ("restore(grid)", restores),
                     ("restore(snapshot()).snapshot()", round_trips)):
        seconds = [_timed(go) for _ in range(trials)]
        rows.append(_row("snapshot", f"64 seats: {case}", "seat+speaker", count,
                         statistics.median(seconds) / count * 1e6, None, trials))
    used = statistics.median(_traced(lambda: SeatRoom.restore(grid)) for _ in range(3))
    rows.append(_row("snapshot", "64 seats: restored room (memory)", "seat+speaker", 1,
                     None, used / 1024, 3))
    return rows


def _row(section: str, case: str, table: str, n: int, us: float | None, kib: float | None,
         trials: int) -> Row:
    return dict(zip(COLUMNS, (section, case, table, n, us, kib, trials), strict=True))


def run(n_values: Sequence[int] = (1, 100, 1000), *, trials: int = 5,
        ops: int = 10_000) -> list[Row]:
    """Every measurement as rows keyed by :data:`COLUMNS`; medians of ``trials`` runs.

    ``n_values`` are the model counts of the create section; ``ops`` scales the fire and
    snapshot sections. Small values make a quick smoke run.
    """
    if trials < 1 or ops < 4 or not n_values or min(n_values) < 1:
        raise ValueError("need trials >= 1, ops >= 4 and model counts >= 1")
    return (_create_rows(n_values, trials) + _fire_rows(ops, trials)
            + _snapshot_rows(ops, trials))
