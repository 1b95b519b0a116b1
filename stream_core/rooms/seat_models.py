"""The parts a seat grid is made of: the models its two machines move, and its input checks.

A :class:`Seat` is a model of the seat table (one per seat), a :class:`Speaker` a model of
the speaker table (one per participant who requests, is invited or sits). They hold plain
data; :class:`~stream_core.rooms.seats.SeatRoom` moves them, only through the tables.
"""

from __future__ import annotations

from stream_core.errors import UTDStreamException
from stream_core.machines.seat import SeatState
from stream_core.machines.speaker import SPEAKER_PUBLISH, SpeakerState
from stream_core.models import MAX_SEATS, UTDSeatMode

__all__ = ["Seat", "Speaker", "check_seat_count", "parse_seat_mode", "seated_sources"]

_NOTHING: frozenset[str] = frozenset()


def check_seat_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEATS:
        raise UTDStreamException.invalid(
            f"seat_count must be an integer from 1 to {MAX_SEATS}", field="seat_count")
    return count


def parse_seat_mode(mode: object) -> UTDSeatMode:
    if isinstance(mode, UTDSeatMode):
        return mode
    try:
        return UTDSeatMode(mode)
    except ValueError:
        raise UTDStreamException.invalid(
            "seat_mode must be 'free' or 'request'", field="seat_mode") from None


def seated_sources(state: SpeakerState, seat_muted: bool) -> frozenset[str]:
    """A seated participant publishes what its role grants, unless the host muted the seat."""
    return _NOTHING if seat_muted else SPEAKER_PUBLISH.get(state, _NOTHING)


class Seat:
    state: SeatState

    def __init__(self, index: int) -> None:
        self.index = index
        self.occupant: str | None = None
        self.muted = False

    def __repr__(self) -> str:
        return f"<Seat {self.index} {self.state.value} {self.occupant or ''}>"


class Speaker:
    state: SpeakerState

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.seat: int | None = None
        self.request_id: int | None = None
        self.wanted_seat: int | None = None  # requested or invited seat

    def __repr__(self) -> str:
        return f"<Speaker {self.identity} {self.state.value} seat={self.seat}>"
