"""The engine service's ears on the media server: participants joining and leaving.

A participant who leaves (or whose process dies) loses its seat or stage slot and ends
its call; a participant who arrives with a token minted before a change gets its grant
brought up to date, or is removed if it was banned since. The leave of a connection that
a newer one replaced (same identity, another device or a reconnect) frees nothing.
"""

from __future__ import annotations

import logging

from stream_core.effects import Effect
from stream_core.engine.base import state_json
from stream_core.engine.calls import CallService
from stream_core.rooms import Room
from stream_core.rooms.hosting import snapshot_publish_sources

__all__ = ["WebhookService"]

_log = logging.getLogger("utd_stream.engine")


class WebhookService(CallService):
    """Handlers for the media server's participant and room events."""

    async def participant_left(self, livekit_room: str, identity: str, *,
                               sid: str = "", replaced: bool = False) -> None:
        """``replaced``: the media server closed this connection because a new one with
        the same identity joined (LiveKit's DUPLICATE_IDENTITY). LiveKit sends that leave
        *before* it has created the new connection, so asking it who is present cannot be
        trusted to show the replacement yet: the reason decides. Other leaves ask."""
        if replaced or await self._replaced(livekit_room, identity, sid):
            _log.info("participant_left of a replaced session ignored (%s is still in %s)",
                      identity, livekit_room)
            return
        found_call = await self._store(self.store.call_by_livekit_name, livekit_room)
        if found_call is not None:
            await self.drop_call(*found_call)
            return
        found = await self._store(self.store.room_by_livekit_name, livekit_room)
        if found is None:
            return
        app_id, room_name = found

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], str]]:
            assert room is not None  # found by its media-server name: it exists
            effects = room.leave(identity)
            return room, (effects, state_json(room))

        async with self._locks.hold(found):
            effects, state = await self._store(self.store.mutate_room, app_id, room_name,
                                               livekit_room, change)
            await self._tell(livekit_room, effects)
            await self._push(livekit_room, state)

    async def participant_joined(self, livekit_room: str, identity: str, *,
                                 can_publish: bool, sources: frozenset[str],
                                 hidden: bool = False) -> None:
        """Admit a new connection: remove it if it was banned since its token was minted
        (it joined hidden, so nobody saw it), otherwise make it visible with its grant
        brought up to what the room says now (a seat or stage slot won or lost since the
        mint, when no grant could reach it). Nothing is sent when the token is right."""
        found = await self._store(self.store.room_by_livekit_name, livekit_room)
        if found is None:
            return
        async with self._locks.hold(found):
            view = await self._store(self.store.read_room, *found)
            if view is None:
                return
            if identity in view.banned:
                await self._media("remove", self.control.remove_participant(livekit_room,
                                                                            identity))
                return
            wanted = snapshot_publish_sources(view.snapshot, identity)
            if not hidden and can_publish == bool(wanted) and (not wanted or sources == wanted):
                return
            await self._media("grant", self.control.set_permissions(livekit_room, identity,
                                                                    wanted))

    async def room_finished(self, livekit_room: str) -> None:
        found_call = await self._store(self.store.call_by_livekit_name, livekit_room)
        if found_call is not None:
            await self.drop_call(*found_call)

    async def _replaced(self, livekit_room: str, identity: str, sid: str) -> bool:
        """True if the media server has ``identity`` in the room under another connection
        than the one that left. It may still report the leaving connection itself for a
        moment, hence the sid. If it cannot answer, the leave is taken at its word."""
        present = await self._media("look up", self.control.get_participant(livekit_room,
                                                                             identity))
        return present is not None and present.sid != sid
