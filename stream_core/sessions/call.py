"""``UTDCallSession``: a 1:1 audio or video call, caller or callee side.

The call's status is mirrored with the core's call table (``CallLedger.follow``): engine
answers and engine pushes (room metadata of the call room) move it forward, and a report
the table cannot reach from the current status (a stale push) is ignored. When the call is
over the session leaves the media room by itself.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from stream_core import operations as ops
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.models import UTDCall, UTDCallStatus, UTDStreamType
from stream_core.observable import Observable
from stream_core.ports import EnginePort, MediaPort
from stream_core.rooms.calls import CallLedger, call_publish_sources, noop_for
from stream_core.sessions.base import UTDSession
from stream_core.sessions.recovery import FINAL_REASONS

__all__ = ["UTDCallSession"]

_log = logging.getLogger(__name__)


class UTDCallSession(UTDSession):
    """One call at a time: ``start`` one (caller) or ``accept`` one (callee)."""

    def __init__(self, *, type: UTDStreamType, engine: EnginePort, media: MediaPort,
                 identity: str, user_token: str | None, ledger: CallLedger,
                 **kwargs: Any) -> None:
        if not type.is_call:
            raise UTDStreamException.invalid("a call session needs audio_call or video_call",
                                             field="type")
        super().__init__(type=type, engine=engine, media=media, identity=identity,
                         user_token=user_token, room_name=None, **kwargs)
        self._ledger = ledger
        self.status: Observable[UTDCallStatus | None] = Observable(None, name="status")
        self.call_id: Observable[str | None] = Observable(None, name="call_id")
        self.call: Observable[UTDCall | None] = Observable(None, name="call")
        self._unsubscribe_connected = self.room.connected.listen(self._on_connected)

    async def start(self, callee_identity: str, *, callee_name: str | None = None,
                    metadata: dict[str, Any] | None = None) -> UTDCall:
        """Caller: create the call (the engine rings the callee), join its room, publish."""
        self._require_idle()
        call = await self._run(ops.CREATE_CALL, callee_identity=callee_identity,
                               type=self.type, callee_name=callee_name, metadata=metadata)
        self._follow(call)
        await self._join(call)
        return self.call.value or call

    async def accept(self, call_id: str) -> UTDCall:
        """Callee: accept the call, join its room and publish mic (and camera for video)."""
        self._require_idle(call_id)
        call = await self._run(ops.ACCEPT_CALL, call_id=call_id)
        self._follow(call)
        await self._join(call)
        return self.call.value or call

    async def ringing(self, call_id: str) -> None:
        """Callee: tell the caller the call is ringing here."""
        self._follow(await self._run(ops.CALL_RINGING, call_id=call_id))

    async def reject(self, call_id: str) -> None:
        self._follow(await self._run(ops.REJECT_CALL, call_id=call_id))

    async def busy(self, call_id: str) -> None:
        self._follow(await self._run(ops.BUSY_CALL, call_id=call_id))

    async def refresh(self) -> UTDCall | None:
        """Ask the engine for the current call (pushes reach only parties in the room)."""
        call_id = self.call_id.value
        if call_id is None:
            return None
        self._follow(await self._run(ops.GET_CALL, call_id=call_id))
        await self._leave_if_over()
        return self.call.value

    async def end(self) -> None:
        """Hang up and leave the room. Tolerates a call that is already over.

        What a hang-up means is the call table's to say, not this session's: the caller's
        ``end`` of an unanswered call cancels it, the callee's rejects it, and ``end`` of a
        call already over is a no-op row (so the engine is not asked again).
        """
        call = self.call.value
        if call is None:
            return
        if not noop_for(call, "end", self.identity):
            self._follow(await self._run(ops.END_CALL, call_id=call.call_id))
        await self.leave()

    # -- internals ------------------------------------------------------------------
    async def _join(self, call: UTDCall) -> None:
        if call.token is None or call.url is None:
            raise UTDStreamException("the engine returned no media token for this call",
                                     code=ErrorCode.INTERNAL)
        self._room_name = call.room_name
        await self.room.connect(call.url, call.token)
        self._on_metadata(self.room.metadata.value)  # a push that came before we listened
        await self._follow_grants()
        await self._leave_if_over()

    async def _leave_if_over(self) -> None:
        if self._over and self.room.connected.value:
            await self.leave()

    def _follow(self, call: UTDCall) -> bool:
        """Move the mirrored status along the call table to the engine's; True if it moved."""
        try:
            followed, _effects = self._ledger.follow(call)
        except UTDStreamException as exc:
            _log.debug("ignoring stale call report: %s", exc)
            return False
        moved = self.status.value is not followed.status
        known = self.call.value
        if known is not None and known.call_id == followed.call_id and call.token is None:
            followed = replace(followed, token=known.token, url=known.url)  # keep our grant
        self.call.set(followed)
        self.call_id.set(followed.call_id)
        self.status.set(followed.status)
        return moved

    def _apply_state(self, state: dict[str, Any]) -> bool:
        call: UTDCall | None = state.get("call")
        if call is None or call.call_id != self.call_id.value:
            return False
        if self._follow(call) and call.status.is_terminal:
            self._spawn(self.leave(), "call-over")
            return False
        return True

    def _wanted_sources(self) -> frozenset[str]:
        status = self.status.value
        return frozenset() if status is None else call_publish_sources(self.type, status)

    def _require_idle(self, call_id: str | None = None) -> None:
        if self.status.value is not None and not self._over and call_id != self.call_id.value:
            raise UTDStreamException.illegal(
                "this session already has a call in progress; end() it first")

    @property
    def _over(self) -> bool:
        return self.status.value is not None and self.status.value.is_terminal

    def _on_connected(self, connected: bool) -> None:
        """The media server closed the call's room under us (the engine ends a call by
        deleting its room): its last state push can be lost with the room, so ask the
        engine for the call's status instead of waiting for a push that may never come."""
        if not connected and self.room.disconnect_reason in FINAL_REASONS \
                and self.call_id.value is not None and not self._over:
            self._spawn(self._refresh_after_close(), "call-room-closed")

    async def _refresh_after_close(self) -> None:
        await self.refresh()

    async def _reread_state(self) -> None:
        await self.refresh()

    async def _recover_from_loss(self) -> bool:
        """A call whose room is lost for good (not closed by the engine) ends: the engine
        is told (retried by the recovery until it answers), which closes the room for the
        other side too, so both sides see the call end. A call does not rejoin."""
        if self.call_id.value is not None and not self._over:
            await self.end()
        return False

    def _close_observables(self) -> None:
        self._unsubscribe_connected()
        for obs in (self.status, self.call_id, self.call):
            obs.close()
