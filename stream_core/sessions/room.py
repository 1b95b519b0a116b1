"""``UTDRoom``: one media connection re-exposed as observable values and an event stream.

It never elevates its own permissions: ``can_publish`` is whatever the media server says.
Every media event refreshes the observables from the port's current state *before* the
event is re-emitted, so a reader of ``events`` always sees consistent values.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import ConnectionState, ConnectionStateChanged, MediaEvent
from stream_core.models import UTDPermissions, UTDRemoteParticipant
from stream_core.observable import EventStream, Observable
from stream_core.ports import ConnectOptions, MediaPort

__all__ = ["UTDRoom"]


class UTDRoom:
    """A headless wrapper around one :class:`MediaPort` connection."""

    def __init__(self, media: MediaPort, *, adaptive_stream: bool = True, dynacast: bool = True,
                 connect_timeout: float = 15.0) -> None:
        self.media = media
        self._options = ConnectOptions(adaptive_stream=adaptive_stream, dynacast=dynacast,
                                       timeout=connect_timeout)
        self.connection_state = Observable(ConnectionState.DISCONNECTED, name="connection_state")
        self.connected = Observable(False, name="connected")
        self.permissions = Observable(UTDPermissions(), name="permissions")
        self.can_publish = Observable(False, name="can_publish")
        self.remote_participants: Observable[tuple[UTDRemoteParticipant, ...]] = Observable(
            (), name="remote_participants")
        self.metadata = Observable("", name="room_metadata")
        self.disconnect_reason: str | None = None
        self.events: EventStream[MediaEvent] = EventStream()
        self._unsubscribe = media.add_listener(self._on_event)

    async def connect(self, url: str, token: str, *, auto_subscribe: bool = True) -> None:
        options = ConnectOptions(auto_subscribe=auto_subscribe,
                                 adaptive_stream=self._options.adaptive_stream,
                                 dynacast=self._options.dynacast, timeout=self._options.timeout)
        self.disconnect_reason = None
        await self.media.connect(url, token, options)
        self._refresh()

    async def set_microphone(self, enabled: bool) -> None:
        self._require_connected()
        await self.media.set_microphone(enabled)

    async def set_camera(self, enabled: bool) -> None:
        self._require_connected()
        await self.media.set_camera(enabled)

    async def send_data(self, data: bytes | bytearray | Sequence[int], *, reliable: bool = True,
                        destination_identities: Sequence[str] | None = None,
                        topic: str | None = None) -> None:
        self._require_connected()
        await self.media.send_data(bytes(data), reliable=reliable, to=destination_identities,
                                   topic=topic)

    async def disconnect(self) -> None:
        if self.media.connection_state is not ConnectionState.DISCONNECTED:
            await self.media.disconnect()
        self._refresh()

    def close(self) -> None:
        """Stop following the port and end every observer (after :meth:`disconnect`)."""
        self._unsubscribe()
        for obs in (self.connection_state, self.connected, self.permissions, self.can_publish,
                    self.remote_participants, self.metadata):
            obs.close()
        self.events.close()

    def _require_connected(self) -> None:
        if self.media.connection_state is not ConnectionState.CONNECTED:
            raise UTDStreamException("the media room is not connected",
                                     code=ErrorCode.UNAVAILABLE)

    def _on_event(self, event: MediaEvent) -> None:
        if isinstance(event, ConnectionStateChanged) and event.reason:
            self.disconnect_reason = event.reason
        self._refresh()
        self.events.emit(event)

    def _refresh(self) -> None:
        media = self.media
        state = media.connection_state
        self.connection_state.set(state)
        self.connected.set(state is ConnectionState.CONNECTED)
        connected = state is ConnectionState.CONNECTED
        self.permissions.set(media.permissions if connected else UTDPermissions())
        self.can_publish.set(connected and media.permissions.can_publish)
        self.remote_participants.set(tuple(media.remote_participants))
        self.metadata.set(media.room_metadata)

    def __repr__(self) -> str:
        return (f"<UTDRoom {self.connection_state.value.value} "
                f"can_publish={self.can_publish.value} "
                f"remotes={[p.identity for p in self.remote_participants.value]}>")
