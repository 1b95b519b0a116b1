"""A whole cluster on loopback: PostgreSQL, Redis, two LiveKit nodes sharing that Redis,
a Toxiproxy in front of LiveKit's API and of the webhook ingress, and N engine workers.

Why: "many workers, one truth" and "LiveKit multi-node" are properties of processes that
share nothing but the database, Redis and LiveKit; only real processes can be killed with
``kill -9`` or cut off from LiveKit. The topology (worker ``i`` talks to node ``i % 2``)::

    clients ──> worker_urls[i] (python -m stream_engine, one port each) ──┐
                  │  --livekit-url: toxiproxy "livekit-api-<n>" ──> node n's API
                  │  --livekit-public-url: node n (what clients are told)
                  └─ PostgreSQL (one database), Redis db 1 (rate limits)
    node 0, node 1 (livekit-server, Redis db 0, same keys) ── webhooks ──>
                  toxiproxy "webhooks" ──> worker 0 (see :meth:`route_webhooks`)

LiveKit's multi-node routing puts each room on one node; a client whose signal connection
lands on the other node is bridged there through Redis (verified by the cluster tests: a
speaker on node 0 is heard by a listener on node 1). Every wait is bounded.
"""

from __future__ import annotations

import os
import secrets
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
from stream_devstack.postgres import PostgresCluster
from stream_devstack.sidecars import RedisServer, Toxiproxy
from stream_devstack.stack import free_port

__all__ = ["ClusterStack", "EngineWorker"]

WEBHOOK_PATH = "/api/v1/livekit/webhook"
#: LiveKit keeps its routing state in Redis database 0; the engines' limits use this one.
ENGINE_REDIS_DB = 1


