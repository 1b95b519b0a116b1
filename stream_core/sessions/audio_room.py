"""``UTDAudioRoomSession``: seats make speakers; everyone else listens. Audio only.

The seat grid mirrors the engine (every answer and every push carries the whole grid);
what this participant may publish is computed from that grid by the very ``SeatRoom``
rules the engine enforces, so client and engine can never disagree on who speaks.
"""

from __future__ import annotations

from typing import Any

from stream_core.models import UTDSeatGrid, UTDSeatMode, UTDSpeakRequest, UTDStreamType
from stream_core import operations as ops
from stream_core.observable import Observable
from stream_core.operations import Operation
from stream_core.ports import EnginePort, MediaPort
from stream_core.rooms.seats import SeatRoom, parse_seat_mode
from stream_core.sessions.base import UTDSession

__all__ = ["UTDAudioRoomSession"]


class UTDAudioRoomSession(UTDSession):
    """A joined audio room. ``seats`` is the grid; ``my_seat`` this participant's seat."""

    def __init__(self, *, engine: EnginePort, media: MediaPort, identity: str, user_token: str,
                 room_name: str, is_host: bool, **kwargs: Any) -> None:
        super().__init__(type=UTDStreamType.AUDIO_ROOM, engine=engine, media=media,
                         identity=identity, user_token=user_token, room_name=room_name, **kwargs)
        self.room_name = room_name
        self.is_host = is_host
        self.seats: Observable[UTDSeatGrid | None] = Observable(None, name="seats")
        self.my_seat: Observable[int | None] = Observable(None, name="my_seat")

    async def setup_seats(self, seat_count: int | None = None,
                          seat_mode: UTDSeatMode | str | None = None,
                          mode_id: str | None = None) -> UTDSeatGrid:
        """Host: configure the grid (count 1..64, ``free`` or ``request``)."""
        mode = None if seat_mode is None else parse_seat_mode(seat_mode)
        return await self._grid_op(ops.SETUP_SEATS, seat_count=seat_count, seat_mode=mode,
                                   mode_id=mode_id)

    async def get_seats(self) -> UTDSeatGrid:
        """Fetch the grid from the engine (pushes keep ``seats`` current anyway)."""
        return await self._grid_op(ops.GET_SEATS)

    async def take_seat(self, index: int | None = None) -> None:
        """Take seat ``index`` (``None``: the seat invited to, else the first free one).

        Completes when seated and, unless the host muted the seat, the microphone is live.
        """
        await self._grid_op(ops.TAKE_SEAT, seat_index=index)

    async def leave_seat(self) -> None:
        """Back to listening: the engine revokes publish and the microphone stops."""
        await self._grid_op(ops.LEAVE_SEAT)

    async def move_seat(self, index: int, identity: str | None = None) -> None:
        """Move to seat ``index`` (the host may move someone else)."""
        await self._grid_op(ops.MOVE_SEAT, seat_index=index, identity=identity)

    async def request_to_speak(self, seat_index: int | None = None) -> UTDSpeakRequest:
        """Listener, request mode: ask to speak. The host approves by the returned id."""
        request = await self._run(ops.REQUEST_TO_SPEAK, seat_index=seat_index)
        await self.get_seats()
        return request

    async def cancel_speak_request(self) -> None:
        await self._grid_op(ops.CANCEL_SPEAK_REQUEST)

    async def approve_speaker(self, request_id: int) -> None:
        """Host: approve a pending request; the requester is seated at once."""
        await self._grid_op(ops.APPROVE_SPEAKER, request_id=request_id)

    async def deny_speaker(self, request_id: int) -> None:
        await self._grid_op(ops.DENY_SPEAKER, request_id=request_id)

    async def invite_to_speak(self, identity: str, *, seat_index: int | None = None) -> None:
        """Host: invite a listener, optionally to a given seat; it takes the seat itself."""
        await self._grid_op(ops.INVITE_TO_SPEAK, identity=identity, seat_index=seat_index)

    async def decline_invite(self) -> None:
        await self._grid_op(ops.DECLINE_INVITE)

    async def kick_from_seat(self, identity: str) -> None:
        await self._grid_op(ops.KICK_FROM_SEAT, identity=identity)

    async def lock_seat(self, index: int, locked: bool = True) -> None:
        """Host: lock (an occupied seat's speaker goes back to listening) or unlock."""
        await self._grid_op(ops.LOCK_SEAT, seat_index=index, locked=locked)

    async def mute_seat(self, index: int, muted: bool = True) -> None:
        """Host: mute or unmute a seat; its speaker's microphone grant follows."""
        await self._grid_op(ops.MUTE_SEAT, seat_index=index, muted=muted)

    async def ban(self, identity: str) -> None:
        """Host: remove ``identity`` from the room and refuse its future joins."""
        await self._run(ops.BAN, identity=identity)
        await self.get_seats()

    # -- internals ------------------------------------------------------------------
    async def _read_state(self) -> None:
        await self.get_seats()

    async def _reread_state(self) -> None:
        await self.get_seats()

    async def _grid_op(self, op: Operation[UTDSeatGrid], **args: Any) -> UTDSeatGrid:
        grid = await self._run(op, **args)
        self._apply_grid(grid)
        await self._follow_grants()
        return self.seats.value or grid

    def _apply_grid(self, grid: UTDSeatGrid) -> bool:
        if not self._accept_version(grid.version):
            return False
        self.seats.set(grid)
        self.my_seat.set(grid.seat_of(self.identity))
        return True

    def _apply_state(self, state: dict[str, Any]) -> bool:
        grid = state.get("seats")
        return grid is not None and self._apply_grid(grid)

    def _wanted_sources(self) -> frozenset[str]:
        grid = self.seats.value
        if grid is None:
            return frozenset()
        return SeatRoom.grid_publish_sources(grid, self.identity)

    def _close_observables(self) -> None:
        self.seats.close()
        self.my_seat.close()
