"""1:1 calls, authoritative in the engine and mirrored by each party's client.

A :class:`CallLedger` keeps many calls on one shared call machine. Time is an input: the
ledger never reads a clock, callers pass ``now`` and ask :meth:`CallLedger.next_deadline`
when to come back and :meth:`CallLedger.expire` the calls whose ring deadline passed.
A call admits exactly two identities, its caller and its callee (:meth:`may_join`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stream_core.effects import Effect, PublishChanged, RoomClosed
from stream_core.errors import UTDStreamException
from stream_core.machines.call import CALL_PUBLISH, CALL_TABLE, TERMINAL, UNANSWERED, CallState
from stream_core.machines.table import Actor
from stream_core.models import UTDCall, UTDStreamType
from stream_core.rooms.presence import check_identity

__all__ = ["CallLedger", "DEFAULT_RING_TIMEOUT", "call_publish_sources"]

DEFAULT_RING_TIMEOUT = 30.0
_NOTHING: frozenset[str] = frozenset()


def call_publish_sources(call_type: UTDStreamType, state: CallState) -> frozenset[str]:
    """What each party of a call of ``call_type`` may publish in ``state``."""
    sources = CALL_PUBLISH.get(state, _NOTHING)
    return sources | {"camera"} if sources and call_type.has_video else sources


class _CallModel:
    state: CallState

    def __init__(self, call: UTDCall) -> None:
        self.call = call  # everything but the status, which the machine owns

    def __repr__(self) -> str:
        return f"<_CallModel {self.call.call_id} {self.state.value}>"


class CallLedger:
    """Calls by id, each on the ledger's one shared call machine."""

    def __init__(self, *, ring_timeout: float = DEFAULT_RING_TIMEOUT) -> None:
        if ring_timeout <= 0:
            raise UTDStreamException.invalid("ring_timeout must be positive", field="ring_timeout")
        self.ring_timeout = ring_timeout
        self._machine = CALL_TABLE.new_machine()
        self._calls: dict[str, _CallModel] = {}

    def create(self, *, call_id: str, caller: str, callee: str, type: UTDStreamType,
               now: float, room_name: str | None = None, caller_name: str | None = None,
               callee_name: str | None = None, metadata: dict[str, Any] | None = None) -> UTDCall:
        check_identity(call_id, "call_id")
        check_identity(caller, "caller_identity")
        check_identity(callee, "callee_identity")
        if not isinstance(type, UTDStreamType) or not type.is_call:
            raise UTDStreamException.invalid("type must be audio_call or video_call", field="type")
        if caller == callee:
            raise UTDStreamException.invalid("a call needs two different identities",
                                             field="callee_identity")
        if call_id in self._calls:
            raise UTDStreamException.conflict(f"call {call_id!r} already exists")
        call = UTDCall(call_id=call_id, status=CallState.INITIATING, type=type,
                       caller_identity=caller, callee_identity=callee,
                       room_name=room_name or f"call-{call_id}", caller_name=caller_name,
                       callee_name=callee_name, metadata=dict(metadata or {}), created_at=now,
                       ring_deadline=now + self.ring_timeout)
        return self.restore(call)

    def restore(self, call: UTDCall) -> UTDCall:
        """Add a call in whatever status it has (engine start-up, client mirror)."""
        if call.call_id in self._calls:  # replace: detach the old model from the machine
            self.discard(call.call_id)
        model = _CallModel(call)
        self._machine.add_model(model, initial=call.status)
        self._calls[call.call_id] = model
        return self.get(call.call_id)

    def get(self, call_id: str) -> UTDCall:
        model = self._model(call_id)
        return replace(model.call, status=model.state)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def apply(self, call_id: str, trigger: str, *, actor: str | None) -> tuple[UTDCall, list[Effect]]:
        """``actor`` (``None``: the engine itself) fires ``trigger`` on the call."""
        model = self._model(call_id)
        before = model.state
        CALL_TABLE.fire(model, trigger, actors=self._actors(model.call, actor))
        if trigger == "end" and before is not model.state and actor is not None:
            model.call = replace(model.call, ended_by=actor)
        return self.get(call_id), self._effects(model.call, before, model.state)

    def follow(self, call: UTDCall) -> tuple[UTDCall, list[Effect]]:
        """Mirror the engine's view of a call: move along the table to ``call.status``.

        A client trusts the engine's status but still refuses a jump no table row allows
        (e.g. ``missed`` back to ``ringing``), which would mean a stale or corrupt answer.
        """
        if call.call_id not in self._calls:
            self.restore(call)
            return self.get(call.call_id), self._effects(call, CallState.INITIATING, call.status)
        model = self._model(call.call_id)
        before = model.state
        rule = None if before is call.status else CALL_TABLE.path(before, call.status)
        if before is not call.status and rule is None:
            raise UTDStreamException.illegal(
                f"call: engine reported {call.status.value} after {before.value}")
        model.call = replace(call, status=before)
        if rule is None:
            return self.get(call.call_id), []
        CALL_TABLE.fire(model, rule.trigger, actors={rule.actor})
        return self.get(call.call_id), self._effects(model.call, before, model.state)

    def may_join(self, call_id: str, identity: str) -> bool:
        """Only the two parties of a call, and only while it is not over, may join its room."""
        model = self._model(call_id)
        return identity in (model.call.caller_identity, model.call.callee_identity) and \
            model.state not in TERMINAL

    def calls_for(self, identity: str, *, statuses: tuple[CallState, ...] = UNANSWERED,
                  as_callee: bool = True) -> list[UTDCall]:
        out = []
        for model in self._calls.values():
            party = model.call.callee_identity if as_callee else model.call.caller_identity
            if party == identity and model.state in statuses:
                out.append(self.get(model.call.call_id))
        return sorted(out, key=lambda c: c.created_at)

    def next_deadline(self) -> float | None:
        """The earliest ring deadline of an unanswered call: when to call :meth:`expire`."""
        deadlines = [m.call.ring_deadline for m in self._calls.values()
                     if m.state in UNANSWERED and m.call.ring_deadline is not None]
        return min(deadlines, default=None)

    def expire(self, now: float) -> list[UTDCall]:
        """Mark every unanswered call whose deadline is at or before ``now`` missed."""
        missed = []
        for model in list(self._calls.values()):
            deadline = model.call.ring_deadline
            if model.state in UNANSWERED and deadline is not None and now >= deadline:
                CALL_TABLE.fire(model, "miss", actors={Actor.SYSTEM})
                missed.append(self.get(model.call.call_id))
        return missed

    def discard(self, call_id: str) -> None:
        """Forget a call (after it is persisted and over) so the machine stays small."""
        self._machine.remove_model(self._model(call_id))
        del self._calls[call_id]

    def __len__(self) -> int:
        return len(self._calls)

    def __repr__(self) -> str:
        return f"<CallLedger {list(self._calls.values())!r}>"

    def _model(self, call_id: object) -> _CallModel:
        if not isinstance(call_id, str) or call_id not in self._calls:
            raise UTDStreamException.not_found(f"unknown call {call_id!r}")
        return self._calls[call_id]

    @staticmethod
    def _actors(call: UTDCall, actor: str | None) -> set[Actor]:
        if actor is None:
            return {Actor.SYSTEM}
        held = set()
        if actor == call.caller_identity:
            held.add(Actor.CALLER)
        if actor == call.callee_identity:
            held.add(Actor.CALLEE)
        if not held:
            raise UTDStreamException.forbidden("only the two parties of a call may act on it")
        return held

    @staticmethod
    def _effects(call: UTDCall, before: CallState, after: CallState) -> list[Effect]:
        if after in TERMINAL and before not in TERMINAL and call.room_name:
            # closing the room ends every grant at once; revoking first would only race
            # the parties' unpublish round trips against the room's deletion
            return [RoomClosed(call.room_name)]
        effects: list[Effect] = []
        old = call_publish_sources(call.type, before)
        new = call_publish_sources(call.type, after)
        if old != new:
            for party in (call.caller_identity, call.callee_identity):
                effects.append(PublishChanged(call.room_name or "", party, old, new))
        return effects
