"""The reconcile pass: what the media server actually lets people do, made equal to the
engine's state again.

Effects are durable and ordered, but the media server can still drift from the engine: a
webhook it dropped (a participant gone without a leave), an admission it never reported, a
server restarted without its grants. On start and then on a timer, each room that changed
recently is compared with the media server's own list of its connections:

* a banned identity still connected is removed;
* a connection whose grant differs from what the room gives it (a publisher without a
  seat, a seated speaker without a microphone, a joiner never admitted) gets its grant;
* a seat or stage slot whose holder has been absent from the media room for longer than
  ``absent_grace`` (its leave never reached the engine) is freed, as its leave would;
* a room whose pushed state is missing or older than the engine's (a media server that
  restarted and lost its rooms' metadata) gets the state pushed again.

The corrections go through the outbox like any change. The grace clock is kept in memory
on purpose: losing it only restarts the wait, it never decides an outcome alone.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from stream_core.effects import Effect
from stream_core.engine.base import state_json
from stream_core.engine.loops import every
from stream_core.engine.outbox import effects_of, grant_effect, remove_effect
from stream_core.engine.webhooks import WebhookService
from stream_core.ports import MediaEffect, MediaParticipant
from stream_core.rooms import Room
from stream_core.rooms.hosting import publishers

__all__ = ["ReconcileService"]

_log = logging.getLogger("utd_stream.engine")
_LEASE_SECONDS = 30.0


class ReconcileService(WebhookService):
    """Compares rooms with the media server and corrects the drift."""

    def __init__(self, *args: Any, absent_grace: float = 20.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.absent_grace = absent_grace
        self._absent_since: dict[tuple[str, str], float] = {}
        self._reconcile_owner = uuid.uuid4().hex

    async def reconcile_room(self, livekit_room: str) -> int:
        """Correct ``livekit_room``'s drift now; how many corrections were queued."""
        found = await self._store(self.store.room_by_livekit_name, livekit_room)
        if found is None:
            return 0
        connected = await self._media("list", self.control.participants(livekit_room))
        if connected is None:
            return 0  # the media server did not answer: nothing is known, nothing changes
        held = await self._media("read state", self.control.room_metadata(livekit_room))
        by_identity = {p.identity: p for p in connected}
        now = self._clock()
        view = await self._store(self.store.read_room, *found)
        for identity in publishers(view.snapshot) if view is not None else ():
            if identity not in by_identity:
                self._absent_since.setdefault((livekit_room, identity), now)
        absent = self._absentees(livekit_room, by_identity, now)

        def decide(room: Room | None) -> tuple[Room, tuple[list[Effect], list[MediaEffect],
                                                          str | None]]:
            assert room is not None  # found by its media-server name: it exists
            effects: list[Effect] = []
            gone = [i for i in publishers(room.snapshot()) if i in absent]
            for identity in gone:
                effects += room.leave(identity)
            fixes = [fix for p in connected if (fix := _fix(room, livekit_room, p))]
            stale = connected and _version(held) < room.version
            return room, (effects, fixes, state_json(room) if gone or stale else None)

        def outbox(result: tuple[list[Effect], list[MediaEffect], str | None]
                   ) -> list[MediaEffect]:
            effects, fixes, state = result
            return [*effects_of(livekit_room, effects, state), *fixes]

        effects, fixes, state = await self._store(self.store.mutate_room, found[0], found[1],
                                                  livekit_room, decide, outbox)
        corrections = len(fixes) + (len(effects) if state is not None else 0) + \
            (state is not None)
        if corrections:
            _log.info("reconcile %s: %d correction(s)", livekit_room, corrections)
            await self.outbox.drain(livekit_room)
        return corrections

    async def run_reconcile(self, *, interval: float = 10.0, window: float = 3600.0,
                            limit: int = 200) -> None:
        """Reconcile every room changed within ``window``: now, then every ``interval``."""
        async def step() -> None:
            for room in await self._store(self.store.active_rooms, self._clock() - window,
                                          limit):
                await self._reconcile_leased(room)

        await every(interval, step, what="reconcile")

    async def _reconcile_leased(self, room: str) -> None:
        key = f"reconcile:{room}"
        if self.store.shared and not await self._store(
                self.store.lease, key, self._reconcile_owner, self._clock(), _LEASE_SECONDS):
            return  # another worker reconciles this room now
        try:
            await self.reconcile_room(room)
        finally:
            if self.store.shared:
                await self._store(self.store.release, key, self._reconcile_owner)

    def _absentees(self, room: str, connected: dict[str, MediaParticipant],
                   now: float) -> set[str]:
        """Identities absent from ``room`` for longer than the grace (the clock starts at
        the first pass that misses them, and stops when they are seen)."""
        for (r, identity) in [k for k in self._absent_since if k[0] == room]:
            if identity in connected:
                del self._absent_since[(r, identity)]
        return {identity for (r, identity), since in self._absent_since.items()
                if r == room and now - since >= self.absent_grace}


def _version(metadata: str | None) -> int:
    """The version of the state a media room holds (-1: none, or not the engine's)."""
    try:
        version = json.loads(metadata or "")["version"]
    except (ValueError, KeyError, TypeError):
        return -1
    return version if isinstance(version, int) else -1


def _fix(room: Room, livekit_room: str, p: MediaParticipant) -> MediaEffect | None:
    if p.identity in room.presence.banned:
        return remove_effect(livekit_room, p.identity)
    wanted = room.publish_sources(p.identity)
    if p.hidden or p.can_publish != bool(wanted) or (wanted and p.sources != wanted):
        return grant_effect(livekit_room, p.identity, wanted)
    return None
