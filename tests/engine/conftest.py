"""Engine test fixtures. ``livekit_server`` (session) lives in ``tests/conftest.py``; the
missing-binary policy (skip locally, fail in CI) in ``tests/support.py``."""

from __future__ import annotations

# Stack fixtures (a real livekit-server plus the engine process) live in their own module.
from tests.engine.stack_fixtures import (  # noqa: F401 - re-exported as fixtures
    api,
    pg_cluster,
    quick_api,
    quick_stack,
    stack,
)
