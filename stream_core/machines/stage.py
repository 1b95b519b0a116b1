"""Stage membership of one participant of a live stream.

Rules of this file:
* A viewer raises a hand (and may lower it); the host promotes a viewer, hand raised or
  not, onto the stage; there is no cap on how many stand there.
* The host demotes an on-stage co-publisher; a co-publisher may step down by itself.
* The engine (``SYSTEM``) admits the room's host when it joins with a host token
  (``admit_host``), from wherever that participant stood; the host is then always on
  stage: no rule leaves ``HOST``.
* On stage (and as host) a participant publishes microphone and camera. Only the host
  ``go_live``s: it starts broadcasting what its grant allows, a choice of its client that
  changes no stage state (a documented no-op row; from any other state it is illegal).
"""

from __future__ import annotations

import enum

from stream_core.machines.table import Actor, Rule, Table

__all__ = ["StageState", "STAGE_RULES", "STAGE_TABLE", "STAGE_PUBLISH"]


class StageState(enum.Enum):
    VIEWER = "viewer"
    HAND_RAISED = "hand_raised"
    ON_STAGE = "on_stage"
    HOST = "host"


STAGE_RULES: tuple[Rule[StageState], ...] = (
    Rule("raise_hand", (StageState.VIEWER,), StageState.HAND_RAISED, Actor.SELF),
    Rule("lower_hand", (StageState.HAND_RAISED,), StageState.VIEWER, Actor.SELF),
    Rule("promote", (StageState.VIEWER, StageState.HAND_RAISED), StageState.ON_STAGE, Actor.HOST),
    Rule("demote", (StageState.ON_STAGE,), StageState.VIEWER, Actor.HOST),
    Rule("step_down", (StageState.ON_STAGE,), StageState.VIEWER, Actor.SELF),
    Rule("admit_host", (StageState.VIEWER, StageState.HAND_RAISED, StageState.ON_STAGE),
         StageState.HOST, Actor.SYSTEM, "the room's host joins with a host token"),
    Rule("go_live", (StageState.HOST,), None, Actor.SELF,
         "the host starts broadcasting: a client's choice, the stage is unchanged"),
)

STAGE_TABLE = Table("stage", StageState, StageState.VIEWER, STAGE_RULES)

_AV = frozenset({"microphone", "camera"})
STAGE_PUBLISH: dict[StageState, frozenset[str]] = {StageState.ON_STAGE: _AV, StageState.HOST: _AV}