class EngineWorker:
    """One ``python -m stream_engine`` process on its own port and state directory; it can
    be killed hard and started again with the same command line."""

    def __init__(self, index: int, args: list[str], env: dict[str, str], port: int,
                 state_dir: Path) -> None:
        self.index = index
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.state_dir = state_dir
        self.log_path = state_dir / "engine.log"
        self._args, self._env = args, env
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"EngineWorker({self.index}, {self.base_url}, pid={self.pid}, alive={self.alive})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> None:
        if self.alive:
            raise RuntimeError(f"worker {self.index} is already running")
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(self._args, env=self._env, stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def wait_ready(self, deadline: float) -> None:
        while True:
            if not self.alive:
                code = self._proc.returncode if self._proc is not None else None
                raise RuntimeError(f"worker {self.index} exited ({code}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise RuntimeError(f"worker {self.index} not ready in time:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no shutdown hook runs, in-flight requests are cut."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class ClusterStack:
    """PostgreSQL + Redis + two LiveKit nodes + Toxiproxy + ``workers`` engine processes.

    ``start()``/``stop()`` or ``with``. After start: :attr:`worker_urls` (one engine base
    URL per worker), :attr:`node_urls` (LiveKit ``ws://`` URL per node), :attr:`nodes`
    (the :class:`LiveKitServer` objects, sharing :attr:`api_key`/:attr:`api_secret`),
    :attr:`database_url`, :attr:`redis_url`, :attr:`webhook_url`. Faults:
    :meth:`kill_worker`/:meth:`restart_worker`, :meth:`cut_livekit_api`/
    :meth:`restore_livekit_api`, :meth:`drop_webhooks`/:meth:`restore_webhooks`.
    """

    def __init__(self, *, workers: int = 2, apps: list[AppConfig] | None = None,
                 ring_timeout: float = 30.0, token_rate: str = "200/400",
                 mutate_rate: str = "2000/4000", read_rate: str = "5000/10000",
                 engine_args: Sequence[str] = (),
                 engine_env: Mapping[str, str] | None = None) -> None:
        if workers < 1:
            raise ValueError("a cluster needs at least one worker")
        self.apps = apps or [AppConfig("app-" + secrets.token_hex(3), secrets.token_hex(16))]
        self.worker_count = workers
        self.ring_timeout = ring_timeout
        self._rates = (token_rate, mutate_rate, read_rate)
        self._engine_args = list(engine_args)
        self._engine_env = dict(engine_env or {})
        #: Shared by every worker, so a bearer minted by one is accepted by all.
        self.signing_secret = secrets.token_urlsafe(32)
        #: Shared by both LiveKit nodes: a token minted for one is valid on the other.
        self.api_key = f"API{secrets.token_hex(6)}"
        self.api_secret = secrets.token_urlsafe(48)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.postgres = PostgresCluster()
        self.redis = RedisServer()
        self.toxiproxy = Toxiproxy()
        self.nodes: list[LiveKitServer] = []
        self.workers: list[EngineWorker] = []
        self.database_url = ""

    def __repr__(self) -> str:
        return (f"ClusterStack(workers={[w.base_url for w in self.workers]}, "
                f"nodes={[n.url for n in self.nodes if n.running]})")

    @property
    def app(self) -> AppConfig:
        return self.apps[0]

    @property
    def worker_urls(self) -> list[str]:
        return [worker.base_url for worker in self.workers]

    @property
    def node_urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def redis_url(self) -> str:
        """What the workers get as ``UTD_ENGINE_REDIS_URL``."""
        return self.redis.url(ENGINE_REDIS_DB)

    @property
    def webhook_url(self) -> str:
        """Where both LiveKit nodes send webhooks (the ``webhooks`` proxy)."""
        return f"http://127.0.0.1:{self.toxiproxy.listen_ports['webhooks']}{WEBHOOK_PATH}"

    def node_of(self, worker: int) -> int:
        """The LiveKit node worker ``worker`` calls and sends its clients to."""
        return worker % len(self.nodes)

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 120.0) -> ClusterStack:
        deadline = time.monotonic() + timeout
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, deadline: float) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="utd-cluster-")
        root = Path(self._tmp.name)
        self.postgres.start()
        self.database_url = self.postgres.create_database()
        self.redis.start()
        self.toxiproxy.start()
        worker_ports = [free_port() for _ in range(self.worker_count)]
        self.toxiproxy.add_proxy("webhooks", worker_ports[0])
        for _ in range(2):
            node = LiveKitServer(api_key=self.api_key, api_secret=self.api_secret,
                                 webhook_urls=[self.webhook_url],
                                 webhook_events=APPLIED_EVENTS,
                                 redis_address=self.redis.address)
            self.nodes.append(node)
            node.start(timeout=max(1.0, deadline - time.monotonic()))
        for n, node in enumerate(self.nodes):
            self.toxiproxy.add_proxy(f"livekit-api-{n}", node.http_port)
        for index, port in enumerate(worker_ports):
            state_dir = root / f"worker-{index}"
            state_dir.mkdir()
            args, env = self.engine_invocation(index, port, state_dir)
            self.workers.append(EngineWorker(index, args, env, port, state_dir))
        # The first worker migrates the fresh database alone; the others then start together.
        self.workers[0].spawn()
        self.workers[0].wait_ready(deadline)
        for worker in self.workers[1:]:
            worker.spawn()
        for worker in self.workers[1:]:
            worker.wait_ready(deadline)

    def engine_invocation(self, index: int, port: int,
                          state_dir: Path) -> tuple[list[str], dict[str, str]]:
        """Worker ``index``'s command line and environment (secrets only in the env)."""
        node = self.nodes[index % len(self.nodes)]
        api_port = self.toxiproxy.listen_ports[f"livekit-api-{index % len(self.nodes)}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("UTD_ENGINE_")}
        env.update({
            "UTD_ENGINE_LIVEKIT_API_SECRET": self.api_secret,
            "UTD_ENGINE_SIGNING_SECRET": self.signing_secret,
            "UTD_ENGINE_APPS": ",".join(
                f"{a.app_id}:{a.app_key}" + (f":{a.server_secret}" if a.server_secret else "")
                for a in self.apps),
            "UTD_ENGINE_DATABASE_URL": self.database_url,
            # An environment variable, not a flag: an engine without Redis support ignores it.
            "UTD_ENGINE_REDIS_URL": self.redis_url,
        })
        env.update(self._engine_env)
        args = [sys.executable, "-m", "stream_engine", "--port", str(port),
                "--state-dir", str(state_dir),
                "--livekit-url", f"ws://127.0.0.1:{api_port}",
                "--livekit-public-url", node.url,
                "--livekit-api-key", self.api_key,
                "--ring-timeout", str(self.ring_timeout),
                "--token-rate", self._rates[0], "--mutate-rate", self._rates[1],
                "--read-rate", self._rates[2], *self._engine_args]
        return args, env

    def stop(self) -> None:
        """Stop everything started, in reverse order; idempotent."""
        for worker in self.workers:
            worker.stop()
        for node in self.nodes:
            node.stop()
        self.toxiproxy.stop()
        self.redis.stop()
        self.postgres.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ClusterStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults

    def kill_worker(self, index: int) -> None:
        """``kill -9`` worker ``index``; the others keep serving."""
        self.workers[index].kill()

    def restart_worker(self, index: int, timeout: float = 30.0) -> None:
        """Start worker ``index`` again (killing it first if it runs) on the same port."""
        worker = self.workers[index]
        worker.kill()
        worker.spawn()
        worker.wait_ready(time.monotonic() + timeout)

    def cut_livekit_api(self, *, blackhole: bool = False) -> None:
        """Cut every worker's path to LiveKit's API (clients' media is untouched):
        refused connections, or with ``blackhole`` requests that hang."""
        for n in range(len(self.nodes)):
            if blackhole:
                self.toxiproxy.blackhole(f"livekit-api-{n}")
            else:
                self.toxiproxy.set_enabled(f"livekit-api-{n}", False)

    def restore_livekit_api(self) -> None:
        for n in range(len(self.nodes)):
            self.toxiproxy.heal(f"livekit-api-{n}")

    def drop_webhooks(self) -> None:
        """LiveKit's webhooks stop reaching any engine (LiveKit drops them after its
        retries): what a lost ``participant_left`` looks like."""
        self.toxiproxy.set_enabled("webhooks", False)

    def restore_webhooks(self) -> None:
        self.toxiproxy.heal("webhooks")

    def route_webhooks(self, worker: int) -> None:
        """Send LiveKit's webhooks to worker ``worker`` from now on (the load balancer's
        job in production)."""
        self.toxiproxy.set_upstream("webhooks", self.workers[worker].port)

    def log_tail(self, worker: int, lines: int = 40) -> str:
        return self.workers[worker].log_tail(lines)
