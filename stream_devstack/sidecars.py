"""The two small servers a cluster needs beside LiveKit and the engines: a private
``redis-server`` and a ``toxiproxy-server`` with its HTTP API.

Both run as loopback-only child processes on free ports, in their own session (a Ctrl-C
aimed at pytest must not reach them first), with bounded readiness waits, and are stopped
deterministically. Nothing is installed or left behind: Redis keeps no dump, Toxiproxy keeps
its proxies in memory. ``make system`` installs Debian's ``redis-server``; ``make tools``
builds ``toxiproxy-server`` into ``.tools/bin``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from stream_devstack.stack import free_port

__all__ = ["RedisServer", "Toxiproxy", "find_tool", "TOXIPROXY_BIN_ENV"]

#: Environment variable naming the toxiproxy-server binary (the Makefile exports it).
TOXIPROXY_BIN_ENV = "TOXIPROXY_SERVER_BIN"
_REPO_TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "bin"
_POLL_S = 0.05


def find_tool(name: str, env_var: str | None = None) -> Path:
    """``$env_var`` when set (and only that: running another binary than the one named
    hides set-up mistakes), else ``.tools/bin/<name>``, else ``<name>`` on ``$PATH``.

    Raises :class:`FileNotFoundError` naming every place looked at and how to install it.
    """
    if env_var and os.environ.get(env_var):
        path = Path(os.environ[env_var]).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise FileNotFoundError(f"${env_var}={path} is not an executable file")
    local = _REPO_TOOLS / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        f"{name} not found (looked at {'$' + env_var + ', ' if env_var else ''}{local}, "
        f"$PATH); `make system tools` installs it")


class _Child:
    """One loopback child process with its log in a private temporary directory."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tmp = tempfile.TemporaryDirectory(prefix=f"utd-{name}-")
        self.dir = Path(self._tmp.name)
        self.log_path = self.dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str]) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=self.dir,
                                          start_new_session=True)
        atexit.register(self._kill_at_exit)

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise RuntimeError(f"{self.name} exited ({code}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            atexit.unregister(self._kill_at_exit)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._tmp.cleanup()

    def _kill_at_exit(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()


class RedisServer(_Child):
    """A private ``redis-server`` on a free loopback port: no persistence, no password
    (it listens on 127.0.0.1 only). ``address`` is ``host:port`` (LiveKit's ``redis:``
    config); :meth:`url` a ``redis://`` URL for a numbered database."""

    def __init__(self) -> None:
        super().__init__("redis")
        self.port = 0

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, running={self.running})"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 15.0) -> RedisServer:
        binary = find_tool("redis-server")
        deadline = time.monotonic() + timeout
        self.port = free_port()
        self._spawn([str(binary), "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(self.dir)])
        while not self._ping():
            self._check_alive()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"redis-server did not answer PING:\n{self.log_tail()}")
            time.sleep(_POLL_S)
        return self

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class Toxiproxy(_Child):
    """``toxiproxy-server`` and the few calls of its HTTP API a test needs: named TCP
    proxies on free loopback ports that can be disabled (connections refused, open ones
    closed) or black-holed (a ``timeout`` toxic: bytes stop flowing, nothing is closed)."""

    def __init__(self) -> None:
        super().__init__("toxiproxy")
        self.port = 0
        self.listen_ports: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Toxiproxy(port={self.port}, proxies={sorted(self.listen_ports)})"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Toxiproxy:
        binary = find_tool("toxiproxy-server", TOXIPROXY_BIN_ENV)
        deadline = time.monotonic() + timeout
        self.port = free_port()
        self._spawn([str(binary), "-host", "127.0.0.1", "-port", str(self.port)])
        while True:
            try:
                self._call("GET", "/version")
                return self
            except (urllib.error.URLError, OSError):
                self._check_alive()
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"toxiproxy did not answer:\n{self.log_tail()}") from None
                time.sleep(_POLL_S)

    def add_proxy(self, name: str, upstream_port: int) -> int:
        """A proxy ``name`` from a fresh loopback port to ``127.0.0.1:upstream_port``;
        returns the port to connect to. The upstream need not be listening yet."""
        port = free_port()
        self._call("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{port}",
                                        "upstream": f"127.0.0.1:{upstream_port}",
                                        "enabled": True})
        self.listen_ports[name] = port
        return port

    def set_upstream(self, name: str, upstream_port: int) -> None:
        self._call("POST", f"/proxies/{name}", {"upstream": f"127.0.0.1:{upstream_port}"})

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disabled: the listener is closed and open connections are cut (callers see
        connection refused/reset at once)."""
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def blackhole(self, name: str) -> None:
        """Data stops flowing both ways on ``name`` (connections hang, as on a dead link)."""
        for stream in ("upstream", "downstream"):
            self._call("POST", f"/proxies/{name}/toxics",
                       {"name": f"blackhole-{stream}", "type": "timeout", "stream": stream,
                        "toxicity": 1.0, "attributes": {"timeout": 0}})

    def heal(self, name: str) -> None:
        """Remove every toxic of ``name`` and enable it again."""
        state = self._call("GET", f"/proxies/{name}")
        for toxic in state.get("toxics", []) if isinstance(state, dict) else []:
            self._call("DELETE", f"/proxies/{name}/toxics/{toxic['name']}")
        self.set_enabled(name, True)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"toxiproxy {method} {path}: {exc.code} "
                               f"{exc.read().decode(errors='replace')}") from None
        try:
            return json.loads(text)
        except ValueError:  # /version answers plain text, DELETE answers nothing
            return None
