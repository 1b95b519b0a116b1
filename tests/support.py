"""The suite's one policy for the real livekit-server: skip on a developer machine that
has no binary (with how to get one), FAIL in CI, where skipping would hide a broken
install step and silently drop the only real-SFU coverage."""

from __future__ import annotations

import os

import pytest

from stream_devstack.livekit_binary import SERVER_BIN_ENV, LiveKitServerNotFound, resolve_server_binary

__all__ = ["in_ci", "require_livekit_binary"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_livekit_binary() -> None:
    try:
        resolve_server_binary()
    except LiveKitServerNotFound as exc:
        reason = (f"{exc}. Set ${SERVER_BIN_ENV}, run `make tools` to install "
                  ".tools/bin/livekit-server, or put livekit-server on $PATH")
        if in_ci():
            pytest.fail(reason + " (CI is set, so this is an error, not a skip)")
        pytest.skip(reason)
