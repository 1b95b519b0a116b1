"""``UTDLiveStreamSession``: one host, unlimited viewers, a stage of co-publishers.

Promotion is server-authoritative: when the engine puts this viewer on stage, the push
arrives through the room metadata and the session publishes microphone and camera once the
media server confirms the grant; when it is demoted, both stop. The host publishes only
after :meth:`go_live`.
"""

from __future__ import annotations

from typing import Any

from stream_core.machines.stage import StageState
from stream_core.models import UTDStage, UTDStageMember, UTDStreamType
from stream_core import operations as ops
from stream_core.observable import Observable
from stream_core.operations import Operation
from stream_core.ports import EnginePort, MediaPort
from stream_core.rooms.stage import LiveStage
from stream_core.sessions.base import UTDSession

__all__ = ["UTDLiveStreamSession"]


class UTDLiveStreamSession(UTDSession):
    """A joined live stream. ``stage`` lists publishers; ``hands`` viewers asking to join."""

    def __init__(self, *, engine: EnginePort, media: MediaPort, identity: str, user_token: str,
                 room_name: str, is_host: bool, **kwargs: Any) -> None:
        super().__init__(type=UTDStreamType.LIVE_STREAM, engine=engine, media=media,
                         identity=identity, user_token=user_token, room_name=room_name, **kwargs)
        self.room_name = room_name
        self.is_host = is_host
        self.stage: Observable[tuple[UTDStageMember, ...]] = Observable((), name="stage")
        self.hands: Observable[tuple[str, ...]] = Observable((), name="hands")
        self.on_stage = Observable(is_host, name="on_stage")
        self._snapshot: UTDStage | None = None
        self._live: frozenset[str] = frozenset()

    async def go_live(self, *, with_video: bool = True) -> None:
        """Host: start broadcasting microphone (and camera).

        Who may go live is decided by the stage table on the engine's current stage (a
        viewer gets 409: it is not in the host state; viewers ``request_stage()``).
        """
        await self.refresh_stage()
        self._mirror().go_live(self.identity)
        self._live = frozenset({"microphone", "camera"} if with_video else {"microphone"})
        await self._follow_grants()

    async def stop_live(self) -> None:
        self._live = frozenset()
        await self._follow_grants()

    async def refresh_stage(self) -> None:
        await self._stage_op(ops.GET_STAGE)

    async def invite_to_stage(self, identity: str) -> None:
        """Host: promote a viewer to co-publish audio and video. No cap."""
        await self._stage_op(ops.INVITE_TO_STAGE, identity=identity)

    async def remove_from_stage(self, identity: str) -> None:
        """Host: send a co-publisher back to the audience."""
        await self._stage_op(ops.REMOVE_FROM_STAGE, identity=identity)

    async def request_stage(self) -> None:
        """Viewer: raise a hand; the host sees it in ``hands``."""
        await self._stage_op(ops.REQUEST_STAGE)

    async def lower_hand(self) -> None:
        await self._stage_op(ops.LOWER_HAND)

    async def leave_stage(self) -> None:
        """Co-publisher: step down to viewer; camera and microphone stop."""
        await self._stage_op(ops.LEAVE_STAGE)

    async def ban(self, identity: str) -> None:
        await self._run(ops.BAN, identity=identity)
        await self.refresh_stage()

    # -- internals ------------------------------------------------------------------
    async def _read_state(self) -> None:
        await self.refresh_stage()

    async def _reread_state(self) -> None:
        await self.refresh_stage()

    async def _stage_op(self, op: Operation[UTDStage], **args: Any) -> None:
        stage = await self._run(op, **args)
        self._apply_stage(stage)
        await self._follow_grants()

    def _apply_stage(self, stage: UTDStage) -> bool:
        if not self._accept_version(stage.version):
            return False
        self._snapshot = stage
        self.stage.set(stage.members)
        self.hands.set(stage.hands)
        self.on_stage.set(any(m.identity == self.identity for m in stage.members))
        return True

    def _apply_state(self, state: dict[str, Any]) -> bool:
        stage = state.get("stage")
        return stage is not None and self._apply_stage(stage)

    def _mirror(self) -> LiveStage:
        """The engine's stage as last seen, with the very rules the engine applies."""
        return LiveStage.restore(self._snapshot or UTDStage(self.room_name, None))

    def _wanted_sources(self) -> frozenset[str]:
        stage = self._mirror()
        granted = stage.publish_sources(self.identity)
        # the host's grant is what it may broadcast; it broadcasts what it put live
        return granted & self._live if stage.state_of(self.identity) is StageState.HOST \
            else granted

    def _close_observables(self) -> None:
        for obs in (self.stage, self.hands, self.on_stage):
            obs.close()
