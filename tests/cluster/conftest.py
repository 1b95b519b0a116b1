"""The cluster fixture: one :class:`ClusterStack` per module (PostgreSQL, Redis, two LiveKit
nodes, Toxiproxy, three engine workers), shared by tests isolated by unique room names.

Missing tools (livekit-server, redis-server, toxiproxy-server, PostgreSQL) skip on a
developer machine with how to install them, and FAIL when ``CI`` is set: a cluster test
that silently skips would hide a broken ``make system tools``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stream_core.engine.settings import AppConfig
from stream_devstack.cluster import ClusterStack
from stream_devstack.postgres import PostgresCluster
from stream_devstack.sidecars import TOXIPROXY_BIN_ENV, find_tool
from tests.engine.stack_fixtures import StackApi, _apps
from tests.support import in_ci, require_livekit_binary

WORKERS = 3
#: Asked of engines that reconcile on a timer (an environment variable: engines that do
#: not know it ignore it); the dropped-webhook test waits a few of these.
RECONCILE_INTERVAL_S = 2.0


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(reason + " (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


def require_cluster_tools() -> None:
    require_livekit_binary()
    try:
        find_tool("redis-server")
        find_tool("toxiproxy-server", TOXIPROXY_BIN_ENV)
    except FileNotFoundError as exc:
        _unavailable(str(exc))
    if PostgresCluster.tool("initdb") is None or PostgresCluster.tool("pg_ctl") is None:
        _unavailable("PostgreSQL (initdb, pg_ctl) not found; `make system` installs it")


@dataclass(frozen=True)
class WorkerView:
    """What :class:`StackApi` needs of a stack: one worker's URL and the cluster's apps."""

    base_url: str
    apps: list[AppConfig]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterStack]:
    require_cluster_tools()
    stack = ClusterStack(workers=WORKERS, apps=_apps(), ring_timeout=5.0,
                         engine_env={"UTD_ENGINE_RECONCILE_INTERVAL": str(RECONCILE_INTERVAL_S),
                                     "UTD_ENGINE_ABSENT_GRACE": str(2 * RECONCILE_INTERVAL_S)})
    stack.start()  # with every tool present, a cluster that cannot start is a failure
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def apis(cluster: ClusterStack) -> Iterator[list[StackApi]]:
    """One HTTP client per worker (``apis[i]`` talks to ``cluster.workers[i]`` only)."""
    clients = [StackApi(WorkerView(url, cluster.apps)) for url in cluster.worker_urls]  # type: ignore[arg-type]
    yield clients
    held = {"livekit api secret": cluster.api_secret,
            "engine signing secret": cluster.signing_secret}
    leaks = sorted({name for client in clients for body in client.bodies
                    for name, value in held.items() if value in body}
                   | {name for worker in cluster.workers
                      for name, value in held.items()
                      if value in worker.log_path.read_text(errors="replace")})
    if leaks:
        pytest.fail(f"secrets leaked by the engines (responses or logs): {leaks}")
