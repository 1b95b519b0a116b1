"""The store's queues in SQL: the outbox of media effects, leases, and the webhook inbox.

Mixed into :class:`~stream_engine.store.Store`: these share its engine and its one map of
driver errors. Outbox rows are written by the store's mutations, in their transactions
(:func:`write_effects`); the rows of one media room are read in ``seq`` order, which is the
room's commit order because every change of a room holds the room's row lock while it
writes them.

A lease (one applier of a room's queue across engine processes) is a PostgreSQL session
advisory lock on a connection kept for the lease's length: a worker that dies (``kill
-9``) loses its connection, and PostgreSQL frees its leases at once, so another worker
takes the room over without waiting for a timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from stream_core.ports import MediaEffect, WebhookEvent
from stream_engine.schema import outbox, rooms, webhooks
from stream_engine.statements import (DELETE_EFFECTS, FORGET_WEBHOOKS, INSERT_EFFECTS,
                                      INSERT_WEBHOOK, ROOM_EFFECTS, WEBHOOK_APPLIED)

__all__ = ["Queues", "write_effects"]

_KEEP_EVENTS = 3600.0  # seconds an applied event's id is kept to refuse its replays


def write_effects(conn: Connection, effects: Sequence[MediaEffect]) -> None:
    """Queue ``effects`` in the caller's transaction (the change that caused them)."""
    if effects:
        conn.execute(INSERT_EFFECTS, [
            {"room": e.room, "kind": e.kind, "identity": e.identity, "data": e.data,
             "attempts": 0, "next_try_at": 0.0} for e in effects])


class Queues:
    """Outbox, leases and inbox over the store's ``engine`` (see the module's doc)."""

    engine: Engine
    _held: dict[tuple[str, str], Connection]
    _held_lock: threading.Lock

    def _db(self) -> Any:  # the store's driver-error map, as a context manager
        raise NotImplementedError

    # -- the outbox -------------------------------------------------------------------
    def pending_effects(self, room: str, now: float, limit: int) -> list[MediaEffect]:
        """``room``'s effects in order, from the first; none if the first is not due yet."""
        with self._db(), self.engine.connect() as conn:
            rows = conn.execute(ROOM_EFFECTS, {"b_room": room, "b_limit": limit}).all()
        if not rows or rows[0].next_try_at > now:
            return []
        return [MediaEffect(r.room, r.kind, r.identity, r.data, r.seq, r.attempts)
                for r in rows]

    def settle_effects(self, done: Sequence[int], failed: MediaEffect | None = None,
                       retry_at: float = 0.0) -> None:
        with self._db(), self.engine.begin() as conn:
            if done:
                conn.execute(DELETE_EFFECTS, {"b_seqs": list(done)})
            if failed is not None:
                conn.execute(update(outbox).where(outbox.c.seq == failed.seq).values(
                    attempts=outbox.c.attempts + 1, next_try_at=retry_at))

    def rooms_with_due_effects(self, now: float, limit: int) -> list[str]:
        with self._db(), self.engine.connect() as conn:
            first = (select(outbox.c.room, func.min(outbox.c.seq).label("seq"))
                     .group_by(outbox.c.room).subquery())
            rows = conn.execute(select(outbox.c.room).join(
                first, and_(outbox.c.room == first.c.room, outbox.c.seq == first.c.seq))
                .where(outbox.c.next_try_at <= now).limit(limit)).all()
        return [r.room for r in rows]

    # -- leases -----------------------------------------------------------------------
    def lease(self, key: str, owner: str, now: float, seconds: float) -> bool:
        """Hold ``key`` (PostgreSQL advisory lock) until :meth:`release` or this process's
        end; False if another holds it. ``now`` and ``seconds`` are unused: a lease ends
        with its holder, not with a clock."""
        with self._db():
            conn = self.engine.connect()
            try:
                held = conn.execute(select(func.pg_try_advisory_lock(
                    func.hashtextextended(key, 0)))).scalar()
                conn.commit()  # the lock is the session's, not the transaction's
            except BaseException:
                conn.close()
                raise
        if not held:
            conn.close()
            return False
        with self._held_lock:
            self._held[(key, owner)] = conn
        return True

    def release(self, key: str, owner: str) -> None:
        with self._held_lock:
            conn = self._held.pop((key, owner), None)
        if conn is None:
            return
        with self._db():
            try:
                conn.execute(select(func.pg_advisory_unlock(func.hashtextextended(key, 0))))
                conn.commit()
            finally:
                conn.close()

    # -- the inbox --------------------------------------------------------------------
    def record_webhook(self, event: WebhookEvent, now: float) -> bool:
        data = json.dumps({"event": event.event, "identity": event.identity, "sid": event.sid,
                           "replaced": event.replaced, "hidden": event.hidden,
                           "can_publish": event.can_publish,
                           "sources": sorted(event.sources), "created_at": event.created_at},
                          ensure_ascii=False)
        with self._db():
            try:
                with self.engine.begin() as conn:
                    conn.execute(INSERT_WEBHOOK, {"event_id": event.event_id,
                                                  "room": event.room, "data": data,
                                                  "received_at": now, "applied": 0})
                    conn.execute(FORGET_WEBHOOKS, {"b_before": now - _KEEP_EVENTS})
            except IntegrityError:
                return False  # a replay: this event id was recorded already
        return True

    def pending_webhooks(self, limit: int, room: str | None = None) -> list[WebhookEvent]:
        query = select(webhooks).where(webhooks.c.applied == 0)
        if room is not None:
            query = query.where(webhooks.c.room == room)
        with self._db(), self.engine.connect() as conn:
            rows = conn.execute(query.order_by(webhooks.c.seq).limit(limit)).all()
        found = []
        for r in rows:
            d = json.loads(r.data)
            found.append(WebhookEvent(r.event_id, d["event"], r.room, d["identity"], d["sid"],
                                      d["replaced"], d["hidden"], d["can_publish"],
                                      frozenset(d["sources"]),
                                      created_at=d.get("created_at", 0.0),  # 0: kept before
                                      seq=r.seq))
        return found

    def webhook_applied(self, seq: int) -> None:
        with self._db(), self.engine.begin() as conn:
            conn.execute(WEBHOOK_APPLIED, {"b_seq": seq, "applied": 1})

    # -- what the reconcile pass looks at -----------------------------------------------
    def active_rooms(self, since: float, limit: int) -> list[str]:
        with self._db(), self.engine.connect() as conn:
            rows = conn.execute(select(rooms.c.livekit_name).where(rooms.c.updated_at >= since)
                                .order_by(rooms.c.updated_at.desc()).limit(limit)).all()
        return [r.livekit_name for r in rows]
