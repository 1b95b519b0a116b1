"""``utd-stream up``: a local stack to write an app against, in one command.

Starts the pinned ``livekit-server`` (its webhooks pointed at the engine) and the engine on
loopback, prints the app id, app key, engine URL and LiveKit URL with the lines to export
them, then keeps one status line up to date until Ctrl-C or SIGTERM, when both processes
are stopped. The app's credentials are generated once and kept in the state directory
(``up-credentials.json``, mode 0600) with the engine's database, so a restart keeps the
same app key and the same rooms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import TextIO

from stream_core.engine.settings import AppConfig
from stream_devstack.stack import LocalStack

__all__ = ["main", "dev_app", "exports"]

_REQUESTS = re.compile(r"^utd_engine_requests_total\{[^}]*\} ([0-9.e+]+)$", re.M)
_LONG_POLLS = re.compile(r"^utd_engine_long_polls_open ([0-9.e+]+)$", re.M)


def dev_app(state_dir: Path) -> AppConfig:
    """The stack's app: generated on first use, then read back from the state directory."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "up-credentials.json"
    if not path.exists():
        stored = {"app_id": "dev-" + secrets.token_hex(4), "app_key": secrets.token_hex(16)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
    stored = json.loads(path.read_text())
    return AppConfig(stored["app_id"], stored["app_key"])


def exports(stack: LocalStack) -> dict[str, str]:
    """What an app needs to reach the stack, by variable name (``utd-stream join`` reads
    the first three)."""
    return {"UTD_APP_ID": stack.app.app_id, "UTD_APP_KEY": stack.app.app_key,
            "UTD_BASE_URL": stack.base_url, "UTD_LIVEKIT_URL": stack.livekit.url}


class _Stop(Exception):
    pass


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _status(stack: LocalStack, started: float) -> str:
    try:
        with urllib.request.urlopen(f"{stack.base_url}/metrics", timeout=2) as answer:
            text = answer.read().decode()
        requests = sum(float(v) for v in _REQUESTS.findall(text))
        polls = sum(float(v) for v in _LONG_POLLS.findall(text))
        engine = f"engine up, {requests:.0f} requests, {polls:.0f} long-polls"
    except (urllib.error.URLError, OSError):
        engine = "engine NOT ANSWERING"
    livekit = "livekit up" if stack.livekit.running else "livekit DOWN"
    return f"[{time.strftime('%H:%M:%S')}] {engine} | {livekit} | up {time.monotonic() - started:.0f} s"


def run(args: argparse.Namespace, out: TextIO) -> int:
    state_dir = Path(args.state_dir)
    app = AppConfig(*args.app.split(":", 1)) if args.app else dev_app(state_dir)
    engine_args = [flag for origin in args.cors_origin for flag in ("--cors-origin", origin)]
    engine_env = {"UTD_ENGINE_OPERATORS": args.operator} if args.operator else {}
    stack = LocalStack(apps=[app], state_dir=state_dir, port=args.port,
                       token_rate="5/20", mutate_rate="20/60",
                       engine_args=engine_args, engine_env=engine_env)
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        print("starting livekit-server and the engine ...", file=out, flush=True)
        stack.start()
        lines = [f"export {name}={value}" for name, value in exports(stack).items()]
        print(f"\nutd-stream local stack is up (state in {state_dir})\n"
              f"  app id       {app.app_id}\n  app key      {app.app_key}\n"
              f"  engine       {stack.base_url}   (OpenAPI: {stack.base_url}/api/v1/openapi.json)\n"
              f"  livekit      {stack.livekit.url}\n"
              + (f"  console      {stack.base_url}/console\n" if args.operator else "")
              + "\n" + "\n".join(lines) + "\n\nCtrl-C stops both.\n", file=out, flush=True)
        started = time.monotonic()
        live = out.isatty()
        while True:
            line = _status(stack, started)
            if live:
                out.write("\r\033[K" + line)
            elif args.status_every and int(time.monotonic() - started) % args.status_every == 0:
                out.write(line + "\n")
            out.flush()
            time.sleep(1.0)
    except (KeyboardInterrupt, _Stop) as why:
        print(f"\nstopping ({why or 'Ctrl-C'}) ...", file=out, flush=True)
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
    print("stopped: livekit-server and the engine are down", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``utd_stream.commands`` entry point named ``up``."""
    parser = argparse.ArgumentParser(prog="utd-stream up", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=7800, help="the engine's port (7800)")
    parser.add_argument("--state-dir", default=".utd-stream",
                        help="credentials and database (.utd-stream)")
    parser.add_argument("--app", metavar="ID:KEY", help="use this app instead of a generated one")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="let a web page on ORIGIN call the engine (repeatable)")
    parser.add_argument("--operator", metavar="NAME:TOKEN",
                        help="an operator credential for the console at /console")
    parser.add_argument("--status-every", type=int, default=30, metavar="S",
                        help="without a terminal, print the status line every S seconds")
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
