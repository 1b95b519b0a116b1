"""Media events, in core types: what a media backend reports and sessions re-expose.

Every event keeps the backend's own event object in ``raw`` (a ``livekit.rtc`` event for the
real adapter, ``None`` for the fake), so apps that want the full firehose still have it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from stream_core.models import UTDPermissions, UTDTrack

__all__ = [
    "ConnectionState", "MediaEvent", "ConnectionStateChanged", "ParticipantConnected",
    "ParticipantDisconnected", "TrackPublished", "TrackUnpublished", "TrackSubscribed",
    "TrackUnsubscribed", "PermissionsChanged", "RoomMetadataChanged", "DataReceived",
    "ActiveSpeakersChanged", "RecoveryEvent", "SessionResynced", "RejoinScheduled",
    "Rejoined", "RejoinAbandoned",
]


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class MediaEvent:
    raw: object | None = field(default=None, kw_only=True, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ConnectionStateChanged(MediaEvent):
    state: ConnectionState
    reason: str | None = None  # why we disconnected: "duplicate_identity", "removed", ...


@dataclass(frozen=True, slots=True)
class ParticipantConnected(MediaEvent):
    identity: str


@dataclass(frozen=True, slots=True)
class ParticipantDisconnected(MediaEvent):
    identity: str


@dataclass(frozen=True, slots=True)
class TrackPublished(MediaEvent):
    identity: str
    track: UTDTrack


@dataclass(frozen=True, slots=True)
class TrackUnpublished(MediaEvent):
    identity: str
    track: UTDTrack


@dataclass(frozen=True, slots=True)
class TrackSubscribed(MediaEvent):
    identity: str
    track: UTDTrack


@dataclass(frozen=True, slots=True)
class TrackUnsubscribed(MediaEvent):
    identity: str
    track: UTDTrack


@dataclass(frozen=True, slots=True)
class PermissionsChanged(MediaEvent):
    permissions: UTDPermissions


@dataclass(frozen=True, slots=True)
class RoomMetadataChanged(MediaEvent):
    metadata: str


@dataclass(frozen=True, slots=True)
class DataReceived(MediaEvent):
    data: bytes
    sender: str | None
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveSpeakersChanged(MediaEvent):
    identities: tuple[str, ...]


# -- a session's own recovery (stream_core.sessions.recovery), on the same stream ---------
@dataclass(frozen=True, slots=True)
class RecoveryEvent(MediaEvent):
    """Base of what a session reports about its own recovery (``raw`` is always None)."""


@dataclass(frozen=True, slots=True)
class SessionResynced(RecoveryEvent):
    """After the media server's resume or reconnect, the session reread the engine's state
    and its media follows it again (``publishing``: what it publishes now)."""

    publishing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RejoinScheduled(RecoveryEvent):
    """The media connection was lost for good (``reason``); attempt ``attempt`` to rejoin
    with a fresh token starts in ``delay`` seconds."""

    attempt: int
    delay: float
    reason: str | None


@dataclass(frozen=True, slots=True)
class Rejoined(RecoveryEvent):
    """The session is back in its room after ``attempts`` tries, ``downtime`` seconds after
    the loss, its state reread and its media following it."""

    attempts: int
    downtime: float


@dataclass(frozen=True, slots=True)
class RejoinAbandoned(RecoveryEvent):
    """The session stopped trying: the engine refused for good (banned, room gone, ...);
    ``code`` is the refusal's. The session stays disconnected; ``rejoin()`` may be called."""

    attempts: int
    code: str | None
    message: str
