"""Call lifecycle of a 1:1 call.

Rules of this file:
* The callee moves an unanswered call: ``ring``, ``accept``, ``reject``, ``busy``.
* ``end`` of an unanswered call depends on who hangs up: the caller cancels it (it ends,
  it is not "missed"); the callee rejects it. Either party ends an active call with
  ``end``; ``end`` of a call that is already over (ended, rejected, busy, missed) is a
  documented no-op, so hang-up is idempotent.
* The engine (``SYSTEM``) marks an unanswered call ``missed`` when its ring deadline
  passes (``miss``; the deadline is an input, see ``rooms.calls``), and ends a call whose
  party left or whose room closed (``drop``). Both may race the parties (a ring timer
  firing as the callee accepts, a party leaving a call already over): ``miss`` of an
  answered or finished call and ``drop`` of a finished call are documented no-ops, so the
  engine fires them unconditionally.
* Everything else raises and leaves the status unchanged. Terminal states have no exits.
* What each party publishes is :data:`CALL_PUBLISH`, by call type and state.
"""

from __future__ import annotations

from stream_core.machines.table import Actor, Rule, Table
from stream_core.models import TERMINAL_CALL_STATUSES as TERMINAL
from stream_core.models import UNANSWERED_CALL_STATUSES as UNANSWERED
from stream_core.models import UTDCallStatus as CallState
from stream_core.models import UTDStreamType

__all__ = ["CallState", "CALL_RULES", "CALL_TABLE", "UNANSWERED", "TERMINAL", "CALL_PUBLISH"]

_ACTIVE = (CallState.ACTIVE,)

CALL_RULES: tuple[Rule[CallState], ...] = (
    Rule("ring", (CallState.INITIATING,), CallState.RINGING, Actor.CALLEE),
    Rule("accept", UNANSWERED, CallState.ACTIVE, Actor.CALLEE),
    Rule("reject", UNANSWERED, CallState.REJECTED, Actor.CALLEE),
    Rule("busy", UNANSWERED, CallState.BUSY, Actor.CALLEE),
    Rule("end", UNANSWERED, CallState.ENDED, Actor.CALLER, "caller cancels before an answer"),
    Rule("end", UNANSWERED, CallState.REJECTED, Actor.CALLEE,
         "callee hangs up before answering: that is a reject"),
    Rule("end", _ACTIVE, CallState.ENDED, Actor.PARTY),
    Rule("end", TERMINAL, None, Actor.PARTY, "duplicate end of a finished call: no-op"),
    Rule("miss", UNANSWERED, CallState.MISSED, Actor.SYSTEM, "ring deadline passed"),
    Rule("miss", _ACTIVE + TERMINAL, None, Actor.SYSTEM,
         "the ring timer raced an accept or an end: no-op"),
    Rule("drop", UNANSWERED + _ACTIVE, CallState.ENDED, Actor.SYSTEM,
         "a party left the room or the room closed"),
    Rule("drop", TERMINAL, None, Actor.SYSTEM, "a party left a call already over: no-op"),
)

CALL_TABLE = Table("call", CallState, CallState.INITIATING, CALL_RULES)

_MIC = frozenset({"microphone"})
_AV = frozenset({"microphone", "camera"})

#: What each party publishes, by call type and state (a state not listed: nothing). The
#: caller joins and publishes as soon as it starts the call, as the seed API promises.
CALL_PUBLISH: dict[UTDStreamType, dict[CallState, frozenset[str]]] = {
    UTDStreamType.AUDIO_CALL: {
        CallState.INITIATING: _MIC, CallState.RINGING: _MIC, CallState.ACTIVE: _MIC,
    },
    UTDStreamType.VIDEO_CALL: {
        CallState.INITIATING: _AV, CallState.RINGING: _AV, CallState.ACTIVE: _AV,
    },
}
