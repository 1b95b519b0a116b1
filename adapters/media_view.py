"""The state half of a ``MediaPort``, shared by the fake and the LiveKit adapters.

Both keep a *view* of what their backend last said (identity, connection state, our
permissions, remote participants, room metadata) and tell their listeners only after the
view is updated, each listener isolated from the others' failures. What differs is how the
view is fed (an in-memory SFU, ``livekit.rtc`` events) and what a published track is.

Both also hand out :class:`~stream_core.frames.FrameStream`s of received media, and end
them here, from the same events their listeners hear (before the listeners run): a
participant's streams when it leaves or its source is unsubscribed or unpublished, every
stream when this connection goes down. How frames are fed differs per backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from stream_core.events import (
    ConnectionState, ConnectionStateChanged, MediaEvent, ParticipantDisconnected,
    TrackUnpublished, TrackUnsubscribed,
)
from stream_core.frames import FrameStream
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
        #: Open frame streams, each with the (identity, source) it reads; ``None`` for a mix.
        self._frame_streams: dict[FrameStream[Any], tuple[str, str] | None] = {}

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

    def _open_stream(self, description: str, source: tuple[str, str] | None,
                     ) -> FrameStream[Any]:
        """A new stream reading ``source`` (identity, source name), or a mix if ``None``."""
        stream: FrameStream[Any] = FrameStream(description)
        self._frame_streams[stream] = source
        stream.on_end(lambda: self._frame_streams.pop(stream, None))
        return stream

    def _end_streams(self, event: MediaEvent) -> None:
        """End the streams ``event`` takes away (see the module doc)."""
        if isinstance(event, ConnectionStateChanged):
            if event.state is not ConnectionState.DISCONNECTED:
                return
            ended = list(self._frame_streams)
            reason = "disconnected"
        elif isinstance(event, ParticipantDisconnected):
            ended = [s for s, src in self._frame_streams.items()
                     if src is not None and src[0] == event.identity]
            reason = "participant left"
        elif isinstance(event, TrackUnpublished | TrackUnsubscribed):
            gone = (event.identity, event.track.source)
            ended = [s for s, src in self._frame_streams.items() if src == gone]
            reason = f"{event.track.source} unpublished"
        else:
            return
        for stream in ended:
            stream.end(reason)

    def _emit(self, event: MediaEvent) -> None:
        self._end_streams(event)
        for callback in tuple(self._listeners):
            try:
                callback(event)
            except Exception:
                logger.exception("media listener %r failed on %r", callback, event)

    def _set_state(self, state: ConnectionState, reason: str | None = None) -> None:
        if state is not self._state:
            self._state = state
            self._emit(ConnectionStateChanged(state, reason))
