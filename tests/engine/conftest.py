"""Fixtures for engine tests that need a real livekit-server.

The server is session-scoped because starting it costs ~0.1-0.5 s and tests isolate
themselves with unique room names instead. A missing binary is a *skip* on developer
machines (with a hint how to get one) but a hard *failure* in CI, where silently skipping
the only real-SFU coverage would hide a broken toolchain step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from engine.livekit_process import (
    SERVER_BIN_ENV,
    LiveKitServer,
    LiveKitServerNotFound,
    resolve_server_binary,
)

# Stack fixtures (a real livekit-server plus the engine process) live in their own module.
from tests.engine.stack_fixtures import (  # noqa: F401 - re-exported as fixtures
    api,
    pg_cluster,
    quick_api,
    quick_stack,
    stack,
)


def _running_in_ci() -> bool:
    value = os.environ.get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    """A started loopback livekit-server shared by the whole test session."""
    try:
        binary = resolve_server_binary()
    except LiveKitServerNotFound as exc:
        reason = (
            f"{exc}. Set ${SERVER_BIN_ENV}, run `make` to install .tools/bin/livekit-server, "
            "or put livekit-server on $PATH"
        )
        if _running_in_ci():
            pytest.fail(reason + " (CI is set, so this is an error, not a skip)")
        pytest.skip(reason)
    server = LiveKitServer(binary)
    server.start(timeout=30)
    try:
        yield server
    finally:
        server.stop()
