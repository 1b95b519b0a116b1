"""Authoritative rooms: the rules of calls, stages and seat grids, composed from the tables.

The engine keeps these as its source of truth; clients rebuild them from snapshots to
mirror the engine. Every mutator takes the acting identity and returns effects.
"""

from stream_core.rooms.calls import DEFAULT_RING_TIMEOUT, CallLedger, call_publish_sources
from stream_core.rooms.hosting import (
    ROOM_OPERATIONS, Room, admit, call_state, grant_for, new_room, restore_room, room_state,
    room_type,
)
from stream_core.rooms.presence import Presence, check_identity
from stream_core.rooms.seats import SeatRoom, check_seat_count, parse_seat_mode
from stream_core.rooms.stage import LiveStage

__all__ = ["CallLedger", "DEFAULT_RING_TIMEOUT", "call_publish_sources", "LiveStage",
           "SeatRoom", "Presence", "check_identity", "check_seat_count", "parse_seat_mode",
           "ROOM_OPERATIONS", "Room", "admit", "call_state", "grant_for", "new_room", "restore_room", "room_state",
           "room_type"]
