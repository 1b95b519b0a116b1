"""``MemoryStore``: the engine service's store in memory (the fake engine's database).

It keeps what the SQL store keeps (rooms as committed values, calls, row versions) with
the same promises: ``change`` runs under one lock, so one seat race has one winner; a
``change`` that raises writes nothing (the room is rebuilt from its last committed value);
reads return values, never the live room.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from stream_core.errors import UTDStreamException
from stream_core.machines.call import UNANSWERED
from stream_core.models import UTDCall, UTDCallStatus
from stream_core.ports import RoomView, StorePort
from stream_core.rooms import Room, restore_room

__all__ = ["MemoryStore"]

T = TypeVar("T")


@dataclass(slots=True)
class _RoomRow:
    view: RoomView
    room: Room  # the live object: only ever touched under the store's lock
    version: int


@dataclass(slots=True)
class _CallRow:
    app_id: str
    livekit_name: str
    call: UTDCall
    version: int


class MemoryStore:
    """Rooms and calls in dictionaries, one lock around every change."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rooms: dict[tuple[str, str], _RoomRow] = {}
        self._room_names: dict[str, tuple[str, str]] = {}
        self._calls: dict[str, _CallRow] = {}
        self._call_names: dict[str, tuple[str, str]] = {}

    # -- rooms ----------------------------------------------------------------------
    def read_room(self, app_id: str, name: str) -> RoomView | None:
        with self._lock:
            row = self._rooms.get((app_id, name))
            return None if row is None else row.view

    def room_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None:
        with self._lock:
            return self._room_names.get(livekit_name)

    def mutate_room(self, app_id: str, name: str, livekit_name: str,
                    change: Callable[[Room | None], tuple[Room, T]]) -> T:
        with self._lock:
            row = self._rooms.get((app_id, name))
            try:
                room, result = change(None if row is None else row.room)
            except BaseException:
                if row is not None:  # never keep an object a refused change touched
                    row.room = _rebuild(row.view)
                raise
            view = RoomView(app_id, name, livekit_name, room.snapshot(),
                            dict(room.presence.present), frozenset(room.presence.banned))
            self._rooms[(app_id, name)] = _RoomRow(view, room, 1 if row is None else
                                                   row.version + 1)
            self._room_names[livekit_name] = (app_id, name)
            return result

    # -- calls ----------------------------------------------------------------------
    def insert_call(self, app_id: str, livekit_name: str, call: UTDCall) -> None:
        with self._lock:
            if call.call_id in self._calls:
                raise UTDStreamException.conflict(f"call {call.call_id!r} already exists")
            self._calls[call.call_id] = _CallRow(app_id, livekit_name, _stored(call), 1)
            self._call_names[livekit_name] = (app_id, call.call_id)

    def read_call(self, app_id: str, call_id: str) -> UTDCall:
        with self._lock:
            return self._row(app_id, call_id).call

    def call_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None:
        with self._lock:
            return self._call_names.get(livekit_name)

    def mutate_call(self, app_id: str, call_id: str,
                    change: Callable[[UTDCall], tuple[UTDCall, T]]) -> tuple[UTDCall, T, int]:
        with self._lock:
            row = self._row(app_id, call_id)
            call, result = change(row.call)
            row.call, row.version = _stored(call), row.version + 1
            return row.call, result, row.version

    def incoming_calls(self, app_id: str, callee: str) -> list[UTDCall]:
        with self._lock:
            found = [r.call for r in self._calls.values() if r.app_id == app_id
                     and r.call.callee_identity == callee and r.call.status in UNANSWERED]
        return sorted(found, key=lambda c: c.created_at)

    def next_ring_deadline(self) -> float | None:
        with self._lock:
            return min((r.call.ring_deadline for r in self._calls.values()
                        if r.call.status in UNANSWERED and r.call.ring_deadline is not None),
                       default=None)

    def due_calls(self, now: float) -> list[tuple[str, str]]:
        with self._lock:
            return [(r.app_id, r.call.call_id) for r in self._calls.values()
                    if r.call.status in UNANSWERED and r.call.ring_deadline is not None
                    and r.call.ring_deadline <= now]

    def live_rooms(self, limit: int) -> list[RoomView]:
        with self._lock:
            found = [r.view for r in self._rooms.values() if r.view.present]
        return sorted(found, key=lambda v: (v.app_id, v.name))[:limit]

    def live_calls(self, limit: int) -> list[tuple[str, UTDCall]]:
        with self._lock:
            found = [(r.app_id, r.call) for r in self._calls.values()
                     if r.call.status in UNANSWERED or r.call.status is UTDCallStatus.ACTIVE]
        return sorted(found, key=lambda pair: pair[1].created_at)[:limit]

    def close(self) -> None:
        """Nothing to release: memory goes with the object."""

    def __repr__(self) -> str:
        return f"<MemoryStore rooms={len(self._rooms)} calls={len(self._calls)}>"

    def _row(self, app_id: str, call_id: str) -> _CallRow:
        row = self._calls.get(call_id)
        if row is None or row.app_id != app_id:
            raise UTDStreamException.not_found(f"unknown call {call_id!r}")
        return row


def _rebuild(view: RoomView) -> Room:
    return restore_room(view.snapshot, dict(view.present), set(view.banned))


def _stored(call: UTDCall) -> UTDCall:
    return replace(call, token=None, url=None)  # tokens are minted per request, never kept


if TYPE_CHECKING:
    _: type[StorePort] = MemoryStore
