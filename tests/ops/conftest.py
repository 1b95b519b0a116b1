"""The engine in process (aiohttp test server over SQLite and the fake SFU): what the
operator-facing features (CORS, metrics, console, migrations) need, in milliseconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.fakes.control import FakeControl
from adapters.fakes.sfu import FakeSFU
from stream_engine.config import AppConfig, EngineConfig
from stream_engine.http import create_app
from tests.engine.stack_fixtures import pg_cluster  # noqa: F401 - a fixture, re-exported

EngineClient = Callable[..., Any]


@pytest.fixture
async def engine_client(tmp_path: Path) -> AsyncIterator[EngineClient]:
    """``await engine_client(**config)``: an in-process engine's test client (app ``a``/``k``)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**config: Any) -> TestClient[Any, Any]:
        settings = EngineConfig(state_dir=tmp_path, apps=[AppConfig("a", "k")],
                                signing_secret="s" * 32, **config)
        sfu = FakeSFU()
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(
            settings, control_factory=lambda: FakeControl(sfu))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def token_body(identity: str, room: str, *, role: str = "audience",
               stream_type: str = "audio_room", **more: Any) -> dict[str, Any]:
    return {"app_id": "a", "app_key": "k", "identity": identity, "room_name": room,
            "stream_type": stream_type, "role": role, **more}
