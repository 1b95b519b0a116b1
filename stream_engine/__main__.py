"""``utd-stream engine`` / ``python -m stream_engine``: serve the reference engine.

``utd-stream engine migrate [--database-url URL | --state-dir DIR]`` only upgrades the
database to the current schema and exits (the engine also does it on start).
"""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web
from sqlalchemy import create_engine

from stream_engine.config import add_arguments, from_args
from stream_engine.http import create_app
from stream_engine.migrations import upgrade

__all__ = ["main", "serve", "migrate"]


def serve(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="utd-stream engine",
                                     description="the utd-stream reference engine")
    add_arguments(parser)
    args = parser.parse_args(argv)
    config = from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)  # one line per transition
    for note in config.ensure_defaults():
        print(note, flush=True)
    db = config.db_url.split("@")[-1] if "@" in config.db_url else config.db_url
    print(f"utd-stream engine on http://{config.host}:{config.port}  database={db}  "
          f"livekit={config.livekit_url}", flush=True)
    for app in config.apps:
        print(f"app {app.app_id}" + (" (identity verification on)" if app.server_secret else ""),
              flush=True)
    if config.cors_origins:
        print("CORS origins: " + ", ".join(config.cors_origins), flush=True)
    if "*" in config.cors_origins:
        print("WARNING: --cors-origin '*' lets any web page call this engine; use it for "
              "development only", flush=True)
    web.run_app(create_app(config), host=config.host, port=config.port, print=None,
                access_log=None)
    return 0


def migrate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="utd-stream engine migrate",
                                     description="upgrade the engine's database and exit")
    add_arguments(parser)
    config = from_args(parser.parse_args(argv))
    if config.database_url is None:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(config.db_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    print(f"database at revision {after}" + ("" if before == after else
                                              f" (was {before or 'empty'})"), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``utd_stream.commands`` entry point named ``engine``."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:
        return migrate(args[1:])
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
