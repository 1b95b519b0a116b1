"""The core's transition tables. Pure data + ``transitions``: no I/O, no clock, no asyncio."""

from stream_core.machines.call import CALL_TABLE, CallState
from stream_core.machines.seat import SEAT_TABLE, SeatState
from stream_core.machines.speaker import SPEAKER_TABLE, SpeakerState
from stream_core.machines.stage import STAGE_TABLE, StageState
from stream_core.machines.table import Actor, Rule, Table

__all__ = [
    "Actor", "Rule", "Table",
    "CALL_TABLE", "CallState",
    "STAGE_TABLE", "StageState",
    "SEAT_TABLE", "SeatState",
    "SPEAKER_TABLE", "SpeakerState",
    "ALL_TABLES",
]

#: Every table, for diagrams and exhaustive tests.
ALL_TABLES: tuple[Table, ...] = (CALL_TABLE, STAGE_TABLE, SEAT_TABLE, SPEAKER_TABLE)  # type: ignore[type-arg]
