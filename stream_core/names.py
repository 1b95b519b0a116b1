"""Every name the engine accepts, checked once, and the media server's names built from them.

One check per kind of name (identities, room names, app ids, call ids), used by the wire
schemas, the engine service, the rooms and the client alike, so a name refused in one place
is refused everywhere (a field that names it gets a 422):

* whole-string rules (``fullmatch``: a trailing newline is not "the end");
* no control or format characters, no lone surrogates, no line separators, no leading or
  trailing white space (each makes a look-alike of another name, or a name LiveKit would
  store differently from us);
* bounded lengths, so every name fits the database and the media server.

LiveKit rooms of all apps share one namespace. :func:`livekit_room_name` and
:func:`livekit_call_name` map ``(app, kind, name)`` injectively into it: app ids cannot
contain the separator ``~``, the kind is one of two fixed words, and the name comes last,
so :func:`parse_livekit_name` recovers all three. A room name can therefore never reach a
call's media room, and two apps can never claim the same one.
"""

from __future__ import annotations

import re
import unicodedata

from stream_core.errors import UTDStreamException

__all__ = ["MAX_IDENTITY_LENGTH", "MAX_ROOM_NAME_LENGTH", "MAX_APP_ID_LENGTH",
           "check_identity", "check_room_name", "check_app_id", "check_call_id",
           "livekit_room_name", "livekit_call_name", "parse_livekit_name"]

MAX_IDENTITY_LENGTH = 128
MAX_ROOM_NAME_LENGTH = 96
MAX_APP_ID_LENGTH = 64
MAX_CALL_ID_LENGTH = 64

_ROOM = re.compile(r"[A-Za-z0-9_.:-]+")
_APP = re.compile(r"[A-Za-z0-9_-]+")
_CALL = re.compile(r"[A-Za-z0-9_-]+")
#: Unicode categories no name may contain: controls, format characters (zero-width and
#: direction marks), surrogates, line and paragraph separators.
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SEP = "~"
_KINDS = ("room", "call")


def check_identity(identity: object, field_name: str = "identity") -> str:
    """An identity (or display-free name such as an app key): printable text, 1-128 chars."""
    text = _text(identity, field_name, MAX_IDENTITY_LENGTH)
    if any(unicodedata.category(c) in _REFUSED for c in text):
        raise UTDStreamException.invalid(
            f"{field_name} must not contain control, format or separator characters",
            field=field_name)
    return text


def check_room_name(name: object, field_name: str = "room_name") -> str:
    """A room name: 1-96 of ``A-Z a-z 0-9 _ . : -``, and not only dots."""
    text = _text(name, field_name, MAX_ROOM_NAME_LENGTH)
    if not _ROOM.fullmatch(text) or not text.strip("."):
        raise UTDStreamException.invalid(
            f"{field_name} must be 1-{MAX_ROOM_NAME_LENGTH} letters, digits or _ . : - "
            "(not only dots)", field=field_name)
    return text


def check_app_id(app_id: object, field_name: str = "app_id") -> str:
    """An app id: 1-64 of ``A-Z a-z 0-9 _ -`` (never the media-name separator ``~``)."""
    text = _text(app_id, field_name, MAX_APP_ID_LENGTH)
    if not _APP.fullmatch(text):
        raise UTDStreamException.invalid(
            f"{field_name} must be 1-{MAX_APP_ID_LENGTH} letters, digits, _ or -",
            field=field_name)
    return text


def check_call_id(call_id: object, field_name: str = "call_id") -> str:
    text = _text(call_id, field_name, MAX_CALL_ID_LENGTH)
    if not _CALL.fullmatch(text):
        raise UTDStreamException.invalid(f"{field_name} must be letters, digits, _ or -",
                                         field=field_name)
    return text


def livekit_room_name(app_id: str, room_name: str) -> str:
    """The media server's name for an app's audio room or live stream."""
    return _SEP.join((check_app_id(app_id), "room", check_room_name(room_name)))


def livekit_call_name(app_id: str, call_id: str) -> str:
    """The media server's name for an app's 1:1 call: unreachable by any room name."""
    return _SEP.join((check_app_id(app_id), "call", check_call_id(call_id)))


def parse_livekit_name(name: str) -> tuple[str, str, str]:
    """``(app_id, kind, name)`` back from a media-server name (the inverse of the two above)."""
    app_id, kind, rest = name.split(_SEP, 2)
    if kind not in _KINDS:
        raise ValueError(f"not a utd-stream media name: {name!r}")
    return app_id, kind, rest


def _text(value: object, field_name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UTDStreamException.invalid(f"{field_name} must be a non-empty string",
                                         field=field_name)
    if len(value) > limit:
        raise UTDStreamException.invalid(f"{field_name} must be at most {limit} characters",
                                         field=field_name)
    if value != value.strip():
        raise UTDStreamException.invalid(
            f"{field_name} must not start or end with white space", field=field_name)
    return value
