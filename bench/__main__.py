"""``python -m bench``: run every benchmark module and print its rows as a plain table.

A benchmark module has a ``TITLE`` and a ``run()`` returning rows (dicts with the same
keys in the same order), or several tables of rows by heading; add one by listing it in
:data:`MODULES`. Optional arguments name the modules to run (``python -m bench machines``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from bench import engine, machines, scale, sessions, wan

__all__ = ["MODULES", "format_table", "main"]

MODULES: tuple[ModuleType, ...] = (machines, engine, sessions, wan, scale)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as aligned columns: text left, numbers right, ``-`` where not measured."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    numeric = [all(isinstance(row.get(k), (int, float)) or row.get(k) is None for row in rows)
               for k in keys]
    widths = [max(len(k), *(len(line[i]) for line in cells)) for i, k in enumerate(keys)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(keys), rule, *(line(c) for c in cells)])


def main(argv: Sequence[str] | None = None) -> int:
    wanted = list(sys.argv[1:] if argv is None else argv)
    names = {m.__name__.rsplit(".", 1)[-1]: m for m in MODULES}
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {sorted(names)}", file=sys.stderr)
        return 2
    for module in (names[w] for w in wanted) if wanted else MODULES:
        start = time.perf_counter()
        result = module.run()
        print(f"== {module.TITLE} ({time.perf_counter() - start:.1f} s)")
        tables = result if isinstance(result, dict) else {"": result}
        for heading, rows in tables.items():
            if heading:
                print(f"-- {heading}")
            print(format_table(rows))
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
