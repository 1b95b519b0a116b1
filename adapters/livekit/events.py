"""Translation from ``livekit.rtc`` objects to core values: names, views, reasons.

Pure functions and tables, no state: :mod:`adapters.livekit.media` keeps the connection and
its event dispatch, this module only says what an rtc object means in core terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livekit import rtc

from stream_core.events import ConnectionState
from stream_core.models import UTDPermissions, UTDRemoteParticipant, UTDTrack

if TYPE_CHECKING:
    from livekit.rtc._proto.participant_pb2 import ParticipantPermission

__all__ = ["KIND_NAMES", "SOURCE_NAMES", "PUBLISH_SOURCES", "STATES", "track_view",
           "participant_view", "permissions_of", "reason_of"]

KIND_NAMES = {rtc.TrackKind.KIND_AUDIO: "audio", rtc.TrackKind.KIND_VIDEO: "video"}
SOURCE_NAMES = {
    rtc.TrackSource.SOURCE_MICROPHONE: "microphone", rtc.TrackSource.SOURCE_CAMERA: "camera",
    rtc.TrackSource.SOURCE_SCREENSHARE: "screen_share",
    rtc.TrackSource.SOURCE_SCREENSHARE_AUDIO: "screen_share_audio",
}
_REASONS = {
    rtc.DisconnectReason.DUPLICATE_IDENTITY: "duplicate_identity",
    rtc.DisconnectReason.PARTICIPANT_REMOVED: "removed",
    rtc.DisconnectReason.ROOM_DELETED: "room_deleted",
    rtc.DisconnectReason.CLIENT_INITIATED: "client_initiated",
}
STATES = {rtc.ConnectionState.CONN_CONNECTED: ConnectionState.CONNECTED,
          rtc.ConnectionState.CONN_RECONNECTING: ConnectionState.RECONNECTING}

PUBLISH_SOURCES = {"microphone": rtc.TrackSource.SOURCE_MICROPHONE,
                   "camera": rtc.TrackSource.SOURCE_CAMERA}


def track_view(publication: rtc.TrackPublication) -> UTDTrack:
    subscribed = isinstance(publication, rtc.RemoteTrackPublication) and publication.subscribed
    return UTDTrack(sid=publication.sid, kind=KIND_NAMES.get(publication.kind, "unknown"),
                    source=SOURCE_NAMES.get(publication.source, "unknown"),
                    muted=publication.muted, subscribed=subscribed)


def participant_view(participant: rtc.RemoteParticipant) -> UTDRemoteParticipant:
    return UTDRemoteParticipant(
        identity=participant.identity, name=participant.name or None,
        tracks=tuple(track_view(p) for p in participant.track_publications.values()),
        can_publish=participant.permissions.can_publish, metadata=participant.metadata)


def permissions_of(permission: ParticipantPermission) -> UTDPermissions:
    return UTDPermissions(
        can_publish=permission.can_publish, can_subscribe=permission.can_subscribe,
        can_publish_data=permission.can_publish_data,
        sources=tuple(SOURCE_NAMES.get(s, "unknown") for s in permission.can_publish_sources))


def reason_of(reason: rtc.DisconnectReason.ValueType) -> str:
    if reason in _REASONS:
        return _REASONS[reason]
    try:
        return rtc.DisconnectReason.Name(reason).lower()
    except ValueError:
        return f"unknown_{reason}"
