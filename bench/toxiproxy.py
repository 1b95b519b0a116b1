"""A Toxiproxy server on loopback, started and stopped by the benchmark that needs it.

Toxiproxy adds latency per TCP connection (this kernel has no ``netem`` qdisc). The binary
is the pinned ``toxiproxy-server`` that ``make toxiproxy`` builds into ``.tools/bin``
(``$TOXIPROXY_SERVER_BIN`` overrides); its HTTP API listens on a loopback port chosen here,
and every proxy listens on loopback too. Start-up and every API call are bounded in time;
:meth:`stop` terminates the process (then kills it) whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from stream_devstack.stack import free_port

__all__ = ["Toxiproxy", "toxiproxy_binary"]

LOOPBACK = "127.0.0.1"
_API_TIMEOUT = 5.0


def toxiproxy_binary() -> Path | None:
    """``$TOXIPROXY_SERVER_BIN``, else ``.tools/bin/toxiproxy-server``, else ``$PATH``."""
    configured = os.environ.get("TOXIPROXY_SERVER_BIN")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parent.parent / ".tools/bin/toxiproxy-server")
    found = shutil.which("toxiproxy-server")
    if found:
        candidates.append(Path(found))
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


class Toxiproxy:
    """``with Toxiproxy() as toxi: port = toxi.proxy("engine", upstream_port)``."""

    def __init__(self, binary: Path | None = None, *, start_timeout: float = 10.0) -> None:
        found = binary or toxiproxy_binary()
        if found is None:
            raise FileNotFoundError("no toxiproxy-server: run `make toxiproxy` (or set "
                                    "TOXIPROXY_SERVER_BIN)")
        self.binary = found
        self.api_port = free_port()
        self.api = f"http://{LOOPBACK}:{self.api_port}"
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()

    def start(self) -> Toxiproxy:
        self._proc = subprocess.Popen(
            [str(self.binary), "-host", LOOPBACK, "-port", str(self.api_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"toxiproxy-server exited with {self._proc.returncode}")
            try:
                if self._http.get(f"{self.api}/version", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)  # bounded readiness poll
        self.stop()
        raise RuntimeError(f"toxiproxy-server not ready within {self._start_timeout:g} s")

    def proxy(self, name: str, upstream_port: int, *, listen_port: int | None = None) -> int:
        """A proxy on loopback (``listen_port``, default a free one) to
        ``127.0.0.1:upstream_port``; returns the port it listens on."""
        port = listen_port or free_port()
        self._call("POST", "/proxies", {"name": name, "listen": f"{LOOPBACK}:{port}",
                                        "upstream": f"{LOOPBACK}:{upstream_port}",
                                        "enabled": True})
        return port

    def latency(self, proxy: str, ms: int, *, stream: str = "downstream") -> None:
        """Delay every byte ``proxy`` carries in ``stream`` by ``ms`` (no jitter)."""
        self._call("POST", f"/proxies/{proxy}/toxics",
                   {"name": f"latency-{stream}", "type": "latency", "stream": stream,
                    "toxicity": 1.0, "attributes": {"latency": ms, "jitter": 0}})

    def stop(self) -> None:
        self._http.close()
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def _call(self, method: str, path: str, body: dict[str, Any]) -> None:
        response = self._http.request(method, f"{self.api}{path}", json=body,
                                      timeout=_API_TIMEOUT)
        if not response.ok:
            raise RuntimeError(f"toxiproxy {method} {path}: {response.status_code} "
                               f"{response.text.strip()}")

    def __enter__(self) -> Toxiproxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
