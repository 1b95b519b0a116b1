"""``utd-stream engine`` / ``python -m stream_engine``: serve the reference engine."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from stream_engine.config import add_arguments, from_args
from stream_engine.http import create_app

__all__ = ["main", "serve"]


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


def main(argv: list[str] | None = None) -> int:
    """The ``utd_stream.commands`` entry point named ``engine``."""
    return serve(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
