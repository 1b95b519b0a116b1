"""Default backends: what ``UTDStreamClient(app_id=..., app_key=...)`` wires by itself.

Registered as the ``utd_stream.backends`` entry point named ``default``, so the core finds
it without importing any I/O library. Fakes stay one argument away::

    UTDStreamClient(app_id, app_key, engine=FakeEngine(sfu), media_factory=lambda: FakeMedia(sfu))
"""

from __future__ import annotations

from collections.abc import Callable

from stream_core.ports import EnginePort, MediaPort

__all__ = ["default_backends"]


def default_backends(*, app_id: str, app_key: str, base_url: str,
                     token_base_url: str) -> tuple[EnginePort, Callable[[], MediaPort]]:
    """The REST engine adapter and a LiveKit media connection per session."""
    from adapters.livekit.media import LiveKitMedia
    from adapters.rest.engine import RestEngine

    engine = RestEngine(app_id=app_id, app_key=app_key, base_url=base_url,
                        token_base_url=token_base_url)
    return engine, LiveKitMedia
