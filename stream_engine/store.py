"""The engine's database (the SQL :class:`~stream_core.ports.StorePort`): rooms and calls,
every change committed before it is announced.

SQLAlchemy Core over SQLite (default, a file) or PostgreSQL (by URL), same code; the
schema is upgraded by :mod:`stream_engine.migrations` when a store opens. A room is
stored whole (its snapshot via the wire schemas, plus presence and bans) with a row
version; every mutation is read-modify-write under ``SELECT ... FOR UPDATE`` (PostgreSQL)
or ``BEGIN IMMEDIATE`` (SQLite) and an optimistic row-version check, so concurrent takers
of one seat serialize and exactly one wins. Nothing lives only in memory: a crashed engine
restarts from here.

A room being changed belongs to that change alone: the cache hands its live object to one
``mutate_room`` at a time (taking it out while the change runs) and reads get values
(:class:`~stream_core.ports.RoomView`), never a live object. Driver errors leave as
``UTDStreamException`` ``unavailable`` (503, retry after a second), in :func:`_db_errors`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import and_, create_engine, event, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.machines.call import UNANSWERED
from stream_core.models import UTDCall, UTDSeatGrid, UTDStage
from stream_core.ports import MediaEffect, RoomView, StorePort
from stream_core.rooms import Room, restore_room
from stream_core.rooms.hosting import members
from stream_core.rooms.seats import SeatRoom
from stream_core.wire import CallSchema, SeatGridSchema, StageSchema, dump
from stream_engine.migrations import upgrade
from stream_engine.presence import Audience, load_involved, write_moves
from stream_engine.queues import Queues, write_effects
from stream_engine.schema import TABLES, calls, presence, rooms
from stream_engine.statements import INSERT_ROOM, ROOM_FOR_UPDATE, UPDATE_ROOM
from stream_engine.wakeups import CHANNEL

__all__ = ["Store", "TABLES"]

T = TypeVar("T")

_SEATS, _STAGE, _CALL = SeatGridSchema(), StageSchema(), CallSchema()
_UNANSWERED = tuple(s.value for s in UNANSWERED)
_LIVE_CALLS = (*_UNANSWERED, "active")
_NOBODY = json.dumps({})
#: the key of the members' admission times and connections in a room's ``snapshot``
#: document (beside the wire fields, which never carry it; the schemas exclude it on load;
#: a room stored before it was kept has none, and restores with none)
_SEEN = "_seen"


@contextmanager
def _db_errors() -> Iterator[None]:
    """The one place a database failure becomes the engine's 503."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from exc


def _no_effects(*_: Any) -> Sequence[MediaEffect]:
    return ()


