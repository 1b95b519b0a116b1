"""What an authoritative change asks the outside world to do.

The rooms of :mod:`stream_core.rooms` return these instead of doing anything: the engine
turns ``PublishChanged`` into a LiveKit ``UpdateParticipant``; a client session that sees
its own ``PublishChanged`` turns its microphone and camera on or off. One mechanism, two
runtimes, no I/O in the core.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Effect", "PublishChanged", "ParticipantRemoved", "RoomClosed"]


@dataclass(frozen=True, slots=True)
class PublishChanged:
    """``identity`` may now publish ``after`` (was ``before``); empty means nothing."""

    room_name: str
    identity: str
    before: frozenset[str]
    after: frozenset[str]

    @property
    def revoked(self) -> frozenset[str]:
        return self.before - self.after

    @property
    def granted(self) -> frozenset[str]:
        return self.after - self.before


@dataclass(frozen=True, slots=True)
class ParticipantRemoved:
    """Remove ``identity`` from the media room (kicked with a ban)."""

    room_name: str
    identity: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoomClosed:
    """The room has no purpose left (a call ended): close it on the media server."""

    room_name: str


Effect = PublishChanged | ParticipantRemoved | RoomClosed
