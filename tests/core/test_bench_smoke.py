"""The benchmark still runs against the current core (its numbers are not checked)."""

from __future__ import annotations

import pytest

from bench import machines
from bench.__main__ import MODULES, format_table
from stream_core.machines import ALL_TABLES


def test_machines_benchmark_runs_and_reports_every_section() -> None:
    rows = machines.run(n_values=(1, 3), trials=1, ops=8)
    assert rows and all(tuple(row) == machines.COLUMNS for row in rows)
    create = [r for r in rows if r["section"] == "create"]
    assert len(create) == 2 * 2 * len(ALL_TABLES)
    assert {r["n"] for r in create} == {1, 3}
    assert all(r["us_per_op"] > 0 and r["kib_per_op"] > 0 for r in create)
    assert {r["section"] for r in rows} == {"create", "fire", "snapshot"}
    assert all(r["us_per_op"] is None or r["us_per_op"] > 0 for r in rows)
    table = format_table(rows)
    assert table.splitlines()[0].split() == list(machines.COLUMNS)
    assert len(table.splitlines()) == len(rows) + 2


def test_every_benchmark_module_has_a_title_and_run() -> None:
    assert all(isinstance(m.TITLE, str) and callable(m.run) for m in MODULES)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        machines.run(n_values=(0,), trials=1, ops=8)


def test_full_grid_fixture_is_a_legal_64_seat_room() -> None:
    grid = machines.full_grid().snapshot()
    assert grid.seat_count == 64 and len(grid.speakers) == 48
    assert len(grid.requests) == 8 and len(grid.invites) == 4


async def test_pairs_interleave_alternate_and_drop_the_warmup() -> None:
    from bench.paired import run_pairs

    order: list[str] = []
    clock = iter(range(1, 100))

    async def sdk() -> float:
        order.append("sdk")
        return 2.0 * next(clock)

    async def raw() -> float:
        order.append("raw")
        return float(next(clock))

    paired = await run_pairs("x", sdk, raw, pairs=3, warmup=1, settle=0)
    assert order == ["sdk", "raw", "raw", "sdk", "sdk", "raw", "raw", "sdk"]
    assert paired.sdk == [8.0, 10.0, 16.0] and paired.raw == [3.0, 6.0, 7.0]
    assert paired.ratios == [8 / 3, 10 / 6, 16 / 7]  # per pair, not of the medians
    row = paired.row()
    assert row["pairs"] == 3 and row["ratio"] == round(16 / 7, 2)
    assert row["SDK IQR"] == "9-13" and row["raw IQR"] == "4-6"


def test_quartiles_stay_inside_the_observed_range() -> None:
    from bench.paired import quartiles, spread

    assert quartiles([5.0]) == (5.0, 5.0, 5.0)
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0]) == "2.00-4.00"


async def test_no_pairs_is_refused() -> None:
    from bench.paired import run_pairs

    async def never() -> float:
        raise AssertionError("not run")

    with pytest.raises(ValueError):
        await run_pairs("x", never, never, pairs=0)
