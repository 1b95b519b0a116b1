"""A live stream's stage, authoritative in the engine and mirrored by clients.

Viewers are plain presence; only a participant who leaves ``VIEWER`` (hand raised, on
stage, host) gets a model on the room's one shared stage machine, and loses it on return.
So a stream with ten thousand viewers holds a handful of models, not ten thousand.
"""

from __future__ import annotations

from stream_core.effects import Effect, ParticipantRemoved, PublishChanged
from stream_core.limits import MAX_RAISED_HANDS, MAX_STAGE_MEMBERS, require_room_for
from stream_core.machines.stage import STAGE_PUBLISH, STAGE_TABLE, StageState
from stream_core.models import UTDStage, UTDStageMember
from stream_core.rooms.presence import Presence, check_identity

__all__ = ["LiveStage"]

_NOTHING: frozenset[str] = frozenset()


class _Slot:
    """One non-viewer's model on the shared stage machine (``transitions`` sets ``state``)."""

    state: StageState

    def __init__(self, identity: str) -> None:
        self.identity = identity

    def __repr__(self) -> str:
        return f"<_Slot {self.identity} {self.state.value}>"


class LiveStage:
    """Stage membership of one live stream. Every mutator takes the acting identity."""

    def __init__(self, room_name: str) -> None:
        self.presence = Presence(room_name)
        self.version = 0
        self._machine = STAGE_TABLE.new_machine()
        self._slots: dict[str, _Slot] = {}
        self._order: list[str] = []  # stage order: who came on stage first

    @property
    def room_name(self) -> str:
        return self.presence.room_name

    @property
    def host(self) -> str | None:
        return self.presence.host

    # -- presence -------------------------------------------------------------------
    def join(self, identity: str, *, as_host: bool = False, name: str | None = None) -> list[Effect]:
        """Presence, and for the host the ``admit_host`` row (from wherever it stood)."""
        self.presence.join(identity, as_host=as_host, name=name)
        if not as_host or self.state_of(identity) is StageState.HOST:
            return []
        return self._fire(None, identity, "admit_host")

    def leave(self, identity: str) -> list[Effect]:
        """A participant left the media room: it loses any stage slot or raised hand."""
        check_identity(identity)
        self.presence.forget(identity)
        slot = self._slots.get(identity)
        if slot is None or slot.state is StageState.HOST:
            return []
        before = self.publish_sources(identity)
        self._detach(identity)
        self._bump()
        return [PublishChanged(self.room_name, identity, before, _NOTHING)] if before else []

    def ban(self, actor: str, identity: str) -> list[Effect]:
        """Host removes ``identity`` and refuses it from now on."""
        self.presence.ban(actor, identity)
        effects = self.leave(identity)
        return effects + [ParticipantRemoved(self.room_name, identity, "banned")]

    # -- stage moves ----------------------------------------------------------------
    def request_stage(self, actor: str) -> list[Effect]:
        require_room_for("raised hands", self._count(StageState.HAND_RAISED), MAX_RAISED_HANDS)
        return self._fire(actor, actor, "raise_hand")

    def lower_hand(self, actor: str) -> list[Effect]:
        return self._fire(actor, actor, "lower_hand")

    def invite_to_stage(self, actor: str, identity: str) -> list[Effect]:
        if self.state_of(identity) is not StageState.ON_STAGE:
            require_room_for("co-publishers on stage", self._count(StageState.ON_STAGE),
                             MAX_STAGE_MEMBERS)
        return self._fire(actor, identity, "promote")

    def remove_from_stage(self, actor: str, identity: str) -> list[Effect]:
        return self._fire(actor, identity, "demote")

    def leave_stage(self, actor: str) -> list[Effect]:
        return self._fire(actor, actor, "step_down")

    def go_live(self, actor: str) -> frozenset[str]:
        """Check that ``actor`` may broadcast now (the ``go_live`` row); what it may publish.

        A client asks its mirror before it starts its own microphone and camera, so the
        rule "only the host goes live" is the table's, not a flag of the session.
        """
        check_identity(actor, "actor")
        STAGE_TABLE.check(self.state_of(actor), "go_live",
                          actors=self.presence.actors(actor, actor))
        return self.publish_sources(actor)

    # -- reading --------------------------------------------------------------------
    def state_of(self, identity: str) -> StageState:
        slot = self._slots.get(identity)
        return slot.state if slot is not None else StageState.VIEWER

    def publish_sources(self, identity: str) -> frozenset[str]:
        return STAGE_PUBLISH.get(self.state_of(identity), _NOTHING)

    @staticmethod
    def stage_publish_sources(stage: UTDStage, identity: str) -> frozenset[str]:
        """What ``identity`` may publish per a snapshot, without rebuilding the stage."""
        member = next((m for m in stage.members if m.identity == identity), None)
        if member is None:
            return _NOTHING
        return STAGE_PUBLISH.get(StageState(member.role or StageState.ON_STAGE.value), _NOTHING)

    def snapshot(self) -> UTDStage:
        names = self.presence.present
        members = [
            UTDStageMember(i, names.get(i), self._slots[i].state.value)
            for i in self._order
            if self._slots[i].state in (StageState.HOST, StageState.ON_STAGE)
        ]
        hands = tuple(i for i in self._order if self._slots[i].state is StageState.HAND_RAISED)
        return UTDStage(self.room_name, self.host, tuple(members), hands, self.version)

    @classmethod
    def restore(cls, stage: UTDStage, present: dict[str, str | None] | None = None,
                banned: set[str] | None = None) -> LiveStage:
        """Rebuild from a snapshot (engine start-up, client mirror)."""
        room = cls(stage.room_name)
        room.presence.host = stage.host
        room.presence.present = dict(present or {})
        room.presence.banned = set(banned or ())
        for member in stage.members:
            room.presence.present.setdefault(member.identity, member.name)
            room._attach(member.identity, StageState(member.role or StageState.ON_STAGE.value))
        for identity in stage.hands:
            room.presence.present.setdefault(identity, None)
            room._attach(identity, StageState.HAND_RAISED)
        room.version = stage.version
        return room

    def __repr__(self) -> str:
        return (f"<LiveStage {self.room_name!r} v{self.version} host={self.host!r} "
                f"slots={list(self._slots.values())!r}>")

    # -- internals ------------------------------------------------------------------
    def _count(self, state: StageState) -> int:
        return sum(1 for slot in self._slots.values() if slot.state is state)

    def _fire(self, actor: str | None, identity: str, trigger: str) -> list[Effect]:
        """``actor`` (``None``: the engine itself) fires ``trigger`` on ``identity``'s slot."""
        if actor is not None:
            check_identity(actor, "actor")
        self.presence.require_present(identity)
        if actor is not None and actor != identity:
            self.presence.require_present(actor)
        slot = self._slots.get(identity)
        state = slot.state if slot is not None else StageState.VIEWER
        actors = self.presence.actors(actor, identity)
        STAGE_TABLE.check(state, trigger, actors=actors)  # raise before touching anything
        before = STAGE_PUBLISH.get(state, _NOTHING)
        if slot is None:
            slot = self._attach(identity, StageState.VIEWER)
        STAGE_TABLE.fire(slot, trigger, actors=actors)
        if slot.state is StageState.VIEWER:
            self._detach(identity)
        else:
            # re-order so the stage lists publishers in the order they came up
            self._order.remove(identity)
            self._order.append(identity)
        self._bump()
        after = STAGE_PUBLISH.get(self.state_of(identity), _NOTHING)
        return [PublishChanged(self.room_name, identity, before, after)] if before != after else []

    def _attach(self, identity: str, state: StageState) -> _Slot:
        slot = _Slot(identity)
        self._machine.add_model(slot, initial=state)
        self._slots[identity] = slot
        self._order.append(identity)
        return slot

    def _detach(self, identity: str) -> None:
        slot = self._slots.pop(identity)
        self._machine.remove_model(slot)
        self._order.remove(identity)

    def _bump(self) -> None:
        self.version += 1
