"""End-to-end fixtures: clients wired exactly as an app wires them, on the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from stream_core import UTDSession, UTDStreamClient

#: Real media crosses a real SFU: allow for LiveKit's ~3 s participant-update batching.
TIMEOUT = 15.0


@pytest.fixture
async def real_client(local_stack: Any) -> AsyncIterator[Callable[[], UTDStreamClient]]:
    """Clients built with the one-liner (default adapters); sessions disposed after the test."""
    clients: list[UTDStreamClient] = []

    def make() -> UTDStreamClient:
        client = UTDStreamClient(app_id=local_stack.app.app_id, app_key=local_stack.app.app_key,
                                 base_url=local_stack.base_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.dispose()


@pytest.fixture
async def sessions() -> AsyncIterator[list[UTDSession]]:
    """Register sessions here; they are disposed (media left) even when a test fails."""
    opened: list[UTDSession] = []
    yield opened
    for session in reversed(opened):
        await session.dispose()