class Store(Queues, Audience):
    def __init__(self, url: str, *, retries: int = 8,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.url = url
        #: several engine processes may share this database (SQLite: one process only)
        self.shared = not url.startswith("sqlite")
        self._clock = clock
        self._retries = retries
        # committed rooms by key: (row version, the live object, its snapshot view). A
        # change takes the object out (``_checkout``), so no two threads ever share one.
        self._cache: dict[tuple[str, str], tuple[int, Room]] = {}
        self._cache_lock = threading.Lock()
        self._held: dict[tuple[str, str], Connection] = {}  # leases: their connections
        self._held_lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:  # leases hold a connection each while a room's queue is applied
            kwargs.update(pool_size=20, max_overflow=40)
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            _sqlite_serializable(self.engine)
        with _db_errors():
            self.migrated_from, self.revision = upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _db(self) -> Any:
        return _db_errors()

    # -- rooms ----------------------------------------------------------------------
    def knows_room(self, app_id: str, name: str) -> bool:
        """True if this process committed or read the room (its cache): a hint, no I/O."""
        with self._cache_lock:
            return (app_id, name) in self._cache

    def read_room(self, app_id: str, name: str, identity: str | None = None
                  ) -> RoomView | None:
        """The room as committed: its members' presence, and ``identity``'s own if it is in
        the audience (what a read needs to check that its reader is present)."""
        with _db_errors(), self.engine.connect() as conn:
            row = conn.execute(select(rooms).where(rooms.c.app_id == app_id,
                                                   rooms.c.name == name)).first()
            if row is None:
                return None
            view = _view_of(row)
            if identity is not None and identity not in view.present:
                extra = load_involved(conn, app_id, name, [identity])
                if extra:
                    view = replace(view, present={**view.present, **extra})
        return view

    def room_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None:
        with _db_errors(), self.engine.connect() as conn:
            row = conn.execute(select(rooms.c.app_id, rooms.c.name)
                               .where(rooms.c.livekit_name == livekit_name)).first()
        return None if row is None else (row.app_id, row.name)

    def mutate_room(self, app_id: str, name: str, livekit_name: str,
                    change: Callable[[Room | None], tuple[Room, T]],
                    effects: Callable[[T], Sequence[MediaEffect]] = _no_effects,
                    involved: Collection[str] = ()) -> T:
        """Apply ``change`` to the stored room (``None`` if new) and commit, atomically.

        ``change`` may raise ``UTDStreamException``: nothing is written. A lost race on the
        row version is retried with fresh state, which is how the loser of a seat race
        ends up with 409 ``seat_taken`` from the core rather than a database error.
        ``involved``: audience members the change may need (the actor, its target); the
        room's own members are always there. A change that leaves the room as it was
        writes nothing but its effects.
        """
        key = (app_id, name)
        last_db_error: OperationalError | None = None
        for _attempt in range(self._retries):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(ROOM_FOR_UPDATE,
                                       {"b_app_id": app_id, "b_name": name}).first()
                    loaded = None if row is None else self._checkout(row)
                    before: dict[str, str | None] = {}
                    if loaded is not None:
                        extra = [i for i in involved if i not in loaded.presence.present]
                        loaded.presence.present.update(load_involved(conn, app_id, name,
                                                                     extra))
                        before = dict(loaded.presence.present)
                    room, result = change(loaded)
                    kept = write_moves(conn, app_id, name, before, room.presence.present,
                                       members(room.snapshot()))
                    room.presence.present = kept  # the audience lives in its own rows
                    room.presence.keep_seen(kept)
                    values = _room_values(room)
                    write_effects(conn, effects(result))
                    if row is not None and all(values[k] == getattr(row, k) for k in values):
                        version = row.row_version  # nothing of the room changed
                    elif row is None:
                        values["updated_at"] = self._clock()
                        conn.execute(INSERT_ROOM, {"app_id": app_id, "name": name,
                                                   "livekit_name": livekit_name,
                                                   "row_version": 1, **values})
                        version = 1
                    else:
                        values["updated_at"] = self._clock()
                        done = conn.execute(UPDATE_ROOM, {
                            "b_app_id": app_id, "b_name": name, "b_version": row.row_version,
                            "row_version": row.row_version + 1, **values})
                        if done.rowcount != 1:
                            raise _Retry()
                        version = row.row_version + 1
                with self._cache_lock:  # committed: this object is the truth, checked in
                    self._cache[key] = (version, room)
                return result
            except OperationalError as exc:  # locked, or the database is gone
                last_db_error = exc
                continue
            except (_Retry, IntegrityError):
                continue
            except SQLAlchemyError as exc:
                raise _unavailable(exc) from exc
            # any other failure: the object the change touched was checked out, not back in
        if last_db_error is not None:
            raise _unavailable(last_db_error) from last_db_error
        raise UTDStreamException.conflict("the room is busy; try again")

    def _checkout(self, row: Any) -> Room:
        """The room at ``row``'s version, owned by the caller until it checks it back in.

        Restoring a 64-seat room from JSON costs a few milliseconds; the cache makes the
        common case (one engine process, consecutive changes) skip it. The row version
        check keeps it correct when several engine processes share the database; taking
        the object out keeps it correct when several threads of one process do.
        """
        with self._cache_lock:
            cached = self._cache.pop((row.app_id, row.name), None)
        if cached is not None and cached[0] == row.row_version:
            return cached[1]
        return _load_room(row)

    # -- calls ----------------------------------------------------------------------
    def insert_call(self, app_id: str, livekit_name: str, call: UTDCall,
                    effects: Sequence[MediaEffect] = ()) -> None:
        with _db_errors(), self.engine.begin() as conn:
            conn.execute(insert(calls).values(app_id=app_id, livekit_name=livekit_name,
                                              row_version=1, **_call_values(call)))
            write_effects(conn, effects)
            if self.shared:  # delivered at commit: other workers' long-polls look again
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}")

    def read_call(self, app_id: str, call_id: str) -> UTDCall:
        with _db_errors(), self.engine.connect() as conn:
            row = conn.execute(select(calls).where(calls.c.call_id == call_id,
                                                   calls.c.app_id == app_id)).first()
        if row is None:
            raise UTDStreamException.not_found(f"unknown call {call_id!r}")
        return _load_call(row)

    def call_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None:
        with _db_errors(), self.engine.connect() as conn:
            row = conn.execute(select(calls.c.app_id, calls.c.call_id)
                               .where(calls.c.livekit_name == livekit_name)).first()
        return None if row is None else (row.app_id, row.call_id)

    def mutate_call(self, app_id: str, call_id: str,
                    change: Callable[[UTDCall], tuple[UTDCall, T]],
                    effects: Callable[[UTDCall, T, int], Sequence[MediaEffect]] = _no_effects,
                    ) -> tuple[UTDCall, T, int]:
        """Apply ``change`` to a stored call and commit; returns (call, result, row version)."""
        last_db_error: OperationalError | None = None
        for _attempt in range(self._retries):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(select(calls).where(calls.c.call_id == call_id,
                                                           calls.c.app_id == app_id)
                                       .with_for_update()).first()
                    if row is None:
                        raise UTDStreamException.not_found(f"unknown call {call_id!r}")
                    call, result = change(_load_call(row))
                    done = conn.execute(update(calls).where(
                        calls.c.call_id == call_id, calls.c.row_version == row.row_version,
                    ).values(row_version=row.row_version + 1, **_call_values(call)))
                    if done.rowcount != 1:
                        raise _Retry()
                    write_effects(conn, effects(call, result, row.row_version + 1))
                    return call, result, row.row_version + 1
            except OperationalError as exc:
                last_db_error = exc
                continue
            except _Retry:
                continue
            except SQLAlchemyError as exc:
                raise _unavailable(exc) from exc
        if last_db_error is not None:
            raise _unavailable(last_db_error) from last_db_error
        raise UTDStreamException.conflict("the call is busy; try again")

    def incoming_calls(self, app_id: str, callee: str) -> list[UTDCall]:
        with _db_errors(), self.engine.connect() as conn:
            result = conn.execute(select(calls).where(
                calls.c.app_id == app_id, calls.c.callee == callee,
                calls.c.status.in_(_UNANSWERED)))
            found = [_load_call(row) for row in result]
        return sorted(found, key=lambda c: c.created_at)

    def next_ring_deadline(self) -> float | None:
        from sqlalchemy import func
        with _db_errors(), self.engine.connect() as conn:
            value = conn.execute(select(func.min(calls.c.ring_deadline))
                                 .where(calls.c.status.in_(_UNANSWERED))).scalar()
        return None if value is None else float(value)

    def due_calls(self, now: float) -> list[tuple[str, str]]:
        with _db_errors(), self.engine.connect() as conn:
            rows = conn.execute(select(calls.c.app_id, calls.c.call_id).where(
                calls.c.status.in_(_UNANSWERED), calls.c.ring_deadline <= now)).all()
        return [(r.app_id, r.call_id) for r in rows]

    # -- what an operator looks at ----------------------------------------------------
    def live_rooms(self, limit: int) -> list[RoomView]:
        """Rooms with someone present (members or audience), by app and name."""
        audience = select(presence.c.app_id, presence.c.room).distinct().subquery()
        with _db_errors(), self.engine.connect() as conn:
            rows = conn.execute(select(rooms).outerjoin(audience, and_(
                audience.c.app_id == rooms.c.app_id, audience.c.room == rooms.c.name))
                .where(or_(rooms.c.present != _NOBODY, audience.c.room.is_not(None)))
                .order_by(rooms.c.app_id, rooms.c.name).limit(limit)).all()
        return [_view_of(row) for row in rows]

    def live_calls(self, limit: int) -> list[tuple[str, UTDCall]]:
        """Calls ringing or active, oldest first (at most ``limit``), with their app."""
        with _db_errors(), self.engine.connect() as conn:
            rows = conn.execute(select(calls).where(calls.c.status.in_(_LIVE_CALLS))).all()
        found = sorted(((row.app_id, _load_call(row)) for row in rows),
                       key=lambda pair: pair[1].created_at)
        return found[:limit]


