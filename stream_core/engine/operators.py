"""The engine service seen by an operator: what is live, and host-grade actions.

An operator is not a participant: it is authenticated by the server (its credential is
configured like an app's) and named here only for the log. It acts as the room's host
would, through the very room methods and call table a host or caller fires, so every rule
of the core still holds: a kick from an empty seat is 409, a room without a host has
nobody to act as (409). Closing a room is each present participant's leave (the core's
departure rule: seats and stage slots are freed) followed by the media room's close.
"""

from __future__ import annotations

import logging
from typing import Any

from stream_core.effects import Effect, RoomClosed
from stream_core.engine.base import livekit_room_name, state_json
from stream_core.engine.calls import CallService
from stream_core.engine.rooms import RoomService
from stream_core.errors import UTDStreamException
from stream_core.models import UTDCall
from stream_core.operations import KICK_FROM_SEAT, REMOVE_FROM_STAGE, Operation
from stream_core.ports import RoomView
from stream_core.rooms import Room

__all__ = ["OperatorService", "OPERATOR_ROOM_OPERATIONS"]

_log = logging.getLogger("utd_stream.engine")

#: The room operations an operator may carry out (as the room's host), by name.
OPERATOR_ROOM_OPERATIONS: dict[str, Operation[Any]] = {
    op.name: op for op in (KICK_FROM_SEAT, REMOVE_FROM_STAGE)}


class OperatorService(RoomService, CallService):
    """What is live across apps, and the actions an operator may take."""

    async def live_overview(self, *, limit: int = 200
                            ) -> tuple[list[RoomView], list[tuple[str, UTDCall]]]:
        """Rooms with someone in them and calls ringing or active (each at most ``limit``)."""
        await self.expire_due()
        rooms = await self._store(self.store.live_rooms, limit)
        calls = await self._store(self.store.live_calls, limit)
        return rooms, calls

    async def act_as_host(self, operator: str, app_id: str, room_name: str, action: str,
                           identity: str) -> Any:
        """Kick ``identity`` from its seat or remove it from the stage, as the host would."""
        op = OPERATOR_ROOM_OPERATIONS.get(action)
        if op is None:
            raise UTDStreamException.invalid(f"operators cannot {action!r}", field="action")
        _log.info("operator %s: %s %s in %s/%s", operator, action, identity, app_id,
                  room_name)
        return await self._change_room(op, app_id, room_name, None, {"identity": identity})

    async def close_room_as_operator(self, operator: str, app_id: str,
                                     room_name: str) -> None:
        """Everyone present leaves (freeing seats and stage slots), then the media room closes."""
        lk_name = livekit_room_name(app_id, room_name)

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], str]]:
            if room is None:
                raise UTDStreamException.not_found(f"no room {room_name!r}")
            effects: list[Effect] = []
            for identity in list(room.presence.present):
                effects += room.leave(identity)
            return room, ([*effects, RoomClosed(room_name)], state_json(room))

        _log.info("operator %s: close %s/%s", operator, app_id, room_name)
        async with self._locks.hold((app_id, room_name)):
            effects, state = await self._store(self.store.mutate_room, app_id, room_name,
                                               lk_name, change)
            await self._push(lk_name, state)
            await self._tell(lk_name, effects)

    async def end_call_as_operator(self, operator: str, app_id: str, call_id: str) -> UTDCall:
        """Hang the call up as its caller would (an unanswered call is cancelled)."""
        call = await self._store(self.store.read_call, app_id, call_id)
        _log.info("operator %s: end call %s/%s", operator, app_id, call_id)
        return await self._move(app_id, call_id, "end", call.caller_identity)
