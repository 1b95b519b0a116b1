"""Run a real ``livekit-server`` as a loopback-only subprocess.

Why this exists: the engine and its tests need a genuine SFU (signalling, permissions, data
packets, ICE) rather than a mock, but must never touch the network outside ``127.0.0.1`` nor
depend on fixed ports (tests run in parallel, CI hosts are shared). :class:`LiveKitServer`
picks free ports, writes a throw-away config with freshly generated credentials, starts the
binary, waits until it really answers HTTP, and tears it down deterministically.

This module is the process's life (start, readiness, retry on a lost port, stop, atexit).
What the server is told (ports, config, environment) is :mod:`stream_devstack.livekit_config`;
which binary runs is :mod:`stream_devstack.livekit_binary`.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from stream_devstack.livekit_binary import resolve_server_binary
from stream_devstack.livekit_config import (
    LOOPBACK, ServerPorts, child_env, pick_ports, server_config, write_config,
)

__all__ = ["LiveKitServer"]

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.05
_PORT_RETRY_ATTEMPTS = 3
# How long the first (graceful/drain) SIGTERM gets before we escalate to livekit's forced stop.
# With no participants livekit exits within milliseconds; with participants the drain never
# ends on its own. It must exceed livekit's ~100 ms start-up window in which a signal is
# swallowed (see _terminate), so the second SIGTERM is guaranteed to land outside it.
_GRACEFUL_WAIT_S = 0.5


class LiveKitServer:
    """A loopback-only ``livekit-server`` subprocess with generated credentials.

    Usage::

        with LiveKitServer() as server:
            ...  # server.url, server.api_key, server.api_secret

    Network layout (all chosen at :meth:`start`): HTTP/WebSocket signalling on
    ``127.0.0.1:<http_port>``; ICE over a single UDP mux port (``rtc.udp_port``) restricted to
    ``127.0.0.1`` via ``rtc.ips.includes``; ICE/TCP fallback on ``<rtc_tcp_port>`` (note:
    livekit-server binds that TCP listener on *all* interfaces, it has no bind option).
    ``rtc.node_ip`` is ``127.0.0.1``, ``use_external_ip`` is off (no STUN lookups) and
    ``enable_loopback_candidate`` is on: pion drops loopback ICE candidates by default, so with
    the loopback-only IP filter and without this flag the server offers no candidate at all and
    ``Room.connect`` stalls ("wait_pc_connection timed out", retried 3x) - verified on v1.13.5.

    The API secret is never logged; :meth:`output_tail` redacts it from server output.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        webhook_urls: str | Sequence[str] | None = None,
        log_level: str = "warn",
        stop_timeout: float = 5.0,
        redis_address: str | None = None,
        webhook_events: Collection[str] | None = None,
    ) -> None:
        """Configure (but do not start) a server.

        Args:
            binary: path to the livekit-server executable; ``None`` means the default lookup
                (``$LIVEKIT_SERVER_BIN``, ``.tools/bin/livekit-server``, ``$PATH``). Resolved
                lazily at :meth:`start` so constructing the object never fails on a missing
                binary.
            api_key / api_secret: credentials; random ones are generated when omitted. The
                secret must be at least 32 characters: livekit-server v1.13.5 accepts shorter
                ones, but PyJWT (used by livekit-api to sign every request) emits
                ``InsecureKeyLengthWarning`` below 32 bytes and RFC 7518 requires >= 256 bits.
            webhook_urls: one URL or several; when given, a ``webhook`` section signed with
                ``api_key`` is added so the server POSTs room events there.
            log_level: livekit ``logging.level`` (debug/info/warn/error).
            stop_timeout: seconds :meth:`stop` waits after the forcing SIGTERM (and after
                SIGKILL) before giving up/escalating.
            redis_address: ``host:port`` of a Redis shared with other nodes (LiveKit's
                multi-node mode, see :class:`stream_devstack.cluster.ClusterStack`); the
                nodes must then share ``api_key``/``api_secret``.
            webhook_events: the only webhook events the server sends (``None``: all). An
                engine passes the events it acts on, so the others (``room_started`` at a
                room's first join, track events) cost neither the server nor the engine a
                request while the joiner is still connecting.
        """
        self._binary_arg = binary
        self._api_key = api_key or f"API{secrets.token_hex(6)}"
        self._api_secret = api_secret or secrets.token_urlsafe(48)
        if len(self._api_secret) < 32:
            raise ValueError("api_secret must be at least 32 characters for livekit-server")
        if isinstance(webhook_urls, str):
            webhook_urls = [webhook_urls]
        self._webhook_urls: list[str] = list(webhook_urls or [])
        self._log_level = log_level
        self._stop_timeout = stop_timeout
        self._redis_address = redis_address
        self._webhook_events = None if webhook_events is None else frozenset(webhook_events)

        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._config_path: Path | None = None
        self._binary: Path | None = None
        self._http_port: int | None = None
        self._rtc_tcp_port: int | None = None
        self._udp_port: int | None = None

    # ------------------------------------------------------------------ properties

    @property
    def api_key(self) -> str:
        """API key registered in the server's ``keys`` map (safe to log)."""
        return self._api_key

    @property
    def api_secret(self) -> str:
        """API secret paired with :attr:`api_key`. Do not log it."""
        return self._api_secret

    @property
    def url(self) -> str:
        """WebSocket URL for ``livekit.rtc.Room.connect`` and ``livekit.api.LiveKitAPI``."""
        return f"ws://{LOOPBACK}:{self._require_port(self._http_port)}"

    @property
    def http_url(self) -> str:
        """HTTP base URL (root answers ``OK``; Twirp lives under ``/twirp``)."""
        return f"http://{LOOPBACK}:{self._require_port(self._http_port)}"

    @property
    def http_port(self) -> int:
        """Signalling/HTTP port chosen at start."""
        return self._require_port(self._http_port)

    @property
    def rtc_tcp_port(self) -> int:
        """ICE/TCP port chosen at start."""
        return self._require_port(self._rtc_tcp_port)

    @property
    def udp_port(self) -> int:
        """Single ICE/UDP mux port chosen at start."""
        return self._require_port(self._udp_port)

    @property
    def webhook_urls(self) -> list[str]:
        """Webhook URLs configured for this server (copy)."""
        return list(self._webhook_urls)

    @property
    def binary(self) -> Path | None:
        """Resolved binary path, known after :meth:`start`."""
        return self._binary

    @property
    def config_path(self) -> Path | None:
        """Generated config file (contains the secret; mode 0600; deleted on stop)."""
        return self._config_path

    @property
    def pid(self) -> int | None:
        """PID of the running server process, if any."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the subprocess exists and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def _require_port(self, port: int | None) -> int:
        if port is None:
            raise RuntimeError("LiveKitServer is not started")
        return port

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 30.0) -> LiveKitServer:
        """Start the server and block until its HTTP root answers ``OK``.

        Retries with fresh ports (a bounded number of times) if the server dies because a
        port picked by the kernel was grabbed by someone else in the meantime.

        Raises:
            LiveKitServerNotFound: no binary available.
            RuntimeError: the server exited or did not become ready within ``timeout``
                seconds; the message includes the tail of its output.
        """
        if self._proc is not None:
            raise RuntimeError("LiveKitServer already started")
        self._binary = resolve_server_binary(self._binary_arg)
        deadline = time.monotonic() + timeout
        last_error: RuntimeError | None = None
        for _attempt in range(_PORT_RETRY_ATTEMPTS):
            try:
                self._launch()
                self._wait_ready(deadline)
                logger.info(
                    "livekit-server ready at %s (pid %s, api_key %s)",
                    self.url,
                    self.pid,
                    self._api_key,
                )
                return self
            except _PortInUse as exc:
                last_error = RuntimeError(str(exc))
                self._cleanup_process()
                if time.monotonic() >= deadline:
                    break
            except BaseException:
                self._cleanup_process()
                raise
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """Stop the server and remove the temp dir holding the config/secret. Idempotent.

        Sequence: SIGTERM (livekit "drain": waits for participants to leave) given 0.5 s, then
        a second SIGTERM (livekit "force") given ``stop_timeout``, then SIGKILL. The drain
        step would otherwise block forever while any participant is still connected.
        """
        self._cleanup_process()

    def restart(self, *, hard: bool = False, down_for: float = 0.0,
                timeout: float = 30.0) -> LiveKitServer:
        """Stop the server and start it again on the same ports and credentials, as an
        operator's restart would: every room and connection is lost, clients that reconnect
        to the same URL find a fresh server. ``hard`` kills it (SIGKILL: clients see their
        connection drop) instead of the SIGTERM stop (clients are told it shut down);
        ``down_for`` keeps it down that long. Blocks until it answers again."""
        ports = ServerPorts(self._require_port(self._http_port),
                            self._require_port(self._rtc_tcp_port),
                            self._require_port(self._udp_port))
        proc = self._proc
        if hard and proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=self._stop_timeout)
        self._cleanup_process()
        if down_for > 0:
            time.sleep(down_for)
        deadline = time.monotonic() + timeout
        while True:  # the old listeners may linger a moment after the process is gone
            try:
                self._launch(ports)
                self._wait_ready(deadline)
                return self
            except _PortInUse:
                self._cleanup_process()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_POLL_INTERVAL_S)
            except BaseException:
                self._cleanup_process()
                raise

    def __enter__(self) -> LiveKitServer:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def output_tail(self, max_lines: int = 40) -> str:
        """Last lines of the server's combined stdout/stderr with the secret redacted."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        data = self._log_path.read_bytes()[-64_000:]
        text = data.decode("utf-8", errors="replace").replace(self._api_secret, "***")
        return "\n".join(text.splitlines()[-max_lines:])

    # ------------------------------------------------------------------ internals

    def _launch(self, ports: ServerPorts | None = None) -> None:
        assert self._binary is not None
        ports = ports or pick_ports()
        self._http_port, self._rtc_tcp_port, self._udp_port = ports

        self._tmpdir = tempfile.TemporaryDirectory(prefix="utd-livekit-")
        tmp = Path(self._tmpdir.name)
        self._config_path = tmp / "livekit.yaml"
        write_config(self._config_path, server_config(
            ports, api_key=self._api_key, api_secret=self._api_secret,
            webhook_urls=self._webhook_urls, log_level=self._log_level,
            redis_address=self._redis_address, webhook_events=self._webhook_events))
        self._log_path = tmp / "livekit-server.log"
        self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - closed in cleanup

        self._proc = subprocess.Popen(
            [str(self._binary), "--config", str(self._config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=child_env(),
            # own session: a Ctrl-C aimed at pytest must not reach the server first; we stop it.
            start_new_session=True,
        )
        atexit.register(self._kill_at_exit)

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        url = self.http_url + "/"
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.output_tail()
                if "address already in use" in tail:
                    raise _PortInUse(
                        f"livekit-server could not bind its ports (exit {code}):\n{tail}"
                    )
                raise RuntimeError(
                    f"livekit-server exited with code {code} before becoming ready "
                    f"(binary {self._binary}).\n--- server output tail ---\n{tail}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"livekit-server did not answer {url} in time (binary {self._binary}).\n"
                    f"--- server output tail ---\n{self.output_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=min(1.0, remaining)) as resp:
                    if resp.status == 200 and resp.read().strip() == b"OK":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(_POLL_INTERVAL_S)

    def _cleanup_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            atexit.unregister(self._kill_at_exit)
            if proc.poll() is None:
                self._terminate(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
            self._config_path = None
            self._log_path = None

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        # livekit-server's first SIGTERM means "drain": it waits (forever, polling every 5 s)
        # until all participants have left. The second SIGTERM means "force". A signal that
        # lands in the ~100 ms between the HTTP port answering and the server marking itself
        # running is swallowed (Stop() sees running=false and returns) - the second SIGTERM,
        # sent _GRACEFUL_WAIT_S later, then does the job. SIGKILL is the last resort (livekit
        # only reads two signals; further ones are ignored).
        for sig, wait_s in (
            (signal.SIGTERM, _GRACEFUL_WAIT_S),
            (signal.SIGTERM, self._stop_timeout),
        ):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
        logger.warning("livekit-server pid %s did not exit on SIGTERM; killing", proc.pid)
        proc.kill()
        proc.wait(timeout=self._stop_timeout)

    def _kill_at_exit(self) -> None:
        """Last-resort cleanup so an interpreter exit never leaks a server process."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                pass


class _PortInUse(RuntimeError):
    """Internal: the server lost the race for one of the probed ports."""
