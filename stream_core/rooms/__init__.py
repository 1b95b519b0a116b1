"""Authoritative rooms: the rules of calls, stages and seat grids, composed from the tables.

The engine keeps these as its source of truth; clients rebuild them from snapshots to
mirror the engine. Every mutator takes the acting identity and returns effects.

Names: a room method is named after the engine port operation it carries out
(``SeatRoom.take_seat`` is the row ``operations.TAKE_SEAT`` is ``session.take_seat``), so
one operation has one name from the session down to the room. The machines' triggers
(``occupy``, ``take``, ``kick``...) keep their own, shorter names on purpose: a trigger is
one move of one model, and a room operation composes several (``take_seat`` fires ``take``
on the participant's speaker model *and* ``occupy`` on a seat; ``lock_seat`` may fire
``kick`` and ``vacate`` before ``lock``), so the two vocabularies do not map one to one.
"""

from stream_core.rooms.calls import (
    DEFAULT_RING_TIMEOUT, CallLedger, apply_call, call_actors, call_publish_sources, expire_call,
)
from stream_core.rooms.hosting import (
    Room, admit, call_state, grant_for, new_room, restore_room, room_state,
    room_type,
)
from stream_core.rooms.presence import Presence, check_identity
from stream_core.rooms.seats import SeatRoom, check_seat_count, parse_seat_mode
from stream_core.rooms.stage import LiveStage

__all__ = ["CallLedger", "DEFAULT_RING_TIMEOUT", "apply_call", "expire_call", "call_actors",
           "call_publish_sources", "LiveStage",
           "SeatRoom", "Presence", "check_identity", "check_seat_count", "parse_seat_mode",
           "Room", "admit", "call_state", "grant_for", "new_room", "restore_room", "room_state",
           "room_type"]
