"""How much one room or call may hold, so its whole state always fits in one media push.

The engine pushes a room's entire state into the LiveKit room metadata, which LiveKit caps
at 512 KiB. Each list that clients can grow has a cap here, sized for the worst case
(every identity and display name at its longest, in 4-byte UTF-8 characters) to keep the
pushed document under :data:`MAX_STATE_BYTES`, half of LiveKit's limit; the engine also
refuses any change whose document would exceed it, as a backstop. Over a cap an operation
is refused with 409 ``limit_reached`` (422 for an oversized field) and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from stream_core.errors import ErrorCode, UTDStreamException

__all__ = ["MAX_SPEAK_REQUESTS", "MAX_SEAT_INVITES", "MAX_RAISED_HANDS", "MAX_STAGE_MEMBERS",
           "MAX_CALL_METADATA_BYTES", "MAX_STATE_BYTES", "require_room_for",
           "check_call_metadata", "check_state_size"]

MAX_SPEAK_REQUESTS = 128  # pending requests to speak in one audio room
MAX_SEAT_INVITES = 64  # pending invitations to speak in one audio room
MAX_RAISED_HANDS = 128  # raised hands in one live stream
MAX_STAGE_MEMBERS = 128  # co-publishers on one live stream's stage (the host aside)
MAX_CALL_METADATA_BYTES = 8 * 1024  # a call's app metadata, as UTF-8 JSON
MAX_STATE_BYTES = 256 * 1024  # one pushed state document, as UTF-8


def require_room_for(what: str, count: int, cap: int) -> None:
    """Refuse adding one more ``what`` when ``count`` of them already reach ``cap``."""
    if count >= cap:
        raise UTDStreamException.conflict(f"this room already has {cap} {what}, the most it "
                                          "may hold", code=ErrorCode.LIMIT_REACHED)


def check_call_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    data = dict(metadata or {})
    size = len(json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > MAX_CALL_METADATA_BYTES:
        raise UTDStreamException.invalid(
            f"metadata is {size} bytes as JSON; at most {MAX_CALL_METADATA_BYTES} are kept",
            field="metadata")
    return data


def check_state_size(document: str) -> str:
    """The backstop: a state document that would not fit one push is refused (409)."""
    size = len(document.encode("utf-8"))
    if size > MAX_STATE_BYTES:
        raise UTDStreamException.conflict(
            f"the room's state would be {size} bytes, over the {MAX_STATE_BYTES} one push "
            "carries", code=ErrorCode.LIMIT_REACHED)
    return document
