"""Shared fixtures: a world of in-memory fakes (one SFU, one engine) and clients on it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.fake_engine import FakeEngine
from adapters.fake_media import FakeMedia
from adapters.fake_sfu import FakeSFU
from stream_core import UTDStreamClient


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


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_livekit_binary() -> None:
    """Skip on a developer machine without livekit-server; FAIL in CI (never skip silently)."""
    from engine.livekit_process import LiveKitServerNotFound, resolve_server_binary

    try:
        resolve_server_binary()
    except LiveKitServerNotFound as exc:
        reason = f"{exc}; run `make tools` to build it"
        if _in_ci():
            pytest.fail(reason + " (CI: this is an error, not a skip)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Any]:
    """A real livekit-server + engine process + SQLite, shared by the session."""
    require_livekit_binary()
    from engine.config import AppConfig
    from engine.stack import LocalStack

    stack = LocalStack(apps=[AppConfig("suite-app", "suite-key")])
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
