"""Shared fixtures: a world of in-memory fakes (one SFU, one engine) and clients on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
