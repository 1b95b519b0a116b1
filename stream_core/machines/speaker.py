"""A participant's speaking role in an audio room (listener ... speaker).

Rules of this file:
* ``take``: a listener takes a seat in free mode; an invited listener in any mode. The host
  may take a seat in any mode (the coordinator grants the host that exemption).
* ``request`` (request mode only) asks to speak; the requester may ``cancel_request``; the
  host ``approve``s (the requester is seated) or ``deny``s.
* The host ``invite``s a listener or requester; the invitee takes a seat or ``decline``s.
* A speaker ``leave``s, is ``kick``ed by the host, or is ``move``d to another seat (by
  itself or the host; the role does not change). One seat per participant: a speaker
  cannot ``take`` again.
* A speaker publishes the microphone (unless the host muted its seat).
"""

from __future__ import annotations

import enum

from stream_core.machines.table import Actor, Rule, Table
from stream_core.models import UTDSeatMode

__all__ = ["SpeakerState", "SPEAKER_RULES", "SPEAKER_TABLE", "MODE_ONLY", "SPEAKER_PUBLISH"]


class SpeakerState(enum.Enum):
    LISTENER = "listener"
    REQUESTING = "requesting"
    INVITED = "invited"
    SPEAKER = "speaker"


L, R, I, S = (SpeakerState.LISTENER, SpeakerState.REQUESTING, SpeakerState.INVITED,
              SpeakerState.SPEAKER)

SPEAKER_RULES: tuple[Rule[SpeakerState], ...] = (
    Rule("take", (L,), S, Actor.SELF, "free mode, or the host in any mode"),
    Rule("take", (I,), S, Actor.SELF, "accepting an invitation"),
    Rule("request", (L,), R, Actor.SELF, "request mode only"),
    Rule("cancel_request", (R,), L, Actor.SELF),
    Rule("approve", (R,), S, Actor.HOST),
    Rule("deny", (R,), L, Actor.HOST),
    Rule("invite", (L, R), I, Actor.HOST),
    Rule("decline", (I,), L, Actor.SELF),
    Rule("leave", (S,), L, Actor.SELF),
    Rule("kick", (S,), L, Actor.HOST),
    Rule("move", (S,), None, Actor.SELF_OR_HOST, "changes the seat, not the role"),
)

SPEAKER_TABLE = Table("speaker", SpeakerState, SpeakerState.LISTENER, SPEAKER_RULES)

#: (trigger, source) pairs legal only in one seat mode.
MODE_ONLY: dict[tuple[str, SpeakerState], UTDSeatMode] = {
    ("take", L): UTDSeatMode.FREE,
    ("request", L): UTDSeatMode.REQUEST,
}

SPEAKER_PUBLISH: dict[SpeakerState, frozenset[str]] = {S: frozenset({"microphone"})}
