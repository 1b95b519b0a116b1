"""Shared fixtures: a world of in-memory fakes (one SFU, one engine) and clients on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.fakes.engine import FakeEngine
from adapters.fakes.media import FakeMedia
from adapters.fakes.sfu import FakeSFU
from stream_core import UTDStreamClient
from tests.support import require_livekit_binary


class ManualClock:
    """A clock tests move by hand: ring timeouts without sleeping."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sfu() -> FakeSFU:
    return FakeSFU()


@pytest.fixture
def engine(sfu: FakeSFU, clock: ManualClock) -> Iterator[FakeEngine]:
    eng = FakeEngine(sfu, clock=clock, ring_timeout=30.0)
    yield eng
    eng.close()


@pytest.fixture
def make_client(engine: FakeEngine, sfu: FakeSFU) -> Callable[[], UTDStreamClient]:
    """Clients of one app on the shared fake world (each its own media per session)."""

    def make() -> UTDStreamClient:
        return UTDStreamClient(app_id="test-app", app_key="test-key", engine=engine,
                               media_factory=lambda: FakeMedia(sfu), grant_timeout=5.0)

    return make


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[Any]:
    """A loopback livekit-server shared by the whole session (tests use unique rooms)."""
    require_livekit_binary()
    from stream_devstack.livekit_process import LiveKitServer

    with LiveKitServer() as server:
        yield server


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Any]:
    """A real livekit-server + engine process + SQLite, shared by the session."""
    require_livekit_binary()
    from stream_core.engine.settings import AppConfig
    from stream_devstack.stack import LocalStack

    stack = LocalStack(apps=[AppConfig("suite-app", "suite-key")])
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