class _Retry(Exception):
    pass


def _sqlite_serializable(engine: Engine) -> None:
    """Make SQLite transactions take the write lock up front (``BEGIN IMMEDIATE``), and
    take turns in this process before they ask SQLite.

    pysqlite's default deferred transactions let two read-then-write transactions both
    read and then fail to upgrade; with IMMEDIATE the second simply waits its turn. Waiting
    that turn inside SQLite is slow, though: its busy handler polls with sleeps of 1, 2, 5,
    10 ms and more, so threads that collide sleep while the lock is free (profiled: a third
    of a token mint's time under 8 concurrent mints). Threads of this process therefore
    queue on a lock of ours, handed over at once on commit or rollback; SQLite's busy
    timeout still orders us with other processes.
    """
    turn = threading.RLock()

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        turn.acquire()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turn.release()
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _end(_conn: Connection) -> None:
        turn.release()


def _room_values(room: Room) -> dict[str, Any]:
    snapshot = room.snapshot()
    schema = _SEATS if isinstance(room, SeatRoom) else _STAGE
    return {"kind": "seats" if isinstance(room, SeatRoom) else "stage",
            "snapshot": json.dumps({**dump(schema, snapshot), _SEEN: room.presence.seen()}),
            "present": json.dumps(room.presence.present),
            "banned": json.dumps(sorted(room.presence.banned))}


