"""LiveKit access tokens and track-source names: what a grant looks like on the wire.

Kept apart from the RoomService client (``livekit_control``) because minting is local
computation: an HS256 JWT signed with the API secret, no call to the server.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from livekit import api
from livekit.protocol.models import TrackSource

__all__ = ["TRACK_SOURCE_NAMES", "SOURCE_BY_VALUE", "TRACK_KIND_NAMES", "mint_token",
           "source_values"]

#: Source names accepted by this module, as used in JWT ``canPublishSources`` grants.
#: Maps to the protobuf ``TrackSource`` enum value.
TRACK_SOURCE_NAMES: dict[str, TrackSource] = {
    "camera": api.TrackSource.CAMERA,
    "microphone": api.TrackSource.MICROPHONE,
    "screen_share": api.TrackSource.SCREEN_SHARE,
    "screen_share_audio": api.TrackSource.SCREEN_SHARE_AUDIO,
}
SOURCE_BY_VALUE: dict[int, str] = {value: name for name, value in TRACK_SOURCE_NAMES.items()}
TRACK_KIND_NAMES: dict[int, str] = {
    api.TrackType.AUDIO: "audio",
    api.TrackType.VIDEO: "video",
    api.TrackType.DATA: "data",
}


def source_values(sources: Iterable[str]) -> list[TrackSource]:
    values: list[TrackSource] = []
    for source in sources:
        try:
            values.append(TRACK_SOURCE_NAMES[source])
        except KeyError:
            raise ValueError(
                f"unknown track source {source!r}; expected one of {sorted(TRACK_SOURCE_NAMES)}"
            ) from None
    return values


def _validate_source_names(sources: Iterable[str]) -> list[str]:
    names = list(sources)
    source_values(names)
    return names


def mint_token(
    api_key: str,
    api_secret: str,
    *,
    identity: str,
    room: str,
    name: str | None = None,
    can_publish: bool,
    can_publish_sources: Sequence[str],
    can_subscribe: bool = True,
    can_publish_data: bool = True,
    ttl_seconds: int,
    metadata: str | None = None,
    room_join: bool = True,
    hidden: bool = False,
    room_config: api.RoomConfiguration | None = None,
) -> str:
    """Mint a participant access token (HS256 JWT) for ``room``.

    ``can_publish`` and ``can_publish_sources`` are mandatory on purpose: a forgotten
    argument must not silently fall back to livekit's default of "may publish anything".
    An empty ``can_publish_sources`` means "any source" (livekit semantics), so pass e.g.
    ``["microphone"]`` to restrict a speaker to audio.

    Raises:
        ValueError: unknown source name, non-positive TTL, or empty identity/room.
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if room_join and (not identity or not room):
        raise ValueError("identity and room are required for a room_join token")
    sources = _validate_source_names(can_publish_sources)
    grants = api.VideoGrants(
        room_join=room_join,
        room=room,
        can_publish=can_publish,
        can_subscribe=can_subscribe,
        can_publish_data=can_publish_data,
        can_publish_sources=sources or None,
        hidden=hidden,
    )
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=ttl_seconds))
    )
    if name is not None:
        token = token.with_name(name)
    if metadata is not None:
        token = token.with_metadata(metadata)
    if room_config is not None:  # how this token's join creates the room, if it does
        token = token.with_room_config(room_config)
    return token.to_jwt()
