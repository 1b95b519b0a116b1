"""State diagrams generated from the transition tables, never drawn by hand.

Rules of this file:
* A diagram is rendered from the very rows the core fires (:data:`ALL_TABLES`), through
  ``transitions``' own ``GraphMachine`` with ``graph_engine="mermaid"``, so a diagram cannot
  disagree with the rules it shows. Each edge is labelled ``trigger [actor]``, followed by
  ``(condition)`` for a row that applies only when a condition holds; a documented no-op
  row (``dest=None``) shows as a self-loop marked ``[internal]``.
* Rendering is pure and deterministic: same tables, byte-identical text. That is what lets
  a test compare the committed ``diagrams/*.mmd`` with a fresh render.
* Mermaid needs no binary. An SVG is a bonus written only when the ``graphviz`` package and
  the ``dot`` binary are both present; neither is imported until then.

* ``docs/diagrams.md`` embeds the same sources as ```` ```mermaid ```` blocks, so the
  diagrams are drawn where people read (GitHub renders them); it is generated and checked
  for staleness like the ``.mmd`` files.

Run ``make diagrams`` (``python -m stream_core.diagrams diagrams --markdown
docs/diagrams.md``) after changing a table.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from transitions.extensions.diagrams import GraphMachine

from stream_core.machines import ALL_TABLES
from stream_core.machines.table import Table

__all__ = ["render_mermaid", "render_markdown", "render_svg", "svg_available",
           "write_diagrams", "main"]

#: Where ``make diagrams`` writes, relative to the repository root.
DEFAULT_DIR = "diagrams"
DEFAULT_MARKDOWN = "docs/diagrams.md"

_Engine = Literal["mermaid", "graphviz"]


def _graph_machine(table: Table[Any], graph_engine: _Engine) -> GraphMachine:
    """A model-less ``GraphMachine`` over ``table``'s rows, each labelled with its actor.

    It mirrors :meth:`Table.new_machine` (no auto transitions, invalid triggers raise) and
    adds only the edge labels, which ``Table.transitions_spec`` does not carry.
    """
    spec = [
        dict(row, label=rule.label)
        for row, rule in zip(table.transitions_spec(), table.rules, strict=True)
    ]
    return GraphMachine(
        model=None,
        states=table.states,
        initial=table.initial,
        transitions=spec,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        name=table.name,
        # Mermaid front matter is YAML; transitions writes the title verbatim between the
        # ``---`` fences, so the key is part of the title to make it a real mermaid title.
        title=f"title: {table.name}",
        graph_engine=graph_engine,
    )


def render_mermaid(table: Table[Any]) -> str:
    """Mermaid ``stateDiagram-v2`` source of ``table``, ending with one newline.

    Nodes are the state names (``RINGING``), one per member of ``table.states``. Lines carry
    no trailing blanks so the committed files stay clean under whitespace linters.
    """
    machine = _graph_machine(table, "mermaid")
    # A fresh graph object, not a model's graph: a model's graph marks its current state
    # "active", which is noise in a reference diagram.
    source = machine.graph_cls(machine).get_graph().draw(None)
    assert isinstance(source, str)
    return "\n".join(line.rstrip() for line in source.splitlines()) + "\n"


def render_markdown(tables: Sequence[Table[Any]] = ALL_TABLES) -> str:
    """A Markdown page with each table's diagram as a ``mermaid`` block (ends with one
    newline). The text around the blocks is fixed; only the tables change it."""
    parts = ["# State diagrams", "",
             "Generated from the transition tables by `make diagrams`; do not edit (a test "
             "fails when this page is stale). Each edge is `trigger [actor]`, with "
             "`(condition)` where a row applies only then; `[internal]` marks a documented "
             "no-op. The same sources are in [`diagrams/`](../diagrams).", ""]
    for table in tables:
        parts += [f"## {table.name}", "", f"Source: [`diagrams/{table.name}.mmd`]"
                  f"(../diagrams/{table.name}.mmd)", "", "```mermaid",
                  render_mermaid(table).rstrip("\n"), "```", ""]
    return "\n".join(parts)


def svg_available() -> bool:
    """True when the optional ``graphviz`` package and the ``dot`` binary are installed."""
    return importlib.util.find_spec("graphviz") is not None and shutil.which("dot") is not None


def render_svg(table: Table[Any]) -> bytes:
    """SVG of ``table`` via graphviz ``dot``. Call only when :func:`svg_available`."""
    machine = _graph_machine(table, "graphviz")
    graph = machine.graph_cls(machine).get_graph(title=table.name)
    svg = graph.draw(None, format="svg", prog="dot")
    return svg if isinstance(svg, bytes) else str(svg).encode()


def write_diagrams(out_dir: Path, tables: Sequence[Table[Any]] = ALL_TABLES, *,
                   svg: bool | None = None) -> list[Path]:
    """Write ``<name>.mmd`` (and, if possible, ``<name>.svg``) per table; return the paths.

    ``svg=None`` means "if graphviz is available"; the SVG is optional, so its absence is
    not an error.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with_svg = svg_available() if svg is None else svg
    written: list[Path] = []
    for table in tables:
        mmd = out_dir / f"{table.name}.mmd"
        mmd.write_bytes(render_mermaid(table).encode("utf-8"))
        written.append(mmd)
        if with_svg:
            image = out_dir / f"{table.name}.svg"
            image.write_bytes(render_svg(table))
            written.append(image)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stream_core.diagrams [OUT_DIR] [--markdown PAGE]``: regenerate every
    table's diagram (and, with ``--markdown``, the page that embeds them all)."""
    args = list(sys.argv[1:] if argv is None else argv)
    page: str | None = None
    if "--markdown" in args:
        at = args.index("--markdown")
        page = args[at + 1] if at + 1 < len(args) else None
        del args[at:at + 2]
        if page is None:
            args = ["--help"]
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m stream_core.diagrams [OUT_DIR] [--markdown PAGE]",
              file=sys.stderr)
        return 2
    for path in write_diagrams(Path(args[0] if args else DEFAULT_DIR)):
        print(path)
    if page is not None:
        target = Path(page)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(render_markdown().encode("utf-8"))
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
