"""A participant's speaking role in an audio room (listener ... speaker).

Rules of this file:
* ``take``: a listener takes a seat in free mode; the host takes one in any mode; an
  invited listener takes one in any mode (accepting the invitation). The seat mode is a
  row's condition (``when``): the room reports which mode holds, the row decides.
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

__all__ = ["SpeakerState", "SPEAKER_RULES", "SPEAKER_TABLE", "SPEAKER_PUBLISH", "mode_condition"]


class SpeakerState(enum.Enum):
    LISTENER = "listener"
    REQUESTING = "requesting"
    INVITED = "invited"
    SPEAKER = "speaker"


def mode_condition(mode: UTDSeatMode) -> str:
    """The condition (a row's ``when``) that holds in a room whose seat mode is ``mode``."""
    return f"{mode.value} mode"


L, R, I, S = (SpeakerState.LISTENER, SpeakerState.REQUESTING, SpeakerState.INVITED,
              SpeakerState.SPEAKER)

SPEAKER_RULES: tuple[Rule[SpeakerState], ...] = (
    Rule("take", (L,), S, Actor.SELF, "a listener sits down in free mode",
         when=mode_condition(UTDSeatMode.FREE)),
    Rule("take", (L,), S, Actor.HOST, "the host sits down in any mode (take_seat is always "
         "the actor's own seat, so HOST here is the host acting for itself)"),
    Rule("take", (I,), S, Actor.SELF, "accepting an invitation"),
    Rule("request", (L,), R, Actor.SELF, when=mode_condition(UTDSeatMode.REQUEST)),
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
