"""What every engine does with rooms, whatever it stores them in.

The in-memory fake engine and the reference engine both admit participants, grant media
permissions and push state through these functions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from stream_core.effects import Effect
from stream_core.errors import UTDStreamException
from stream_core.models import (
    UTDCall, UTDPermissions, UTDSeatGrid, UTDSeatMode, UTDStage, UTDStreamType,
)
from stream_core.rooms.seats import SeatRoom, check_seat_count, parse_seat_mode
from stream_core.rooms.stage import LiveStage

__all__ = ["Room", "new_room", "room_type", "snapshot_type", "room_class",
           "snapshot_publish_sources", "publishers", "members", "join_audience", "restore_room", "admit", "grant_for",
           "room_state", "call_state"]

Room = SeatRoom | LiveStage

def new_room(stream_type: UTDStreamType, room_name: str) -> Room:
    """An empty room of a product that has rooms (audio room or live stream)."""
    if stream_type is UTDStreamType.AUDIO_ROOM:
        return SeatRoom(room_name)
    if stream_type is UTDStreamType.LIVE_STREAM:
        return LiveStage(room_name)
    raise UTDStreamException.invalid(
        "room tokens are for live_stream and audio_room; calls use create_call",
        field="stream_type")


def room_type(room: Room) -> UTDStreamType:
    return UTDStreamType.AUDIO_ROOM if isinstance(room, SeatRoom) else UTDStreamType.LIVE_STREAM


def snapshot_type(snapshot: UTDSeatGrid | UTDStage) -> UTDStreamType:
    """The product a room snapshot belongs to."""
    return UTDStreamType.AUDIO_ROOM if isinstance(snapshot, UTDSeatGrid) else \
        UTDStreamType.LIVE_STREAM


def room_class(stream_type: UTDStreamType) -> type[Room]:
    """The room class of a product that has rooms."""
    return SeatRoom if stream_type is UTDStreamType.AUDIO_ROOM else LiveStage


def publishers(snapshot: UTDSeatGrid | UTDStage) -> tuple[str, ...]:
    """Who holds a publishing place (a seat, a place on stage; the host's is its own)."""
    if isinstance(snapshot, UTDSeatGrid):
        return snapshot.speakers
    return tuple(m.identity for m in snapshot.members if m.identity != snapshot.host)


def snapshot_publish_sources(snapshot: UTDSeatGrid | UTDStage,
                             identity: str) -> frozenset[str]:
    """What ``identity`` may publish per a committed snapshot, without rebuilding the room."""
    if isinstance(snapshot, UTDSeatGrid):
        return SeatRoom.grid_publish_sources(snapshot, identity)
    return LiveStage.stage_publish_sources(snapshot, identity)


def restore_room(snapshot: UTDSeatGrid | UTDStage, present: dict[str, str | None],
                 banned: set[str], seen: Mapping[str, Sequence[Any]] | None = None) -> Room:
    """The room a store kept; ``seen`` is its members' :meth:`Presence.seen
    <stream_core.rooms.presence.Presence.seen>` (``None`` for a room stored without it)."""
    room: Room
    if isinstance(snapshot, UTDSeatGrid):
        room = SeatRoom.restore(snapshot, present, banned)
    else:
        room = LiveStage.restore(snapshot, present, banned)
    room.presence.restore_seen(seen)
    return room


def admit(room: Room, identity: str, *, stream_type: UTDStreamType, as_host: bool,
          name: str | None = None, seat_count: int | None = None,
          seat_mode: UTDSeatMode | str | None = None) -> list[Effect]:
    """Let ``identity`` into ``room`` (a host may seed the seats); all or nothing."""
    if room_type(room) is not stream_type:
        raise UTDStreamException.conflict(
            f"room {room.room_name!r} is a {room_type(room).value}, not a {stream_type.value}")
    seeding = seat_count is not None or seat_mode is not None
    if seeding and not as_host:
        raise UTDStreamException.forbidden("only a host may set up seats")
    if seeding and not isinstance(room, SeatRoom):
        raise UTDStreamException.invalid("only audio rooms have seats", field="seat_count")
    if seat_count is not None:
        check_seat_count(seat_count)
    mode = None if seat_mode is None else parse_seat_mode(seat_mode)
    if isinstance(room, SeatRoom) and seeding:
        # rehearse on a copy: the host's join must not stick if the set-up is refused
        trial = SeatRoom.restore(room.snapshot(), dict(room.presence.present),
                                 set(room.presence.banned))
        trial.join(identity, as_host=as_host, name=name)
        trial.setup_seats(identity, seat_count=seat_count, seat_mode=mode)
        return room.join(identity, as_host=as_host, name=name) + \
            room.setup_seats(identity, seat_count=seat_count, seat_mode=mode)
    return room.join(identity, as_host=as_host, name=name)


def grant_for(sources: frozenset[str], *, hidden: bool = False) -> UTDPermissions:
    """The media permission that lets a participant publish exactly ``sources`` (and, while
    ``hidden``, keeps it out of the others' sight)."""
    return UTDPermissions(can_publish=bool(sources), sources=tuple(sorted(sources)),
                          hidden=hidden)


def room_state(room: Room, audience: int | None = None) -> dict[str, Any]:
    """The ``RoomStateSchema`` document an engine pushes into a room's media metadata: the
    room's whole state, and how many are present (a count: audiences are never listed)."""
    snapshot = room.snapshot()
    kind = "seats" if isinstance(room, SeatRoom) else "stage"
    return {"kind": kind, "version": snapshot.version, kind: snapshot, "audience": audience}


def members(snapshot: UTDSeatGrid | UTDStage) -> set[str]:
    """Who the room's state names (host, seats, requests, invitations; stage and hands):
    the participants whose presence the room keeps itself. Everyone else present is the
    audience, kept one row each beside the room, so a viewer's join or leave never touches
    the room's state."""
    if isinstance(snapshot, UTDSeatGrid):
        named = {s.occupant for s in snapshot.seats if s.occupant}
        named |= {r.identity for r in snapshot.requests} | set(snapshot.invites)
    else:
        named = {m.identity for m in snapshot.members} | set(snapshot.hands)
    return named | ({snapshot.host} if snapshot.host else set())


def join_audience(kind: UTDStreamType, stream_type: UTDStreamType, banned: bool) -> None:
    """A plain viewer's or listener's join (no host, no set-up): the room must be of the
    product asked for and the identity not banned; nothing else about the room changes."""
    if kind is not stream_type:
        raise UTDStreamException.conflict(f"this room is a {kind.value}, not a "
                                          f"{stream_type.value}")
    if banned:
        raise UTDStreamException.banned()


def call_state(call: UTDCall, version: int) -> dict[str, Any]:
    """The ``RoomStateSchema`` document for a call room (tokens never included)."""
    return {"kind": "call", "version": version, "call": replace(call, token=None, url=None)}