def _view_of(row: Any, document: dict[str, Any] | None = None) -> RoomView:
    schema = _SEATS if row.kind == "seats" else _STAGE
    fields = dict(json.loads(row.snapshot) if document is None else document)
    fields.pop(_SEEN, None)
    snapshot: UTDSeatGrid | UTDStage = schema.load(fields)
    return RoomView(row.app_id, row.name, row.livekit_name, snapshot, json.loads(row.present),
                    frozenset(json.loads(row.banned)))


def _load_room(row: Any) -> Room:
    document = json.loads(row.snapshot)
    view = _view_of(row, document)
    return restore_room(view.snapshot, dict(view.present), set(view.banned),
                        document.get(_SEEN))


def _unavailable(exc: SQLAlchemyError) -> UTDStreamException:
    return UTDStreamException(f"the engine's database is unavailable ({type(exc).__name__})",
                              status_code=503, code=ErrorCode.UNAVAILABLE, retry_after=1.0)


def _call_values(call: UTDCall) -> dict[str, Any]:
    clean = replace(call, token=None, url=None)  # tokens are minted per request, never stored
    return {"call_id": call.call_id, "callee": call.callee_identity,
            "status": call.status.value, "ring_deadline": call.ring_deadline,
            "data": json.dumps(dump(_CALL, clean))}


def _load_call(row: Any) -> UTDCall:
    call: UTDCall = _CALL.load(json.loads(row.data))
    return call


if TYPE_CHECKING:
    _: type[StorePort] = Store
