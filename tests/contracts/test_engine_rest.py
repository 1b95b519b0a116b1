"""The EnginePort contract against the real engine, through the REST adapter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.rest.engine import RestEngine
from tests.contracts.engine_contract import EngineContract

pytestmark = [pytest.mark.livekit, pytest.mark.engine]


class TestRestEngineContract(EngineContract):
    @pytest.fixture
    def engine(self, local_stack: Any) -> Iterator[RestEngine]:
        engine = RestEngine(app_id=local_stack.app.app_id, app_key=local_stack.app.app_key,
                            base_url=local_stack.base_url)
        yield engine
        engine.close()
