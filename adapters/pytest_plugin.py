"""The pytest plugin an app's test suite gets with utd-stream (the ``pytest11`` entry point
``utd_stream``): a ready :class:`~stream_core.UTDStreamClient` per test.

* ``utd_client``: a client over the shipped in-memory fakes (one fake SFU and one fake
  engine per test, the engine being the real engine service over memory): no server, no
  network, milliseconds. With ``--utd-backend=live`` the same fixture is a client of a real
  local stack instead, so one test runs on both.
* ``utd_live_client``: always a client of the real local stack (``livekit-server`` plus the
  engine, started once per session by ``utd_stack``); skipped with a reason when no
  ``livekit-server`` binary is found (``$LIVEKIT_SERVER_BIN``, ``.tools/bin``, ``$PATH``),
  or failed when ``UTD_REQUIRE_LIVEKIT=1`` (set it in CI so the real tests cannot vanish).
* ``utd_fakes``: the fake world behind ``utd_client`` (``.sfu``, ``.engine``, ``.client()``
  for more clients), to look at what the media server holds.

Every session a test opens through these clients is disposed after the test by the test
itself (``await session.dispose()`` or ``async with``); the clients are closed here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.fakes.engine import FakeEngine
from adapters.fakes.media import FakeMedia
from adapters.fakes.sfu import FakeSFU
from stream_core import UTDStreamClient

__all__ = ["FakeWorld", "pytest_addoption", "utd_fakes", "utd_client", "utd_stack",
           "utd_live_client"]

APP_ID, APP_KEY = "test-app", "test-key"


class FakeWorld:
    """One fake SFU and one fake engine (app ``test-app``/``test-key``), and their clients."""

    def __init__(self, *, ring_timeout: float = 30.0) -> None:
        self.sfu = FakeSFU()
        self.engine = FakeEngine(self.sfu, ring_timeout=ring_timeout, app_id=APP_ID,
                                 app_key=APP_KEY)
        self._clients: list[UTDStreamClient] = []

    def client(self) -> UTDStreamClient:
        """Another client of this world (each session it opens gets its own fake media)."""
        client = UTDStreamClient(app_id=APP_ID, app_key=APP_KEY, engine=self.engine,
                                 media_factory=lambda: FakeMedia(self.sfu), grant_timeout=5.0)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.dispose()
        self.engine.close()

    def __repr__(self) -> str:
        return f"<FakeWorld clients={len(self._clients)} engine={self.engine!r}>"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("utd-stream")
    group.addoption("--utd-backend", choices=("fake", "live"), default="fake",
                    help="what utd_client talks to: the in-memory fakes (default) or a "
                         "real local livekit-server + engine")


@pytest.fixture
def utd_fakes() -> Iterator[FakeWorld]:
    world = FakeWorld()
    yield world
    world.close()


@pytest.fixture(scope="session")
def utd_stack() -> Iterator[Any]:
    """A real local stack (``stream_devstack.stack.LocalStack``) shared by the session."""
    from stream_core.engine.settings import AppConfig
    from stream_devstack.livekit_binary import LiveKitServerNotFound, resolve_server_binary
    from stream_devstack.stack import LocalStack

    try:
        resolve_server_binary()
    except LiveKitServerNotFound as exc:
        reason = f"no livekit-server for utd_live_client: {exc}"
        if os.environ.get("UTD_REQUIRE_LIVEKIT", "") not in ("", "0"):
            pytest.fail(reason + " (UTD_REQUIRE_LIVEKIT is set)")
        pytest.skip(reason)
    with LocalStack(apps=[AppConfig(APP_ID, APP_KEY)]) as stack:
        yield stack


@pytest.fixture
def utd_live_client(utd_stack: Any) -> Iterator[UTDStreamClient]:
    client = UTDStreamClient(app_id=APP_ID, app_key=APP_KEY, base_url=utd_stack.base_url)
    yield client
    client.dispose()


@pytest.fixture
def utd_client(request: pytest.FixtureRequest) -> Iterator[UTDStreamClient]:
    if request.config.getoption("--utd-backend") == "live":
        yield request.getfixturevalue("utd_live_client")
        return
    world: FakeWorld = request.getfixturevalue("utd_fakes")
    yield world.client()
