"""The outbox: what the media server must be told, durably and in each room's commit order.

Every change writes its media effects (grants, revokes, removals, room closes, state
pushes) into the store in the transaction that commits it (:func:`effects_of`). The
:class:`Outbox` then applies them per media room in ``seq`` order, one applier per room at
a time (an in-process lock, plus a lease in the store when several engine processes share
it), and marks each done when the media server confirmed it. A failure stops that room's
queue where it is (a later effect must not overtake it) and is retried with exponential
backoff; a crash between the commit and the media server loses nothing, because the next
start (or any worker's loop) finds the effect still pending.

The request that made a change drains its room at once, so the normal path costs one
round of the media server's API, as it did before there was an outbox. A new room's
creation is the exception: it is drained in the background (:meth:`Outbox.drain_soon`)
while the first token, which can create the room itself, is already on its way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from stream_core.effects import Effect, ParticipantRemoved, PublishChanged, RoomClosed
from stream_core.engine.locks import KeyedLocks
from stream_core.engine.loops import Background, every
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.ports import ControlPort, MediaEffect, StorePort

__all__ = ["Outbox", "effects_of", "create_effect", "grant_effect", "remove_effect"]

_log = logging.getLogger("utd_stream.engine")
_BATCH = 64  # effects applied per look at a room's queue
_LEASE_SECONDS = 30.0
_MAX_BACKOFF = 30.0


def grant_effect(room: str, identity: str, sources: frozenset[str]) -> MediaEffect:
    return MediaEffect(room, "grant", identity, json.dumps(sorted(sources)))


def remove_effect(room: str, identity: str) -> MediaEffect:
    return MediaEffect(room, "remove", identity)


def create_effect(room: str, *, metadata: str, max_participants: int = 0,
                  empty_timeout: int | None = None) -> MediaEffect:
    options: dict[str, Any] = {"metadata": metadata, "max_participants": max_participants}
    if empty_timeout is not None:
        options["empty_timeout"] = empty_timeout
    return MediaEffect(room, "create", data=json.dumps(options, ensure_ascii=False))


def effects_of(room: str, effects: Sequence[Effect], state: str | None = None, *,
               push_first: bool = False) -> list[MediaEffect]:
    """The outbox entries of a change: the core's effects and the room's new state (pushed
    after the grants, or first where the state must arrive before a closing room goes)."""
    entries: list[MediaEffect] = []
    for effect in effects:
        if isinstance(effect, PublishChanged):
            entries.append(grant_effect(room, effect.identity, effect.after))
        elif isinstance(effect, ParticipantRemoved):
            entries.append(remove_effect(room, effect.identity))
        elif isinstance(effect, RoomClosed):
            entries.append(MediaEffect(room, "close"))
    if state is not None:
        push = MediaEffect(room, "push", data=state)
        entries = [push, *entries] if push_first else [*entries, push]
    return entries


_APPLY: dict[str, Callable[[ControlPort, MediaEffect], Awaitable[object]]] = {
    "create": lambda c, e: c.create_room(e.room, **json.loads(e.data)),
    "grant": lambda c, e: c.set_permissions(e.room, e.identity, frozenset(json.loads(e.data))),
    "remove": lambda c, e: c.remove_participant(e.room, e.identity),
    "close": lambda c, e: c.close_room(e.room),
    "push": lambda c, e: c.push_state(e.room, e.data),
}


class Outbox:
    """Applies the store's pending media effects, per room, in order, until confirmed."""

    def __init__(self, store: StorePort, control: ControlPort, clock: Callable[[], float], *,
                 leases: bool) -> None:
        self.store = store
        self.control = control
        self._clock = clock
        self._leases = leases  # several processes may share the store: take a lease per room
        self._owner = uuid.uuid4().hex
        self._locks = KeyedLocks()
        self._wake = asyncio.Event()
        self._soon = Background(on_failure=self.wake)

    async def drain(self, room: str) -> None:
        """Apply ``room``'s due effects now (returns early if another applier has them)."""
        async with self._locks.hold(room):
            if self._leases and not await asyncio.to_thread(
                    self.store.lease, f"outbox:{room}", self._owner, self._clock(),
                    _LEASE_SECONDS):
                return  # another worker applies this room's queue, in order
            try:
                while await self._apply_batch(room):
                    pass
            finally:
                if self._leases:
                    await asyncio.to_thread(self.store.release, f"outbox:{room}", self._owner)

    def drain_soon(self, room: str) -> None:
        """Drain ``room`` in the background; :meth:`draining` is true until that is done.
        What it fails to apply stays due for :meth:`run`, as after any failed drain."""
        self._soon.start(self.drain(room), f"utd-outbox-drain:{room}", key=room)

    def draining(self, room: str) -> bool:
        """True while a :meth:`drain_soon` of ``room`` is under way."""
        return self._soon.running(room)

    async def settle(self) -> None:
        """Wait until the background drains are done (tests)."""
        await self._soon.settle()

    async def stop(self) -> None:
        """Cancel the background drains (what they had not applied stays due)."""
        await self._soon.stop()

    async def run(self, *, poll: float = 0.5) -> None:
        """Apply whatever is due anywhere (effects a crash or a failure left behind): on
        start, whenever woken, and every ``poll`` seconds."""
        async def step() -> None:
            for room in await asyncio.to_thread(self.store.rooms_with_due_effects,
                                                self._clock(), _BATCH):
                await self.drain(room)

        await every(poll, step, what="outbox", wake=self._wake)

    def wake(self) -> None:
        self._wake.set()

    async def _apply_batch(self, room: str) -> bool:
        """Apply up to a batch of ``room``'s due effects; True if there may be more."""
        pending = await asyncio.to_thread(self.store.pending_effects, room, self._clock(),
                                          _BATCH)
        done: list[int] = []
        failed: MediaEffect | None = None
        for index, effect in enumerate(pending):
            if effect.kind == "push" and any(later.kind == "push"
                                             for later in pending[index + 1:]):
                done.append(effect.seq)  # a later state replaces this one
                continue
            if await self._apply(effect):
                done.append(effect.seq)
            else:
                failed = effect
                break
        retry_at = 0.0
        if failed is not None:
            retry_at = self._clock() + min(_MAX_BACKOFF, 0.1 * 2 ** failed.attempts)
        if done or failed is not None:
            await asyncio.to_thread(self.store.settle_effects, done, failed, retry_at)
        return failed is None and len(pending) == _BATCH

    async def _apply(self, effect: MediaEffect) -> bool:
        """One effect; True when the media server has it (or has nothing it applies to)."""
        try:
            await _APPLY[effect.kind](self.control, effect)
        except UTDStreamException as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return True  # the participant or room is not (or no longer) there
            level = logging.WARNING if exc.code == ErrorCode.UNAVAILABLE else logging.ERROR
            _log.log(level, "media %s for %s %s failed (try %d): %s (%s); kept for a retry",
                     effect.kind, effect.room, effect.identity, effect.attempts + 1,
                     exc.message, exc.code, exc_info=exc if level == logging.ERROR else None)
            return False
        return True

    def __repr__(self) -> str:
        return f"<Outbox {self._owner[:8]} leases={self._leases}>"
