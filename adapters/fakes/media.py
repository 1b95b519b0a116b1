"""The client half of the fake SFU: :class:`FakeMedia`, one participant's ``MediaPort``.

Import it from :mod:`adapters.fakes.sfu` (which re-exports it next to ``FakeSFU``).

Rules of this file: the server hands facts to the loop that connected (see
:mod:`adapters.fakes.sfu_room`); for each fact, the view (permissions, remote participants,
metadata, connection state, own tracks) is updated first, using the ``_VIEW_UPDATES`` table,
and only then are the listeners called, in registration order. A listener that raises is
logged and the others still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from adapters.fakes.sfu_room import Delivery, SfuParticipant, not_connected
from adapters.media_view import MediaView
from stream_core.errors import UTDStreamException
from stream_core.events import (
    ConnectionState, ConnectionStateChanged, MediaEvent, ParticipantDisconnected,
    PermissionsChanged, RoomMetadataChanged, TrackPublished, TrackSubscribed, TrackUnpublished,
    TrackUnsubscribed,
)
from stream_core.models import UTDTrack
from stream_core.ports import ConnectOptions

if TYPE_CHECKING:
    from adapters.fakes.sfu import FakeSFU
    from stream_core.ports import MediaPort

__all__ = ["FakeMedia"]



class FakeMedia(MediaView):
    """One participant's connection to a :class:`FakeSFU` (implements ``MediaPort``).

    Use it from one event loop: the loop that called :meth:`connect` receives its events.
    Track and participant events are about remote participants only; a server-side revoke
    of this participant's own tracks shows as ``PermissionsChanged``, with
    :attr:`microphone_enabled` / :attr:`camera_enabled` already updated.
    """

    def __init__(self, sfu: FakeSFU) -> None:
        super().__init__()
        self._sfu = sfu
        self._link: SfuParticipant | None = None
        self._local: dict[str, UTDTrack] = {}

    def __repr__(self) -> str:
        return (f"FakeMedia(identity={self._identity!r}, state={self._state.name}, "
                f"local={sorted(self._local)!r}, remote={list(self._remote)!r})")

    # -- MediaPort: actions -----------------------------------------------------------
    async def connect(self, url: str, token: str, options: ConnectOptions) -> None:
        """Join the token's room (created on demand). Raises 401 ``unauthenticated``,
        403 ``room_full``, or 409 if this instance is already connected."""
        if self._state is not ConnectionState.DISCONNECTED:
            raise UTDStreamException.illegal(f"already {self._state.value}; disconnect first")
        loop = asyncio.get_running_loop()
        self._set_state(ConnectionState.CONNECTING)
        try:
            link, present, metadata = self._sfu._join(
                url, token, auto_subscribe=options.auto_subscribe, loop=loop,
                sink=self._on_delivery)
        except UTDStreamException as exc:
            self._set_state(ConnectionState.DISCONNECTED, exc.code)
            raise
        self._link = link
        self._identity = link.identity
        self._permissions = link.permissions
        self._remote = {p.identity: p for p in present}
        self._metadata = metadata
        self._set_state(ConnectionState.CONNECTED)

    async def disconnect(self) -> None:
        """Leave the room. Idempotent; a no-op when already disconnected."""
        link = self._link
        if link is None:
            return
        self._detach()
        self._sfu._leave(link)
        self._set_state(ConnectionState.DISCONNECTED, "client_initiated")

    async def send_data(self, data: bytes, *, reliable: bool = True,
                        to: Sequence[str] | None = None, topic: str | None = None) -> None:
        """Send to everyone else, or only to ``to`` (an empty list means everyone, as in
        LiveKit). Raises 403 ``publish_denied`` without the data grant."""
        if self._link is None:
            raise not_connected("send data")
        self._sfu._send(self._link, data, topic=topic, to=to)

    async def _set_source(self, source: str, enabled: bool) -> None:
        link = self._link
        if not enabled:
            self._local.pop(source, None)
            if link is not None:
                self._sfu._unpublish(link, source)
            return
        if link is None:
            raise not_connected(f"publish {source}")
        self._local[source] = self._sfu._publish(link, source)

    def _sources_on(self) -> Collection[str]:
        return self._local

    # -- delivery (on this media's loop) ----------------------------------------------
    def _on_delivery(self, link: SfuParticipant, delivery: Delivery) -> None:
        """Apply one server fact to the view, then tell the listeners.

        Facts for a connection this media already left (it disconnected, or reconnected)
        are stale by construction and dropped: LiveKit stops reporting a closed room too.
        """
        if link is not self._link:
            return
        if delivery.participant is not None:
            self._remote[delivery.participant.identity] = delivery.participant
        event = delivery.event
        if event is None:
            return
        update = _VIEW_UPDATES.get(type(event))
        if update is not None:
            update(self, event, delivery)
        self._emit(event)

    def _detach(self) -> None:
        self._link = None
        self._remote.clear()
        self._local.clear()

    def _retrack(self, identity: str,
                 change: Callable[[tuple[UTDTrack, ...]], tuple[UTDTrack, ...]]) -> None:
        view = self._remote.get(identity)
        if view is not None:
            self._remote[identity] = replace(view, tracks=change(view.tracks))


def _on_state(media: FakeMedia, event: ConnectionStateChanged, _: Delivery) -> None:
    if event.state is ConnectionState.DISCONNECTED:
        media._detach()
    media._state = event.state


def _on_left(media: FakeMedia, event: ParticipantDisconnected, _: Delivery) -> None:
    media._remote.pop(event.identity, None)


def _on_published(media: FakeMedia, event: TrackPublished, _: Delivery) -> None:
    media._retrack(event.identity, lambda tracks: (*tracks, event.track))


def _on_unpublished(media: FakeMedia, event: TrackUnpublished, _: Delivery) -> None:
    media._retrack(event.identity,
                   lambda tracks: tuple(t for t in tracks if t.sid != event.track.sid))


def _on_subscription(media: FakeMedia, event: TrackSubscribed | TrackUnsubscribed,
                     _: Delivery) -> None:
    media._retrack(event.identity, lambda tracks: tuple(
        event.track if t.sid == event.track.sid else t for t in tracks))


def _on_permissions(media: FakeMedia, event: PermissionsChanged, delivery: Delivery) -> None:
    media._permissions = event.permissions
    for source, track in list(media._local.items()):
        if track.sid in delivery.unpublished:
            del media._local[source]


def _on_metadata(media: FakeMedia, event: RoomMetadataChanged, _: Delivery) -> None:
    media._metadata = event.metadata


#: How each event changes a FakeMedia's view before its listeners hear it. Events not
#: listed (ParticipantConnected carries its snapshot in the delivery; DataReceived) only
#: reach the listeners.
_VIEW_UPDATES: dict[type[MediaEvent], Callable[[FakeMedia, Any, Delivery], None]] = {
    ConnectionStateChanged: _on_state,
    ParticipantDisconnected: _on_left,
    TrackPublished: _on_published,
    TrackUnpublished: _on_unpublished,
    TrackSubscribed: _on_subscription,
    TrackUnsubscribed: _on_subscription,
    PermissionsChanged: _on_permissions,
    RoomMetadataChanged: _on_metadata,
}

if TYPE_CHECKING:
    _: type[MediaPort] = FakeMedia
