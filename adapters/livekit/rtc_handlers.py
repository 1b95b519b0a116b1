"""The rtc event table of :class:`~adapters.livekit.media.LiveKitMedia`: one handler per
``livekit.rtc`` event name.

Rules of this file: a handler refreshes the adapter's view (remote participants and their
tracks, permissions, room metadata, connection state, own tracks) from the rtc objects and
returns the core event to emit, or ``None`` when only the view changes. ``raw`` is the rtc
event's argument (a tuple when rtc passes several). Handlers do no I/O and never await;
work that needs a round trip (the unpublish after a revoke) is handed to the adapter's
tracked tasks.

Why apart from the adapter: the adapter's module holds its actions (connect, publish,
disconnect) and its task bookkeeping; this one is the translation of rtc events, read as a
table. The handlers are the adapter's own code and write its private view directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.rtc.room import EventTypes

from adapters.livekit.events import STATES, permissions_of, reason_of, track_view
from stream_core.events import (
    ActiveSpeakersChanged, ConnectionState, ConnectionStateChanged, DataReceived, MediaEvent,
    ParticipantConnected, ParticipantDisconnected, PermissionsChanged, RoomMetadataChanged,
    TrackPublished, TrackSubscribed, TrackUnpublished, TrackUnsubscribed,
)

if TYPE_CHECKING:
    from livekit.rtc._proto.participant_pb2 import ParticipantPermission

    from adapters.livekit.media import LiveKitMedia

__all__ = ["HANDLERS"]

logger = logging.getLogger(__name__)


def _joined(media: LiveKitMedia, participant: rtc.RemoteParticipant) -> MediaEvent:
    media._refresh(participant)
    return ParticipantConnected(participant.identity, raw=participant)


def _left(media: LiveKitMedia, participant: rtc.RemoteParticipant) -> MediaEvent:
    media._remote.pop(participant.identity, None)
    return ParticipantDisconnected(participant.identity, raw=participant)


def _track_event(kind: type[TrackPublished | TrackUnpublished]) -> Callable[..., MediaEvent]:
    def handle(media: LiveKitMedia, publication: rtc.RemoteTrackPublication,
               participant: rtc.RemoteParticipant) -> MediaEvent:
        media._refresh(participant)
        return kind(participant.identity, track_view(publication), raw=publication)
    return handle


def _subscription(kind: type[TrackSubscribed | TrackUnsubscribed]) -> Callable[..., MediaEvent]:
    def handle(media: LiveKitMedia, track: rtc.Track | None,
               publication: rtc.RemoteTrackPublication,
               participant: rtc.RemoteParticipant) -> MediaEvent:
        media._refresh(participant)
        return kind(participant.identity, track_view(publication),
                    raw=(track, publication, participant))
    return handle


def _muted(media: LiveKitMedia, participant: rtc.Participant, _: Any) -> None:
    if isinstance(participant, rtc.RemoteParticipant):
        media._refresh(participant)


def _permissions_changed(media: LiveKitMedia, participant: rtc.Participant,
                         permission: ParticipantPermission) -> MediaEvent | None:
    if isinstance(participant, rtc.RemoteParticipant):
        media._refresh(participant)  # no core event for others' grants: view only
        return None
    permissions = permissions_of(permission)
    room = media._room
    for source, track in list(media._published.items()):
        if not permissions.allows(source):  # the server already took it down
            del media._published[source]
            media._retire(track, room)
    media._permissions = permissions
    return PermissionsChanged(permissions, raw=permission)


def _metadata(media: LiveKitMedia, old: str, new: str) -> MediaEvent:
    media._metadata = new
    return RoomMetadataChanged(new, raw=(old, new))


def _data(media: LiveKitMedia, packet: rtc.DataPacket) -> MediaEvent:
    sender = packet.participant.identity if packet.participant is not None else None
    return DataReceived(packet.data, sender, packet.topic or None, raw=packet)


def _speakers(media: LiveKitMedia, speakers: list[rtc.Participant]) -> MediaEvent:
    return ActiveSpeakersChanged(tuple(p.identity for p in speakers), raw=speakers)


def _connection(media: LiveKitMedia, state: rtc.ConnectionState.ValueType) -> MediaEvent | None:
    mapped = STATES.get(state)  # DISCONNECTED waits for "disconnected", which has a reason
    if mapped is None or mapped is media._state or media._state is ConnectionState.DISCONNECTED:
        return None
    media._state = mapped
    return ConnectionStateChanged(mapped, raw=state)


def _disconnected(media: LiveKitMedia,
                  reason: rtc.DisconnectReason.ValueType) -> MediaEvent | None:
    if media._state is ConnectionState.DISCONNECTED:
        return None
    media._lost()
    media._state = ConnectionState.DISCONNECTED
    return ConnectionStateChanged(ConnectionState.DISCONNECTED, reason_of(reason), raw=reason)


def _republished(media: LiveKitMedia, publication: rtc.LocalTrackPublication,
                 previous_sid: str) -> None:
    for track in media._published.values():  # a full reconnect re-issues our tracks' sids
        if track.sid == previous_sid:
            track.sid = publication.sid


def _subscription_failed(media: LiveKitMedia, participant: rtc.RemoteParticipant,
                         track_sid: str, error: str) -> None:
    logger.warning("subscribing to %s of %r failed: %s", track_sid, participant.identity, error)


HANDLERS: dict[EventTypes, Callable[..., MediaEvent | None]] = {
    "participant_connected": _joined,
    "participant_disconnected": _left,
    "track_published": _track_event(TrackPublished),
    "track_unpublished": _track_event(TrackUnpublished),
    "track_subscribed": _subscription(TrackSubscribed),
    "track_unsubscribed": _subscription(TrackUnsubscribed),
    "track_subscription_failed": _subscription_failed,
    "track_muted": _muted,
    "track_unmuted": _muted,
    "local_track_republished": _republished,
    "participant_permissions_changed": _permissions_changed,
    "room_metadata_changed": _metadata,
    "data_received": _data,
    "active_speakers_changed": _speakers,
    "connection_state_changed": _connection,
    "disconnected": _disconnected,
}

