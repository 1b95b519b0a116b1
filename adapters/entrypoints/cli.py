"""``utd-stream``: one command line for every runtime the project ships.

Sub-commands are ``utd_stream.commands`` entry points (``demo`` and ``join`` here, ``engine``
in the reference engine's package), each a ``main(argv) -> exit code``. The dispatcher
looks them up by name, so the client side never imports the server to offer its command,
and a package installed beside this one can add its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points

__all__ = ["main", "commands"]

Command = Callable[[list[str]], int]


def commands() -> dict[str, str]:
    """Every installed sub-command and its one-line help (the entry point's module doc)."""
    return {ep.name: ep.value for ep in entry_points(group="utd_stream.commands")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    found = {ep.name: ep for ep in entry_points(group="utd_stream.commands")}
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in found:
        names = ", ".join(sorted(found)) or "none installed"
        stream = sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr
        print("usage: utd-stream COMMAND [options]  (COMMAND -h for its options)\n"
              f"commands: {names}", file=stream)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"utd-stream: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    command: Command = found[argv[0]].load()
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
