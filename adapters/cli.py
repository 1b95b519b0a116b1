"""``utd-stream``: the command line (``demo``; ``engine`` and ``join`` come with their issues)."""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="utd-stream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the narrated scenario through all four products")
    demo.add_argument("--fake", action="store_true", help="use the in-memory engine and SFU")
    sub.add_parser("engine", help="serve the reference engine (see `utd-stream engine -h`)",
                   add_help=False)
    from adapters.join import add_arguments as join_arguments
    join = sub.add_parser("join", help="run one headless participant (bots, load tests)")
    join_arguments(join)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["engine"]:
        from engine.__main__ import serve
        return serve(argv[1:])
    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # livekit's native layer logs every routine teardown (closed peer connections, dropped
    # FFI handles, data channels closed by a room deletion) as warnings and errors; the
    # adapter turns real failures into UTDStreamException, so the CLI silences the rest
    logging.getLogger("livekit").setLevel(logging.CRITICAL)
    if args.command == "join":
        from adapters.join import run
        return asyncio.run(run(args))
    if args.command == "demo":
        from adapters.demo import run_fake_demo, run_real_demo
        return asyncio.run((run_fake_demo if args.fake else run_real_demo)(sys.stdout))
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
