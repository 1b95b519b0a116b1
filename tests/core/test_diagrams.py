"""The committed diagrams are the tables' diagrams: fresh, complete and nothing else.

Diagrams are generated (``make diagrams``), so the only way they can lie is by going stale;
these tests catch that, and check that each diagram shows exactly its table's states and
rows.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stream_core import diagrams
from stream_core.diagrams import main, render_mermaid, write_diagrams
from stream_core.machines import ALL_TABLES
from stream_core.machines.table import Table

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "diagrams"

_NODE = re.compile(r'^\s*state "[^"]*" as (\w+)$')
_EDGE = re.compile(r"^\s*(\w+) --> (\w+): (.+)$")

TABLES = pytest.mark.parametrize("table", ALL_TABLES, ids=[t.name for t in ALL_TABLES])


def _nodes(source: str) -> set[str]:
    return {m.group(1) for line in source.splitlines() if (m := _NODE.match(line))}


def _edges(source: str) -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for line in source.splitlines():
        if m := _EDGE.match(line):
            edges[(m.group(1), m.group(2))] = m.group(3).split(" | ")
    return edges


@TABLES
def test_committed_diagram_is_fresh(table: Table[Any]) -> None:
    path = COMMITTED / f"{table.name}.mmd"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make diagrams`"
    assert path.read_text(encoding="utf-8") == render_mermaid(table), (
        f"{path.relative_to(ROOT)} is stale (the {table.name} table changed): "
        "run `make diagrams` and commit the result"
    )


def test_no_diagram_without_a_table() -> None:
    names = {p.stem for p in COMMITTED.glob("*.mmd")}
    assert names == {t.name for t in ALL_TABLES}, "run `make diagrams` and delete leftovers"


@TABLES
def test_nodes_are_the_tables_states(table: Table[Any]) -> None:
    assert _nodes(render_mermaid(table)) == {s.name for s in table.states}


@TABLES
def test_every_row_is_an_edge_labelled_with_trigger_and_actor(table: Table[Any]) -> None:
    edges = _edges(render_mermaid(table))
    expected: dict[tuple[str, str], list[str]] = {}
    for rule in table.rules:
        actor = rule.actor.value.replace("_", " ")
        when = f" ({rule.when})" if rule.when else ""
        label = f"{rule.trigger} [{actor}]{when}" + (" [internal]" if rule.dest is None else "")
        for src in rule.source:
            dest = src if rule.dest is None else rule.dest
            expected.setdefault((src.name, dest.name), []).append(label)
    assert {k: sorted(v) for k, v in edges.items()} == {k: sorted(v) for k, v in expected.items()}


@TABLES
def test_initial_state_is_marked(table: Table[Any]) -> None:
    assert f"[*] --> {table.initial.name}" in render_mermaid(table).splitlines()[-1]


@TABLES
def test_render_is_deterministic_across_processes(table: Table[Any]) -> None:
    """Byte-identical under another hash seed, so regenerating never churns the files."""
    code = ("import sys; from stream_core.diagrams import render_mermaid; "
            "from stream_core.machines import ALL_TABLES; "
            f"sys.stdout.write(render_mermaid(ALL_TABLES[{ALL_TABLES.index(table)}]))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, env=env,
                         cwd=ROOT).stdout.decode("utf-8")
    assert out == render_mermaid(table) == render_mermaid(table)


def test_main_writes_one_mmd_per_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    for table in ALL_TABLES:
        assert (tmp_path / f"{table.name}.mmd").read_bytes() == \
            (COMMITTED / f"{table.name}.mmd").read_bytes()
    assert {p.suffix for p in tmp_path.iterdir()} <= {".mmd", ".svg"}
    assert capsys.readouterr().out.count(".mmd") == len(ALL_TABLES)


def test_svg_is_skipped_without_graphviz(tmp_path: Path) -> None:
    written = write_diagrams(tmp_path, svg=False)
    assert [p.name for p in written] == [f"{t.name}.mmd" for t in ALL_TABLES]


def test_main_rejects_extra_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["a", "b"]) == 2
    assert "usage" in capsys.readouterr().err


def test_module_imports_only_stdlib_transitions_and_core() -> None:
    """graphviz is optional: it must never be needed just to import or render mermaid."""
    tree = ast.parse(Path(diagrams.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) <= {"transitions", "stream_core"}
    code = ("import sys, stream_core.diagrams as d; d.render_mermaid(d.ALL_TABLES[0]); "
            "assert 'graphviz' not in sys.modules and 'pygraphviz' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_docs_page_is_fresh_and_draws_every_table() -> None:
    page = ROOT / diagrams.DEFAULT_MARKDOWN
    assert page.exists(), f"{diagrams.DEFAULT_MARKDOWN} is missing: run `make diagrams`"
    text = page.read_text(encoding="utf-8")
    assert text == diagrams.render_markdown(), (
        f"{diagrams.DEFAULT_MARKDOWN} is stale: run `make diagrams` and commit the result")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert blocks == [render_mermaid(t) for t in ALL_TABLES]
    assert "(docs/diagrams.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_main_writes_the_docs_page_when_asked(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "page.md"
    assert main([str(tmp_path / "out"), "--markdown", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == diagrams.render_markdown()
    assert main(["--markdown"]) == 2
