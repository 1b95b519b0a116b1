"""Call lifecycle of a 1:1 call.

Rules of this file:
* The callee moves an unanswered call: ``ring``, ``accept``, ``reject``, ``busy``.
* The caller cancels an unanswered call with ``end`` (it ends, it is not "missed").
* Either party ends an active call with ``end``; ``end`` of a call that is already over
  (ended, rejected, busy, missed) is a documented no-op, so hang-up is idempotent.
* The engine (``SYSTEM``) marks an unanswered call ``missed`` when its ring deadline
  passes (``miss``; the deadline is an input, see ``rooms.calls``), and ends a call whose
  party left or whose room closed (``drop``).
* Everything else raises and leaves the status unchanged. Terminal states have no exits.
"""

from __future__ import annotations

from stream_core.machines.table import Actor, Rule, Table
from stream_core.models import UTDCallStatus as CallState

__all__ = ["CallState", "CALL_RULES", "CALL_TABLE", "UNANSWERED", "TERMINAL", "CALL_PUBLISH"]

UNANSWERED = (CallState.INITIATING, CallState.RINGING)
TERMINAL = (CallState.ENDED, CallState.REJECTED, CallState.BUSY, CallState.MISSED)

CALL_RULES: tuple[Rule[CallState], ...] = (
    Rule("ring", (CallState.INITIATING,), CallState.RINGING, Actor.CALLEE),
    Rule("accept", UNANSWERED, CallState.ACTIVE, Actor.CALLEE),
    Rule("reject", UNANSWERED, CallState.REJECTED, Actor.CALLEE),
    Rule("busy", UNANSWERED, CallState.BUSY, Actor.CALLEE),
    Rule("end", UNANSWERED, CallState.ENDED, Actor.CALLER, "caller cancels before an answer"),
    Rule("end", (CallState.ACTIVE,), CallState.ENDED, Actor.PARTY),
    Rule("end", TERMINAL, None, Actor.PARTY, "duplicate end of a finished call: no-op"),
    Rule("miss", UNANSWERED, CallState.MISSED, Actor.SYSTEM, "ring deadline passed"),
    Rule("drop", UNANSWERED + (CallState.ACTIVE,), CallState.ENDED, Actor.SYSTEM,
         "a party left the room or the room closed"),
)

CALL_TABLE = Table("call", CallState, CallState.INITIATING, CALL_RULES)

#: What each party may publish in each state (video calls add the camera). The caller
#: joins and publishes as soon as it starts the call, as the seed API promises.
_MIC = frozenset({"microphone"})
CALL_PUBLISH: dict[CallState, frozenset[str]] = {s: _MIC for s in UNANSWERED + (CallState.ACTIVE,)}
