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
