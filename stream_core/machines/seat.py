"""Occupancy of one seat of an audio room.

Rules of this file:
* An empty seat is occupied by one speaker and vacated when that speaker leaves, is kicked
  or moves away; the coordinator (``rooms.seats``) decides who may make those moves.
* Only the host locks and unlocks. Locking an occupied seat vacates it (its speaker goes
  back to listening); a locked seat cannot be occupied.
"""

from __future__ import annotations

import enum

from stream_core.machines.table import Actor, Rule, Table

__all__ = ["SeatState", "SEAT_RULES", "SEAT_TABLE"]


class SeatState(enum.Enum):
    EMPTY = "empty"
    OCCUPIED = "occupied"
    LOCKED = "locked"


SEAT_RULES: tuple[Rule[SeatState], ...] = (
    Rule("occupy", (SeatState.EMPTY,), SeatState.OCCUPIED, Actor.ANY),
    Rule("vacate", (SeatState.OCCUPIED,), SeatState.EMPTY, Actor.ANY),
    Rule("lock", (SeatState.EMPTY, SeatState.OCCUPIED), SeatState.LOCKED, Actor.HOST,
         "locking an occupied seat sends its speaker back to listening"),
    Rule("unlock", (SeatState.LOCKED,), SeatState.EMPTY, Actor.HOST),
)

SEAT_TABLE = Table("seat", SeatState, SeatState.EMPTY, SEAT_RULES)
