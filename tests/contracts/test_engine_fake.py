"""The EnginePort contract against the in-memory fake engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.fakes.engine import FakeEngine
from adapters.fakes.sfu import FakeSFU
from tests.contracts.engine_contract import EngineContract


class TestFakeEngineContract(EngineContract):
    @pytest.fixture
    def engine(self) -> Iterator[FakeEngine]:
        engine = FakeEngine(FakeSFU())
        yield engine
        engine.close()
