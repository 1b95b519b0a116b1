"""A whole local stack: a real livekit-server and the engine as its own process.

Used by the end-to-end tests, ``make demo`` and the benchmarks. The engine runs as a real
``python -m stream_engine`` process (configured through its environment, so no secret appears on
a command line), with LiveKit's webhooks pointed at it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from stream_core.engine.settings import AppConfig
from stream_core.engine.webhooks import APPLIED_EVENTS
from stream_devstack.livekit_process import LiveKitServer

__all__ = ["LocalStack", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalStack:
    """livekit-server + engine on loopback. ``start()``/``stop()`` or ``with``."""

    def __init__(self, *, apps: list[AppConfig] | None = None, state_dir: Path | None = None,
                 database_url: str | None = None, ring_timeout: float = 30.0,
                 token_rate: str = "200/400", mutate_rate: str = "2000/4000",
                 read_rate: str = "5000/10000", port: int | None = None,
                 engine_args: Sequence[str] = (),
                 engine_env: Mapping[str, str] | None = None) -> None:
        """``port``: the engine's (default: a free one); ``engine_args`` / ``engine_env``:
        more flags and ``UTD_ENGINE_*`` variables for the engine (CORS origins, operators)."""
        self.apps = apps or [AppConfig("app-" + secrets.token_hex(3), secrets.token_hex(16))]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="utd-stack-")
            state_dir = Path(self._tmp.name)
        self.state_dir = state_dir
        self.database_url = database_url
        self.ring_timeout = ring_timeout
        self._rates = (token_rate, mutate_rate, read_rate)
        #: The engine's bearer signing secret, kept across ``restart_engine`` so bearers
        #: issued before a crash stay valid (and tests can forge expired ones).
        self.signing_secret = secrets.token_urlsafe(32)
        self.port = port or free_port()
        self._engine_args = list(engine_args)
        self._engine_env = dict(engine_env or {})
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.livekit = LiveKitServer(webhook_urls=[f"{self.base_url}/api/v1/livekit/webhook"],
                                     webhook_events=APPLIED_EVENTS)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def app(self) -> AppConfig:
        return self.apps[0]

    def start(self, timeout: float = 60.0) -> LocalStack:
        deadline = time.monotonic() + timeout
        self.livekit.start(timeout=timeout)
        try:
            self._spawn_engine(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def restart_engine(self, timeout: float = 30.0) -> None:
        """Start the engine again (after ``kill_engine``, or killing it now) on the same
        port, state directory, database and secrets; livekit-server keeps running."""
        if self._proc is not None and self._proc.poll() is None:
            self.kill_engine()
        self._proc = None
        self._spawn_engine(time.monotonic() + timeout)

    @property
    def log_path(self) -> Path:
        """The engine's combined stdout/stderr (appended to across restarts)."""
        return self.state_dir / "engine.log"

    @property
    def engine_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def engine_invocation(self, port: int | None = None) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run this stack's engine (on ``port``,
        default the stack's own): a second engine on the same database and secrets is
        how tests check that engines sharing a database still serialize."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("UTD_ENGINE_")}
        env.update({
            "UTD_ENGINE_LIVEKIT_API_SECRET": self.livekit.api_secret,
            "UTD_ENGINE_SIGNING_SECRET": self.signing_secret,
            "UTD_ENGINE_APPS": ",".join(
                f"{a.app_id}:{a.app_key}" + (f":{a.server_secret}" if a.server_secret else "")
                for a in self.apps),
        })
        if self.database_url:
            env["UTD_ENGINE_DATABASE_URL"] = self.database_url
        env.update(self._engine_env)
        args = [sys.executable, "-m", "stream_engine", "--port", str(port or self.port),
                "--state-dir", str(self.state_dir), "--livekit-url", self.livekit.url,
                "--livekit-api-key", self.livekit.api_key,
                "--ring-timeout", str(self.ring_timeout),
                "--token-rate", self._rates[0], "--mutate-rate", self._rates[1],
                "--read-rate", self._rates[2], *self._engine_args]
        return args, env

    def _spawn_engine(self, deadline: float) -> None:
        args, env = self.engine_invocation()
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)  # bounded readiness poll, not synchronization of test logic
        raise RuntimeError(f"engine not ready in time:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill_engine(self) -> None:
        """Kill the engine process hard (crash tests); ``restart_engine`` brings it back."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.livekit.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
