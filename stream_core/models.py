"""Value types the SDK hands to apps and the engine hands to the SDK.

All are immutable: state changes arrive as new values (a new ``UTDSeatGrid``, a new
``UTDCall``), which is what makes them safe to publish through observables and compare for
change. Wire (JSON) forms live in :mod:`stream_core.wire`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_SEATS",
    "UTDStreamType",
    "UTDCallStatus",
    "UNANSWERED_CALL_STATUSES",
    "TERMINAL_CALL_STATUSES",
    "UTDSeatMode",
    "UTDParticipantRole",
    "UTDTokenResponse",
    "UTDCall",
    "UTDStageMember",
    "UTDStage",
    "UTDSeat",
    "UTDSeatGrid",
    "UTDSpeakRequest",
    "UTDTrack",
    "UTDRemoteParticipant",
    "UTDPermissions",
]

#: The largest seat grid the engine accepts (and the core validates).
MAX_SEATS = 64


class UTDStreamType(enum.Enum):
    """The four products. ``value`` is the wire value."""

    AUDIO_CALL = "audio_call"
    VIDEO_CALL = "video_call"
    LIVE_STREAM = "live_stream"
    AUDIO_ROOM = "audio_room"

    @property
    def is_call(self) -> bool:
        return self in (UTDStreamType.AUDIO_CALL, UTDStreamType.VIDEO_CALL)

    @property
    def has_video(self) -> bool:
        return self in (UTDStreamType.VIDEO_CALL, UTDStreamType.LIVE_STREAM)


class UTDCallStatus(enum.Enum):
    """Lifecycle of a 1:1 call, mirroring the engine's call states."""

    INITIATING = "initiating"
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"
    REJECTED = "rejected"
    BUSY = "busy"
    MISSED = "missed"

    @property
    def is_terminal(self) -> bool:
        """Over for good: no row of the call table leaves this status."""
        return self in TERMINAL_CALL_STATUSES

    @property
    def is_unanswered(self) -> bool:
        """Still ringing: the callee may accept, the ring deadline may pass."""
        return self in UNANSWERED_CALL_STATUSES


#: The one definition of these two groups (``machines.call`` re-exports them as
#: ``UNANSWERED`` / ``TERMINAL``; a store filtering by wire value uses ``s.value``).
UNANSWERED_CALL_STATUSES: tuple[UTDCallStatus, ...] = (UTDCallStatus.INITIATING,
                                                      UTDCallStatus.RINGING)
TERMINAL_CALL_STATUSES: tuple[UTDCallStatus, ...] = (
    UTDCallStatus.ENDED, UTDCallStatus.REJECTED, UTDCallStatus.BUSY, UTDCallStatus.MISSED)


class UTDSeatMode(enum.Enum):
    """``FREE``: any listener takes an empty seat. ``REQUEST``: listeners ask, a host approves."""

    FREE = "free"
    REQUEST = "request"


class UTDParticipantRole(enum.Enum):
    """Who a participant is in a room, as granted by the engine at token mint."""

    HOST = "host"
    AUDIENCE = "audience"


@dataclass(frozen=True, slots=True)
class UTDTokenResponse:
    """Result of a room token mint: LiveKit ``token`` + ``url`` and the engine bearer.

    ``state_version`` is the room's state version the mint committed (``None`` from an
    engine that does not say): a joiner takes its first state from the room metadata it
    receives at connect when that is at least this new, and asks the engine otherwise.
    ``repr`` hides both tokens: they are secrets of this participant and must not reach logs.
    """

    token: str = field(repr=False)
    url: str
    room_name: str
    user_token: str = field(repr=False)
    ws_url: str | None = None
    state_version: int | None = None


@dataclass(frozen=True, slots=True)
class UTDCall:
    """A 1:1 call as the engine reports it. ``token``/``url`` are set for a party joining."""

    call_id: str
    status: UTDCallStatus
    type: UTDStreamType
    caller_identity: str
    callee_identity: str
    room_name: str | None = None
    caller_name: str | None = None
    callee_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    ring_deadline: float | None = None
    ended_by: str | None = None
    token: str | None = field(default=None, repr=False)
    url: str | None = None


@dataclass(frozen=True, slots=True)
class UTDStageMember:
    """A publisher of a live stream: the host or a co-publisher."""

    identity: str
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class UTDStage:
    """A live stream's stage: ``members`` publish, ``hands`` are viewers asking to join."""

    room_name: str
    host: str | None
    members: tuple[UTDStageMember, ...] = ()
    hands: tuple[str, ...] = ()
    version: int = 0


@dataclass(frozen=True, slots=True)
class UTDSeat:
    """One seat of an audio room. ``occupant`` is the speaking identity or ``None``."""

    index: int
    occupant: str | None = None
    locked: bool = False
    muted: bool = False


@dataclass(frozen=True, slots=True)
class UTDSpeakRequest:
    """A listener's pending request to speak (request mode)."""

    request_id: int
    identity: str
    seat_index: int | None = None


@dataclass(frozen=True, slots=True)
class UTDSeatGrid:
    """An audio room's whole seat state; ``version`` grows with every change."""

    room_name: str
    host: str | None
    mode: UTDSeatMode
    seats: tuple[UTDSeat, ...] = ()
    requests: tuple[UTDSpeakRequest, ...] = ()
    invites: dict[str, int | None] = field(default_factory=dict)
    version: int = 0
    mode_id: str | None = None  # the app's own name for the mode (never interpreted)

    @property
    def seat_count(self) -> int:
        return len(self.seats)

    def seat_of(self, identity: str) -> int | None:
        """Index of the seat ``identity`` occupies, or ``None``."""
        for seat in self.seats:
            if seat.occupant == identity:
                return seat.index
        return None

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(s.occupant for s in self.seats if s.occupant is not None)


@dataclass(frozen=True, slots=True)
class UTDTrack:
    """A published track as seen by the media layer."""

    sid: str
    kind: str  # "audio" | "video"
    source: str  # "microphone" | "camera" | ...
    muted: bool = False
    subscribed: bool = False


@dataclass(frozen=True, slots=True)
class UTDRemoteParticipant:
    """A remote participant of the media room, with what it publishes."""

    identity: str
    name: str | None = None
    tracks: tuple[UTDTrack, ...] = ()
    can_publish: bool = False
    metadata: str = ""

    def has_track(self, source: str) -> bool:
        return any(t.source == source for t in self.tracks)


@dataclass(frozen=True, slots=True)
class UTDPermissions:
    """What the media server currently lets this participant do."""

    can_publish: bool = False
    can_subscribe: bool = True
    can_publish_data: bool = True
    sources: tuple[str, ...] = ()
    hidden: bool = False  # others do not see this participant (yet): the engine admits it

    def allows(self, source: str) -> bool:
        """True if ``source`` may be published (an empty source list means any source)."""
        return self.can_publish and (not self.sources or source in self.sources)
