"""Which ``livekit-server`` executable to run.

Apart from :mod:`stream_devstack.livekit_process` because finding the binary is needed
without starting anything: the test suite decides up front whether the LiveKit tests can
run (and says why not), and the process only asks at :meth:`LiveKitServer.start`.

Lookup order (see :func:`find_server_binary`): explicit argument, ``$LIVEKIT_SERVER_BIN``,
``<repo>/.tools/bin/livekit-server``, then ``livekit-server`` on ``$PATH``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = [
    "LiveKitServerNotFound",
    "find_server_binary",
    "resolve_server_binary",
    "SERVER_BIN_ENV",
]

#: Environment variable consulted for the binary path when none is passed explicitly.
SERVER_BIN_ENV = "LIVEKIT_SERVER_BIN"

_REPO_ROOT = Path(__file__).resolve().parent.parent
_REPO_BINARY = _REPO_ROOT / ".tools" / "bin" / "livekit-server"


class LiveKitServerNotFound(FileNotFoundError):
    """No usable ``livekit-server`` binary was found in any of the looked-up places."""

def find_server_binary(binary: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the livekit-server binary to use, or ``None`` when none is available.

    An explicitly passed path or ``$LIVEKIT_SERVER_BIN`` is returned as-is only if it is an
    executable file; we do not silently fall through to other candidates when the caller
    named one explicitly, because running a *different* server than requested hides setup
    mistakes.
    """
    if binary is not None:
        path = Path(binary).expanduser()
        return path if _is_executable(path) else None
    env_value = os.environ.get(SERVER_BIN_ENV)
    if env_value:
        path = Path(env_value).expanduser()
        return path if _is_executable(path) else None
    if _is_executable(_REPO_BINARY):
        return _REPO_BINARY
    on_path = shutil.which("livekit-server")
    return Path(on_path) if on_path else None


def resolve_server_binary(binary: str | os.PathLike[str] | None = None) -> Path:
    """Like :func:`find_server_binary` but raise :class:`LiveKitServerNotFound` with the
    list of places searched, so a failing test/CI log says exactly what is missing."""
    found = find_server_binary(binary)
    if found is not None:
        return found
    if binary is not None:
        searched = [f"explicit path {binary!s}"]
    elif os.environ.get(SERVER_BIN_ENV):
        searched = [f"${SERVER_BIN_ENV}={os.environ[SERVER_BIN_ENV]}"]
    else:
        searched = [f"${SERVER_BIN_ENV} (unset)", str(_REPO_BINARY), "livekit-server on $PATH"]
    raise LiveKitServerNotFound(
        "livekit-server binary not found or not executable; looked at: " + ", ".join(searched)
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
