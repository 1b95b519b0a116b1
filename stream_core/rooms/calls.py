"""1:1 calls, authoritative in the engine and mirrored by each party's client.

A call is an immutable :class:`~stream_core.models.UTDCall`; :func:`apply_call` fires a
trigger on it through the call table and returns the new value with the effects to carry
out. It touches no shared state, so the engine may call it from any thread at once, with no
lock: the database, not a process's memory, decides which of two racing writes wins.
:func:`expire_call` is the ring timer's move: time is an input, never read from a clock.

A :class:`CallLedger` keeps calls by id for a client's mirror and for tests, built on the
same functions. A call admits exactly two identities, its caller and its callee
(:meth:`CallLedger.may_join`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stream_core.effects import Effect, PublishChanged, RoomClosed
from stream_core.errors import UTDStreamException
from stream_core.machines.call import CALL_PUBLISH, CALL_TABLE, UNANSWERED, CallState
from stream_core.machines.table import Actor
from stream_core.models import UTDCall, UTDStreamType
from stream_core.limits import check_call_metadata
from stream_core.names import check_call_id, check_identity

__all__ = ["CallLedger", "DEFAULT_RING_TIMEOUT", "apply_call", "expire_call", "call_actors",
           "call_publish_sources", "noop_for", "open_call"]

DEFAULT_RING_TIMEOUT = 30.0
_NOTHING: frozenset[str] = frozenset()


def call_publish_sources(call_type: UTDStreamType, state: CallState) -> frozenset[str]:
    """What each party of a call of ``call_type`` may publish in ``state`` (a table read)."""
    return CALL_PUBLISH.get(call_type, {}).get(state, _NOTHING)


def call_actors(call: UTDCall, actor: str | None) -> set[Actor]:
    """The roles ``actor`` (``None``: the engine itself) holds towards ``call``; 403 if none."""
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


def apply_call(call: UTDCall, trigger: str, actor: str | None) -> tuple[UTDCall, list[Effect]]:
    """``actor`` (``None``: the engine) fires ``trigger`` on ``call``: the new call, effects.

    Pure: ``call`` is not changed, and a refusal (403/409/422) raises before anything is
    computed. A documented no-op row returns ``call`` itself and no effects.
    """
    return _move(call, trigger, call_actors(call, actor), actor)


def noop_for(call: UTDCall, trigger: str, actor: str | None) -> bool:
    """True if ``trigger`` by ``actor`` is the table's documented no-op for ``call``.

    Lets a client skip a round trip whose answer the table already gives (a second
    hang-up); anything else, refusals included, is the engine's to answer.
    """
    try:
        rule = CALL_TABLE.check(call.status, trigger, actors=call_actors(call, actor))
    except UTDStreamException:
        return False
    return rule.dest is None


def expire_call(call: UTDCall, now: float) -> tuple[UTDCall, list[Effect]]:
    """The ring timer at ``now``: ``miss`` once the ring deadline passed, else nothing.

    A call answered or over by then is the table's no-op row, so the timer needs no guard.
    """
    if call.ring_deadline is None or now < call.ring_deadline:
        return call, []
    return _move(call, "miss", {Actor.SYSTEM}, None)


def _move(call: UTDCall, trigger: str, actors: set[Actor],
          actor: str | None) -> tuple[UTDCall, list[Effect]]:
    after = CALL_TABLE.target(call.status, trigger, actors=actors)
    if after is call.status:
        return call, []
    ended_by = actor if after is CallState.ENDED and actor is not None else call.ended_by
    moved = replace(call, status=after, ended_by=ended_by)
    return moved, _effects(moved, call.status, after)


def _effects(call: UTDCall, before: CallState, after: CallState) -> list[Effect]:
    if after.is_terminal and not before.is_terminal and call.room_name:
        # closing the room ends every grant at once; revoking first would only race
        # the parties' unpublish round trips against the room's deletion
        return [RoomClosed(call.room_name)]
    old = call_publish_sources(call.type, before)
    new = call_publish_sources(call.type, after)
    if old == new:
        return []
    return [PublishChanged(call.room_name or "", party, old, new)
            for party in (call.caller_identity, call.callee_identity)]


class CallLedger:
    """Calls by id (a client's mirror, tests); every move is :func:`apply_call`'s."""

    def __init__(self, *, ring_timeout: float = DEFAULT_RING_TIMEOUT) -> None:
        if ring_timeout <= 0:
            raise UTDStreamException.invalid("ring_timeout must be positive", field="ring_timeout")
        self.ring_timeout = ring_timeout
        self._calls: dict[str, UTDCall] = {}

    def create(self, *, call_id: str, caller: str, callee: str, type: UTDStreamType,
               now: float, room_name: str | None = None, caller_name: str | None = None,
               callee_name: str | None = None, metadata: dict[str, Any] | None = None) -> UTDCall:
        check_call_id(call_id)
        check_identity(caller, "caller_identity")
        check_identity(callee, "callee_identity")
        if not isinstance(type, UTDStreamType) or not type.is_call:
            raise UTDStreamException.invalid("type must be audio_call or video_call", field="type")
        if caller == callee:
            raise UTDStreamException.invalid("a call needs two different identities",
                                             field="callee_identity")
        if call_id in self._calls:
            raise UTDStreamException.conflict(f"call {call_id!r} already exists")
        call = UTDCall(call_id=call_id, status=CALL_TABLE.initial, type=type,
                       caller_identity=caller, callee_identity=callee,
                       room_name=room_name or f"call-{call_id}", caller_name=caller_name,
                       callee_name=callee_name, metadata=check_call_metadata(metadata),
                       created_at=now,
                       ring_deadline=now + self.ring_timeout)
        return self.restore(call)

    def restore(self, call: UTDCall) -> UTDCall:
        """Add (or replace) a call in whatever status it has (engine start-up, client mirror)."""
        self._calls[call.call_id] = call
        return call

    def get(self, call_id: str) -> UTDCall:
        return self._call(call_id)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def apply(self, call_id: str, trigger: str, *, actor: str | None) -> tuple[UTDCall, list[Effect]]:
        """``actor`` (``None``: the engine itself) fires ``trigger`` on the call."""
        call, effects = apply_call(self._call(call_id), trigger, actor)
        self._calls[call_id] = call
        return call, effects

    def follow(self, call: UTDCall) -> tuple[UTDCall, list[Effect]]:
        """Mirror the engine's view of a call: move along the table to ``call.status``.

        A client trusts the engine's status but still refuses a jump no table row allows
        (e.g. ``missed`` back to ``ringing``), which would mean a stale or corrupt answer.
        """
        known = self._calls.get(call.call_id)
        if known is None:
            self.restore(call)
            return self.get(call.call_id), _effects(call, CALL_TABLE.initial, call.status)
        before = known.status
        rule = None if before is call.status else CALL_TABLE.path(before, call.status)
        if before is not call.status and rule is None:
            raise UTDStreamException.illegal(
                f"call: engine reported {call.status.value} after {before.value}")
        mirrored = replace(call, status=before)
        if rule is None:
            self._calls[call.call_id] = mirrored
            return mirrored, []
        moved, effects = _move(mirrored, rule.trigger, {rule.actor}, None)
        self._calls[call.call_id] = moved
        return moved, effects

    def may_join(self, call_id: str, identity: str) -> bool:
        """Only the two parties of a call, and only while it is not over, may join its room."""
        call = self._call(call_id)
        return identity in (call.caller_identity, call.callee_identity) and \
            not call.status.is_terminal

    def calls_for(self, identity: str, *, statuses: tuple[CallState, ...] = UNANSWERED,
                  as_callee: bool = True) -> list[UTDCall]:
        out = [c for c in self._calls.values()
               if (c.callee_identity if as_callee else c.caller_identity) == identity
               and c.status in statuses]
        return sorted(out, key=lambda c: c.created_at)

    def next_deadline(self) -> float | None:
        """The earliest ring deadline of an unanswered call: when to call :meth:`expire`."""
        deadlines = [c.ring_deadline for c in self._calls.values()
                     if c.status.is_unanswered and c.ring_deadline is not None]
        return min(deadlines, default=None)

    def expire(self, now: float) -> list[UTDCall]:
        """Mark every unanswered call whose deadline is at or before ``now`` missed."""
        missed = []
        for call in list(self._calls.values()):
            expired, _ = expire_call(call, now)
            if expired is not call:
                self._calls[call.call_id] = expired
                missed.append(expired)
        return missed

    def discard(self, call_id: str) -> None:
        """Forget a call (after it is persisted and over)."""
        self._call(call_id)
        del self._calls[call_id]

    def __len__(self) -> int:
        return len(self._calls)

    def __repr__(self) -> str:
        calls = [f"{c.call_id} {c.status.value}" for c in self._calls.values()]
        return f"<CallLedger {calls!r}>"

    def _call(self, call_id: object) -> UTDCall:
        if not isinstance(call_id, str) or call_id not in self._calls:
            raise UTDStreamException.not_found(f"unknown call {call_id!r}")
        return self._calls[call_id]


def open_call(*, call_id: str, caller: str, callee: str, type: UTDStreamType, now: float,
              ring_timeout: float = DEFAULT_RING_TIMEOUT, caller_name: str | None = None,
              callee_name: str | None = None,
              metadata: dict[str, Any] | None = None) -> UTDCall:
    """A new call, validated, in the table's initial state (pure: nothing is kept)."""
    return CallLedger(ring_timeout=ring_timeout).create(
        call_id=call_id, caller=caller, callee=callee, type=type, now=now,
        caller_name=caller_name, callee_name=callee_name, metadata=metadata)
