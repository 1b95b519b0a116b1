"""The engine service's ears on the media server: participants joining and leaving.

Events are recorded first (:meth:`WebhookService.receive`: once per event id, in the
store, answered at once) and applied after, per media room in the order they arrived, one
applier per room at a time; events a crash left unapplied are applied by any worker's loop
(:meth:`WebhookService.run_webhooks`). LiveKit drops a room's events that wait too long,
so the endpoint must never wait on LiveKit or on the room's lock.

A participant who leaves (or whose process dies) loses its seat or stage slot and ends
its call; a participant who arrives with a token minted before a change is admitted (made
visible) with its grant brought up to date, or removed if it was banned since. The leave
of a connection that a newer one replaced (same identity, another device or a reconnect)
frees nothing.

A leave is judged by the connection that left, not by the identity: it frees nothing of a
member whose latest connection seen joining is another one (a late or reordered leave),
nor of a member admitted again after the leave was made (its ``createdAt``, the media
server's clock, at least a second before the engine's clock at the admission: the two
clocks are assumed synchronized, LiveKit's time has whole seconds). A replayed event is
refused by its id when recorded. A viewer holds nothing here: its leave is taken as it is.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from stream_core.effects import Effect
from stream_core.engine.base import state_json
from stream_core.engine.calls import CallService
from stream_core.engine.locks import KeyedLocks
from stream_core.engine.loops import Background, every
from stream_core.engine.outbox import effects_of, grant_effect, remove_effect
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.names import parse_livekit_name
from stream_core.ports import MediaEffect, WebhookEvent
from stream_core.rooms import Room
from stream_core.rooms.hosting import snapshot_publish_sources

__all__ = ["APPLIED_EVENTS", "WebhookService"]

_log = logging.getLogger("utd_stream.engine")
_LEAVES = frozenset({"participant_left", "participant_connection_aborted"})
#: The events the engine acts on; the others (room_started, track_published, ...) are
#: answered and not recorded: a join would otherwise cost the store two writes more for
#: its room_started, while the joiner is still connecting. A media server is best told to
#: send only these (LiveKit: ``webhook.filter_params.include_events``; the dev stacks do),
#: which spares both sides the request.
APPLIED_EVENTS = _LEAVES | {"participant_joined", "room_finished"}
_LEASE_SECONDS = 30.0


class WebhookService(CallService):
    """Handlers for the media server's participant and room events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._event_locks = KeyedLocks()
        self._event_owner = uuid.uuid4().hex
        self._events_wake = asyncio.Event()
        self._appliers = Background(on_failure=self._events_wake.set)

    async def receive(self, event: WebhookEvent) -> bool:
        """Record ``event`` (False: a replay of one already recorded) and apply it soon.
        An event the engine does not act on is taken (True) without being recorded."""
        if event.event not in APPLIED_EVENTS:
            return True
        fresh = await self._store(self.store.record_webhook, event, self._clock())
        if fresh:
            self._appliers.start(self._apply_room_events(event.room),
                                 f"utd-webhooks:{event.room}")
        return fresh

    async def run_webhooks(self, *, poll: float = 1.0) -> None:
        """Apply events left unapplied (a crash, a failure): on start and every ``poll``."""
        async def step() -> None:
            for room in {e.room for e in await self._store(self.store.pending_webhooks, 256,
                                                           None)}:
                await self._apply_room_events(room)

        await every(poll, step, what="webhooks", wake=self._events_wake)

    async def settle_webhooks(self) -> None:
        """Wait until every event received so far is applied (tests, shutdown)."""
        await self._appliers.settle()

    async def stop_webhooks(self) -> None:
        """Stop applying now (what is recorded stays for the next start)."""
        await self._appliers.stop()

    # -- the events -----------------------------------------------------------------
    async def participant_left(self, livekit_room: str, identity: str, *,
                               sid: str = "", replaced: bool = False,
                               created_at: float = 0.0) -> None:
        """``replaced``: the media server closed this connection because a new one with
        the same identity joined (LiveKit's DUPLICATE_IDENTITY). LiveKit sends that leave
        *before* it has created the new connection, so asking it who is present cannot be
        trusted to show the replacement yet: the reason decides. Other leaves ask.

        A member's leave is then judged under the room's lock by what the room remembers
        of it (:meth:`~stream_core.rooms.presence.Presence.stale_leave`): ``sid`` against
        its latest connection, ``created_at`` (media-server time, 0 if unknown) against its
        latest admission. A stale leave changes nothing."""
        if replaced or await self._replaced(livekit_room, identity, sid):
            _log.info("participant_left of a replaced session ignored (%s is still in %s)",
                      identity, livekit_room)
            return
        named = _named(livekit_room)
        if named is None:
            return
        app_id, kind, room_name = named
        if kind == "call":
            found_call = await self._store(self.store.call_by_livekit_name, livekit_room)
            if found_call is not None:
                await self.drop_call(*found_call)
            return
        left = await self._store(self.store.leave_audience, app_id, room_name, identity)
        if left is not False:  # a viewer's leave (or nobody's): its own row, nothing pushed
            if left:
                self.audience_changed(app_id, room_name, livekit_room)
            return

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], str | None,
                                                          str | None]]:
            if room is None:  # it had a member a moment ago; gone since, nothing to free
                raise _Gone()
            stale = room.presence.stale_leave(identity, sid, created_at)
            if stale is not None:
                return room, ([], None, stale)
            effects = room.leave(identity)
            return room, (effects, state_json(room), None)

        try:
            _, _, stale = await self._store(self.store.mutate_room, app_id, room_name,
                                            livekit_room, change,
                                            lambda r: effects_of(livekit_room, r[0], r[1]),
                                            [identity])
        except _Gone:
            return
        if stale is not None:
            _log.info("participant_left of %s in %s frees nothing: %s", identity,
                      livekit_room, stale)
            return
        await self.outbox.drain(livekit_room)

    async def participant_joined(self, livekit_room: str, identity: str, *,
                                 can_publish: bool, sources: frozenset[str],
                                 hidden: bool = False, sid: str = "") -> None:
        """Admit a new connection: remove it if it was banned since its token was minted
        (it joined hidden, so nobody saw it), otherwise make it visible with its grant
        brought up to what the room says now (a seat or stage slot won or lost since the
        mint, when no grant could reach it). Nothing is sent when the token is right.

        Decided under the room's row lock (a change that only records ``sid`` as the
        member's latest connection), so the grant is queued in order with every other
        change of the room, and a leave applied after it is judged against it."""
        named = _named(livekit_room)
        if named is None or named[1] != "room":
            return
        app_id, _, room_name = named

        def decide(room: Room | None) -> tuple[Room, list[MediaEffect]]:
            if room is None:  # not a room of this engine (or no longer): nothing to admit
                raise _Gone()
            if identity in room.presence.banned:
                return room, [remove_effect(livekit_room, identity)]
            if identity not in room.presence.present:
                # in the media room with a token this room minted, yet not present here: a
                # leave of its previous connection was applied after this one began (a
                # media server restarting answers no look-up). Presence follows the join.
                room.join(identity)
            room.presence.connected(identity, sid)
            wanted = room.publish_sources(identity)
            if not hidden and can_publish == bool(wanted) and (not wanted or sources == wanted):
                return room, []
            return room, [grant_effect(livekit_room, identity, wanted)]

        try:
            await self._store(self.store.mutate_room, app_id, room_name, livekit_room, decide,
                              lambda effects: effects, [identity])
        except _Gone:
            return
        await self.outbox.drain(livekit_room)

    async def room_finished(self, livekit_room: str) -> None:
        named = _named(livekit_room)
        if named is None or named[1] != "call":
            return
        found_call = await self._store(self.store.call_by_livekit_name, livekit_room)
        if found_call is not None:
            await self.drop_call(*found_call)

    # -- internals ------------------------------------------------------------------
    async def _apply_room_events(self, room: str) -> None:
        """Apply ``room``'s recorded events in order (one applier per room at a time)."""
        async with self._event_locks.hold(room):
            key = f"events:{room}"
            if self.store.shared and not await self._store(
                    self.store.lease, key, self._event_owner, self._clock(), _LEASE_SECONDS):
                return
            try:
                for event in await self._store(self.store.pending_webhooks, 256, room):
                    try:
                        await self._apply(event)
                    except UTDStreamException as exc:
                        if exc.code == ErrorCode.UNAVAILABLE:
                            raise  # kept, in order, for the next try
                        _log.warning("webhook %s for %s refused: %s", event.event, room, exc)
                    await self._store(self.store.webhook_applied, event.seq)
            finally:
                if self.store.shared:
                    await self._store(self.store.release, key, self._event_owner)

    async def _apply(self, event: WebhookEvent) -> None:
        if event.event in _LEAVES and event.identity:
            await self.participant_left(event.room, event.identity, sid=event.sid,
                                        replaced=event.replaced, created_at=event.created_at)
        elif event.event == "participant_joined" and event.identity:
            await self.participant_joined(event.room, event.identity,
                                          can_publish=event.can_publish, sources=event.sources,
                                          hidden=event.hidden, sid=event.sid)
        elif event.event == "room_finished":
            await self.room_finished(event.room)

    async def _replaced(self, livekit_room: str, identity: str, sid: str) -> bool:
        """True if the media server has ``identity`` in the room under another connection
        than the one that left. It may still report the leaving connection itself for a
        moment, hence the sid. If it cannot answer, the leave is taken at its word."""
        present = await self._media("look up", self.control.get_participant(livekit_room,
                                                                             identity))
        return present is not None and present.sid != sid


class _Gone(Exception):
    """A change found no room under the media server's name: it writes nothing."""


def _named(livekit_room: str) -> tuple[str, str, str] | None:
    """``(app_id, kind, name)`` read from a media-server name (kind ``room`` or ``call``;
    None: not one of ours). The names are reversible
    (:func:`~stream_core.names.livekit_room_name`), so a webhook's handler needs no store
    read to find its room while the joiner is still connecting."""
    try:
        return parse_livekit_name(livekit_room)
    except ValueError:
        return None
