"""The state half of a ``MediaPort``, shared by the fake and the LiveKit adapters.

Both keep a *view* of what their backend last said (identity, connection state, our
permissions, remote participants, room metadata) and tell their listeners only after the
view is updated, each listener isolated from the others' failures. What differs is how the
view is fed (an in-memory SFU, ``livekit.rtc`` events) and what a published track is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from stream_core.events import ConnectionState, ConnectionStateChanged, MediaEvent
from stream_core.models import UTDPermissions, UTDRemoteParticipant
from stream_core.ports import Unsubscribe

__all__ = ["MediaView"]

logger = logging.getLogger(__name__)


class MediaView:
    """Read side, listeners and the microphone/camera switches of a media connection;
    subclasses feed the view and publish."""

    def __init__(self) -> None:
        self._identity: str | None = None
        self._state = ConnectionState.DISCONNECTED
        self._permissions = UTDPermissions()
        self._remote: dict[str, UTDRemoteParticipant] = {}
        self._metadata = ""
        self._listeners: list[Callable[[MediaEvent], None]] = []

    @property
    def identity(self) -> str | None:
        return self._identity

    @property
    def connection_state(self) -> ConnectionState:
        return self._state

    @property
    def permissions(self) -> UTDPermissions:
        return self._permissions

    @property
    def remote_participants(self) -> tuple[UTDRemoteParticipant, ...]:
        return tuple(self._remote.values())

    @property
    def room_metadata(self) -> str:
        return self._metadata

    @property
    def microphone_enabled(self) -> bool:
        return "microphone" in self._sources_on()

    @property
    def camera_enabled(self) -> bool:
        return "camera" in self._sources_on()

    async def set_microphone(self, enabled: bool) -> None:
        await self._set_source("microphone", enabled)

    async def set_camera(self, enabled: bool) -> None:
        await self._set_source("camera", enabled)

    def add_listener(self, callback: Callable[[MediaEvent], None]) -> Unsubscribe:
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)
        return unsubscribe

    def _sources_on(self) -> Collection[str]:
        """The sources this participant publishes right now."""
        raise NotImplementedError

    async def _set_source(self, source: str, enabled: bool) -> None:
        """Publish (or stop) ``source``; refuse with 403 ``publish_denied`` when not granted."""
        raise NotImplementedError

    def _emit(self, event: MediaEvent) -> None:
        for callback in tuple(self._listeners):
            try:
                callback(event)
            except Exception:
                logger.exception("media listener %r failed on %r", callback, event)

    def _set_state(self, state: ConnectionState, reason: str | None = None) -> None:
        if state is not self._state:
            self._state = state
            self._emit(ConnectionStateChanged(state, reason))
