"""``MemoryStore``: the engine service's store in memory (the fake engine's database).

It keeps what the SQL store keeps (rooms as committed values, calls, row versions) with
the same promises: ``change`` runs under one lock, so one seat race has one winner; a
``change`` that raises writes nothing (the room is rebuilt from its last committed value);
reads return values, never the live room.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from stream_core.errors import UTDStreamException
from stream_core.machines.call import UNANSWERED
from stream_core.models import UTDCall, UTDCallStatus
from stream_core.ports import MediaEffect, RoomView, StorePort, WebhookEvent
from stream_core.models import UTDStreamType
from stream_core.rooms import Room, restore_room
from stream_core.rooms.hosting import members, snapshot_type

__all__ = ["MemoryStore"]

T = TypeVar("T")


def _no_effects(*_: object) -> Sequence[MediaEffect]:
    return ()


@dataclass(slots=True)
class _RoomRow:
    view: RoomView
    room: Room  # the live object: only ever touched under the store's lock
    version: int
    seen: dict[str, list[Any]] = field(default_factory=dict)  # its members', as committed


@dataclass(slots=True)
class _CallRow:
    app_id: str
    livekit_name: str
    call: UTDCall
    version: int


class MemoryStore:
    """Rooms and calls in dictionaries, one lock around every change."""

    shared = False  # one process: its outbox and events need no leases

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._outbox: list[MediaEffect] = []
        self._seq = itertools.count(1)
        self._events: dict[str, WebhookEvent] = {}  # by event id, kept to refuse replays
        self._updated: dict[str, float] = {}  # media room -> when the room last changed
        self._unapplied: set[str] = set()
        self._due: dict[int, float] = {}  # outbox seq -> not before (after a failure)
        self._rooms: dict[tuple[str, str], _RoomRow] = {}
        self._room_names: dict[str, tuple[str, str]] = {}
        self._calls: dict[str, _CallRow] = {}
        self._call_names: dict[str, tuple[str, str]] = {}

    # -- rooms ----------------------------------------------------------------------
    def read_room(self, app_id: str, name: str, identity: str | None = None
                  ) -> RoomView | None:
        with self._lock:
            row = self._rooms.get((app_id, name))
            return None if row is None else row.view

    def knows_room(self, app_id: str, name: str) -> bool:
        with self._lock:
            return (app_id, name) in self._rooms

    def room_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None:
        with self._lock:
            return self._room_names.get(livekit_name)

    def mutate_room(self, app_id: str, name: str, livekit_name: str,
                    change: Callable[[Room | None], tuple[Room, T]],
                    effects: Callable[[T], Sequence[MediaEffect]] = _no_effects,
                    involved: Collection[str] = ()) -> T:
        with self._lock:
            row = self._rooms.get((app_id, name))
            try:
                room, result = change(None if row is None else row.room)
            except BaseException:
                if row is not None:  # never keep an object a refused change touched
                    row.room = _rebuild(row.view, row.seen)
                raise
            snapshot = room.snapshot()
            room.presence.keep_seen(members(snapshot))  # as the SQL store keeps them
            view = RoomView(app_id, name, livekit_name, snapshot,
                            dict(room.presence.present), frozenset(room.presence.banned))
            self._rooms[(app_id, name)] = _RoomRow(view, room, 1 if row is None else
                                                   row.version + 1, room.presence.seen())
            self._room_names[livekit_name] = (app_id, name)
            self._queue(effects(result))
            self._updated[livekit_name] = self._clock()
            return result

    # -- the audience (kept in the room here: a fake need not scale) -------------------
    def join_audience(self, app_id: str, name: str, identity: str, display: str | None,
                      decide: Callable[[UTDStreamType, bool], None]) -> int | None:
        with self._lock:
            row = self._rooms.get((app_id, name))
            if row is None or identity in members(row.view.snapshot):
                return None
            decide(snapshot_type(row.view.snapshot), identity in row.view.banned)
            row.room.presence.present[identity] = display
            row.view = replace(row.view, present={**row.view.present, identity: display})
            return row.view.snapshot.version

    def leave_audience(self, app_id: str, name: str, identity: str) -> bool | None:
        with self._lock:
            row = self._rooms.get((app_id, name))
            if row is None or identity not in row.room.presence.present:
                return None
            if identity in members(row.view.snapshot):
                return False
            del row.room.presence.present[identity]
            row.view = replace(row.view, present=dict(row.room.presence.present))
            return True

    def audience_size(self, app_id: str, name: str) -> int:
        with self._lock:
            row = self._rooms.get((app_id, name))
            return 0 if row is None else len(row.room.presence.present)

    def clear_audience(self, app_id: str, name: str) -> None:
        with self._lock:
            row = self._rooms.get((app_id, name))
            if row is not None:
                named = members(row.view.snapshot)
                for identity in [i for i in row.room.presence.present if i not in named]:
                    del row.room.presence.present[identity]
                row.view = replace(row.view, present=dict(row.room.presence.present))

    # -- calls ----------------------------------------------------------------------
    def insert_call(self, app_id: str, livekit_name: str, call: UTDCall,
                    effects: Sequence[MediaEffect] = ()) -> None:
        with self._lock:
            self._queue(effects)
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
                    change: Callable[[UTDCall], tuple[UTDCall, T]],
                    effects: Callable[[UTDCall, T, int], Sequence[MediaEffect]] = _no_effects,
                    ) -> tuple[UTDCall, T, int]:
        with self._lock:
            row = self._row(app_id, call_id)
            call, result = change(row.call)
            row.call, row.version = _stored(call), row.version + 1
            self._queue(effects(row.call, result, row.version))
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

    # -- the outbox, leases, the inbox --------------------------------------------------
    def pending_effects(self, room: str, now: float, limit: int) -> list[MediaEffect]:
        with self._lock:
            mine = [e for e in self._outbox if e.room == room][:limit]
        return mine if mine and self._due.get(mine[0].seq, 0.0) <= now else []

    def settle_effects(self, done: Sequence[int], failed: MediaEffect | None = None,
                       retry_at: float = 0.0) -> None:
        with self._lock:
            gone = set(done)
            self._outbox = [e for e in self._outbox if e.seq not in gone]
            if failed is not None:
                self._outbox = [replace(e, attempts=e.attempts + 1) if e.seq == failed.seq
                                else e for e in self._outbox]
                self._due[failed.seq] = retry_at

    def rooms_with_due_effects(self, now: float, limit: int) -> list[str]:
        with self._lock:
            firsts: dict[str, MediaEffect] = {}
            for effect in self._outbox:
                firsts.setdefault(effect.room, effect)
            return [room for room, e in firsts.items() if self._due.get(e.seq, 0.0) <= now][:limit]

    def lease(self, key: str, owner: str, now: float, seconds: float) -> bool:
        return True  # one process: the service's own locks suffice

    def release(self, key: str, owner: str) -> None:
        return None

    def record_webhook(self, event: WebhookEvent, now: float) -> bool:
        with self._lock:
            if event.event_id in self._events:
                return False
            self._events[event.event_id] = replace(event, seq=next(self._seq))
            self._unapplied.add(event.event_id)
            return True

    def pending_webhooks(self, limit: int, room: str | None = None) -> list[WebhookEvent]:
        with self._lock:
            found = [self._events[i] for i in self._unapplied
                     if room is None or self._events[i].room == room]
        return sorted(found, key=lambda e: e.seq)[:limit]

    def webhook_applied(self, seq: int) -> None:
        with self._lock:
            self._unapplied = {i for i in self._unapplied if self._events[i].seq != seq}

    def active_rooms(self, since: float, limit: int) -> list[str]:
        with self._lock:
            recent = sorted(((t, r) for r, t in self._updated.items() if t >= since),
                            reverse=True)
        return [room for _, room in recent[:limit]]

    def close(self) -> None:
        """Nothing to release: memory goes with the object."""

    def _queue(self, effects: Sequence[MediaEffect]) -> None:
        self._outbox.extend(replace(e, seq=next(self._seq)) for e in effects)

    def __repr__(self) -> str:
        return f"<MemoryStore rooms={len(self._rooms)} calls={len(self._calls)}>"

    def _row(self, app_id: str, call_id: str) -> _CallRow:
        row = self._calls.get(call_id)
        if row is None or row.app_id != app_id:
            raise UTDStreamException.not_found(f"unknown call {call_id!r}")
        return row


def _rebuild(view: RoomView, seen: dict[str, list[Any]]) -> Room:
    return restore_room(view.snapshot, dict(view.present), set(view.banned), seen)


def _stored(call: UTDCall) -> UTDCall:
    return replace(call, token=None, url=None)  # tokens are minted per request, never kept


if TYPE_CHECKING:
    _: type[StorePort] = MemoryStore
