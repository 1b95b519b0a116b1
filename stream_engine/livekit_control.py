"""The engine's :class:`~stream_core.ports.ControlPort` over ``livekit.api`` (RoomService),
plus access-token minting.

Why a wrapper at all: the engine should speak in plain Python values (identities, source names
such as ``"microphone"``) and one exception type for "that room/participant is gone", not in
protobuf messages and Twirp error codes. Keeping every ``livekit.api`` call in this module also
gives us one place to encode the server behaviours we verified against livekit-server v1.13.5
(see the notes on each method), so the rest of the engine does not re-discover them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
from livekit import api

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.ports import ControlPort, MediaParticipant, RoomSetup
from stream_engine.livekit_tokens import (
    SOURCE_BY_VALUE, TRACK_KIND_NAMES, TRACK_SOURCE_NAMES, mint_token, source_values,
)

__all__ = [
    "LiveKitControl",
    "LiveKitNotFound",
    "ParticipantSummary",
    "RoomSummary",
    "TrackSummary",
    "TRACK_SOURCE_NAMES",
    "mint_token",
]

class LiveKitNotFound(UTDStreamException):
    """The room or participant addressed by a control call does not exist (anymore).

    Raised instead of ``livekit.api.TwirpError(code="not_found")`` so callers can treat
    "already gone" as a normal outcome (e.g. idempotent teardown) without importing livekit:
    it is the ``not_found`` (404) every control port reports.
    """

    def __init__(self, message: str, *, room: str, identity: str | None = None) -> None:
        super().__init__(message, status_code=404, code=ErrorCode.NOT_FOUND)
        self.room = room
        self.identity = identity


class TrackSummary(NamedTuple):
    """A published track as the server sees it."""

    sid: str
    kind: str  # "audio" | "video" | "data" | "unknown"
    source: str  # "microphone" | "camera" | "screen_share" | "screen_share_audio" | "unknown"
    name: str
    muted: bool


class ParticipantSummary(NamedTuple):
    """Server-side view of a participant: ``(identity, can_publish, sources, tracks, sid)``.

    ``can_publish_sources`` empty means "any source" when ``can_publish`` is True (livekit
    semantics), and nothing at all when ``can_publish`` is False.
    """

    identity: str
    can_publish: bool
    can_publish_sources: list[str]
    tracks: list[TrackSummary]
    sid: str = ""  # this connection's id: a reconnect with the same identity gets a new one


class RoomSummary(NamedTuple):
    """The subset of ``livekit.protocol.models.Room`` the engine cares about."""

    name: str
    sid: str
    metadata: str
    max_participants: int
    empty_timeout: int
    num_participants: int


#: Told of each LiveKit server API call: its name, and the code it failed with (or None).
ControlMeter = Callable[[str, str | None], None]


def _is_not_found(exc: api.TwirpError) -> bool:
    return exc.code == api.TwirpErrorCode.NOT_FOUND


@contextlib.asynccontextmanager
async def _livekit_errors(room: str, identity: str | None = None, *, call: str = "",
                          meter: ControlMeter | None = None) -> AsyncIterator[None]:
    """The one place a LiveKit failure becomes ``UTDStreamException``.

    ``not_found`` -> :class:`LiveKitNotFound` (404); the server unreachable, timing out or
    answering ``unavailable`` -> ``unavailable`` (503); any other refusal keeps LiveKit's
    code (``livekit_<code>``, 502) and its cause, for the log. ``meter`` is told of every
    ``call`` and, when it failed, the code it failed with (the engine's metrics).
    """
    failure: str | None = None
    try:
        yield
    except api.TwirpError as exc:
        if _is_not_found(exc):
            failure = ErrorCode.NOT_FOUND
            what = f"participant {identity!r} not found in room {room!r}" if identity else \
                f"room {room!r} not found"
            raise LiveKitNotFound(what, room=room, identity=identity) from exc
        if exc.code == api.TwirpErrorCode.UNAVAILABLE:
            failure = ErrorCode.UNAVAILABLE
            raise _unavailable(f"LiveKit is unavailable ({exc.message})") from exc
        failure = f"livekit_{exc.code}"
        raise UTDStreamException(f"LiveKit refused: {exc.message}", status_code=502,
                                 code=failure) from exc
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        failure = ErrorCode.UNAVAILABLE
        raise _unavailable(f"LiveKit is unreachable ({type(exc).__name__})") from exc
    finally:
        if meter is not None:
            meter(call, failure)


def _media_participant(info: Any) -> MediaParticipant:
    return MediaParticipant(
        identity=info.identity, sid=info.sid, can_publish=info.permission.can_publish,
        sources=frozenset(SOURCE_BY_VALUE.get(s, "unknown")
                          for s in info.permission.can_publish_sources),
        hidden=info.permission.hidden)


def _unavailable(message: str) -> UTDStreamException:
    return UTDStreamException(message, status_code=503, code=ErrorCode.UNAVAILABLE)


class LiveKitControl:
    """Async RoomService client bound to one server and credential pair.

    Create it inside a running event loop (it owns an ``aiohttp.ClientSession``) and call
    :meth:`aclose` when done, or use ``async with``.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        request_timeout: float = 10.0,
        client_url: str | None = None,
        meter: ControlMeter | None = None,
    ) -> None:
        """Args:
        url: ``ws://``/``wss://``/``http(s)://`` server URL (the livekit client rewrites ws->http).
        api_key / api_secret: server credentials; the secret never leaves this process except
            as HMAC signatures.
        request_timeout: total seconds per RoomService call.
        client_url: what clients are told to connect to (default ``url``).
        meter: told of every server API call and its failure (the engine's metrics).
        """
        self._meter = meter
        self._key, self._secret = api_key, api_secret
        self._client_url = client_url or url
        self._api = api.LiveKitAPI(
            url,
            api_key,
            api_secret,
            timeout=aiohttp.ClientTimeout(total=request_timeout),
        )

    async def __aenter__(self) -> LiveKitControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP session."""
        await self._api.aclose()

    def __repr__(self) -> str:
        return f"<LiveKitControl {self._client_url}>"

    # ------------------------------------------------------------------ the ControlPort

    @property
    def client_url(self) -> str:
        return self._client_url

    async def mint_token(self, *, identity: str, room: str, name: str | None,
                         sources: frozenset[str], ttl: float, hidden: bool = False,
                         setup: RoomSetup | None = None) -> str:
        """A token that lets ``identity`` publish exactly ``sources`` (none: listen only);
        ``setup`` rides in it as LiveKit's ``roomConfig``, used if its join creates the
        room."""
        config = None
        if setup is not None:
            config = api.RoomConfiguration(name=room, metadata=setup.metadata,
                                           max_participants=setup.max_participants)
            if setup.empty_timeout is not None:
                config.empty_timeout = setup.empty_timeout
        return mint_token(self._key, self._secret, identity=identity, room=room, name=name,
                          can_publish=bool(sources), can_publish_sources=sorted(sources),
                          ttl_seconds=int(ttl), hidden=hidden, room_config=config)

    async def set_permissions(self, room: str, identity: str, sources: frozenset[str]) -> None:
        """Let ``identity`` publish exactly ``sources`` (none: nothing at all)."""
        await self.update_permissions(room, identity, can_publish=bool(sources),
                                      sources=sorted(sources))

    async def close_room(self, room: str) -> None:
        await self.delete_room(room)

    async def push_state(self, room: str, state: str) -> None:
        await self.set_room_metadata(room, state)

    async def get_participant(self, room: str, identity: str) -> MediaParticipant | None:
        """One participant by identity (``GetParticipant``: no listing of the room)."""
        try:
            async with _livekit_errors(room, identity, call="get_participant", meter=self._meter):
                info = await self._api.room.get_participant(
                    api.RoomParticipantIdentity(room=room, identity=identity))
        except LiveKitNotFound:
            return None
        return _media_participant(info)

    async def participants(self, room: str) -> list[MediaParticipant]:
        """Everyone connected to ``room`` (the reconcile pass: a room at a time, on a timer)."""
        async with _livekit_errors(room, call="list_participants", meter=self._meter):
            response = await self._api.room.list_participants(
                api.ListParticipantsRequest(room=room))
        return [_media_participant(info) for info in response.participants]

    # ------------------------------------------------------------------ rooms

    async def create_room(
        self,
        name: str,
        *,
        max_participants: int = 0,
        empty_timeout: int | None = None,
        departure_timeout: int | None = None,
        metadata: str = "",
    ) -> RoomSummary:
        """Create ``name`` (idempotent).

        ``empty_timeout``/``departure_timeout`` of ``None`` keep the server defaults
        (300 s / 20 s). Note (v1.13.5): creating an *existing* room returns it unchanged —
        the new ``metadata``/limits are ignored; use :meth:`set_room_metadata` to update.
        """
        request = api.CreateRoomRequest(
            name=name, max_participants=max_participants, metadata=metadata
        )
        if empty_timeout is not None:
            request.empty_timeout = empty_timeout
        if departure_timeout is not None:
            request.departure_timeout = departure_timeout
        async with _livekit_errors(name, call="create_room", meter=self._meter):
            room = await self._api.room.create_room(request)
        return RoomSummary(
            name=room.name,
            sid=room.sid,
            metadata=room.metadata,
            max_participants=room.max_participants,
            empty_timeout=room.empty_timeout,
            num_participants=room.num_participants,
        )

    async def delete_room(self, name: str) -> None:
        """Delete a room, disconnecting everyone in it.

        Raises:
            LiveKitNotFound: the room does not exist.
        """
        async with _livekit_errors(name, call="delete_room", meter=self._meter):
            await self._api.room.delete_room(api.DeleteRoomRequest(room=name))

    async def set_room_metadata(self, room: str, metadata: str) -> None:
        """Replace the room metadata; connected clients get ``room_metadata_changed``.

        Raises:
            LiveKitNotFound: the room does not exist.
        """
        async with _livekit_errors(room, call="set_room_metadata", meter=self._meter):
            await self._api.room.update_room_metadata(
                api.UpdateRoomMetadataRequest(room=room, metadata=metadata)
            )

    async def room_exists(self, room: str) -> bool:
        """True if the server currently has an active room called ``room``."""
        async with _livekit_errors(room, call="room_exists", meter=self._meter):
            response = await self._api.room.list_rooms(api.ListRoomsRequest(names=[room]))
        return any(r.name == room for r in response.rooms)

    async def room_metadata(self, room: str) -> str | None:
        """The room's metadata as LiveKit holds it now (``None``: no such room)."""
        async with _livekit_errors(room, call="list_rooms", meter=self._meter):
            response = await self._api.room.list_rooms(api.ListRoomsRequest(names=[room]))
        found = [r.metadata for r in response.rooms if r.name == room]
        return found[0] if found else None

    # ------------------------------------------------------------------ participants

    async def list_participants(self, room: str) -> list[ParticipantSummary]:
        """Participants currently in ``room``.

        Note (v1.13.5): a non-existent room yields an empty list, not an error.
        """
        async with _livekit_errors(room, call="list_participants", meter=self._meter):
            response = await self._api.room.list_participants(
                api.ListParticipantsRequest(room=room))
        result: list[ParticipantSummary] = []
        for info in response.participants:
            tracks = [
                TrackSummary(
                    sid=track.sid,
                    kind=TRACK_KIND_NAMES.get(track.type, "unknown"),
                    source=SOURCE_BY_VALUE.get(track.source, "unknown"),
                    name=track.name,
                    muted=track.muted,
                )
                for track in info.tracks
            ]
            result.append(
                ParticipantSummary(
                    identity=info.identity,
                    can_publish=info.permission.can_publish,
                    can_publish_sources=[
                        SOURCE_BY_VALUE.get(source, "unknown")
                        for source in info.permission.can_publish_sources
                    ],
                    tracks=tracks,
                    sid=info.sid,
                )
            )
        return result

    async def update_permissions(
        self,
        room: str,
        identity: str,
        *,
        can_publish: bool,
        sources: Sequence[str],
    ) -> None:
        """Replace the participant's permission set (FULL set, not a patch).

        Always sends ``can_subscribe=True`` and ``can_publish_data=True`` alongside the given
        publish rights, because UpdateParticipant overwrites the whole ParticipantPermission:
        any flag not sent is reset to false (including ``can_update_metadata``/``hidden``
        granted by the token). Every connected client (the target and the others) receives
        ``participant_permissions_changed``.

        Observed on v1.13.5 when revoking: the server unpublishes the participant's tracks
        of no-longer-allowed sources (other clients get ``track_unpublished``; they vanish
        from :meth:`list_participants`), but the revoked client's own SDK keeps the
        publication in ``local_participant.track_publications`` and gets no
        ``local_track_unpublished`` — the client should unpublish on the permission event.
        Publishing while not allowed is silently ignored by the server; the Python SDK's
        ``publish_track`` fails only after its own ~10 s timeout.

        Raises:
            LiveKitNotFound: the participant (or its room) does not exist.
            ValueError: unknown source name.
        """
        permission = api.ParticipantPermission(
            can_subscribe=True,
            can_publish=can_publish,
            can_publish_data=True,
            can_publish_sources=source_values(sources),
        )
        async with _livekit_errors(room, identity, call="update_permissions", meter=self._meter):
            await self._api.room.update_participant(
                api.UpdateParticipantRequest(room=room, identity=identity, permission=permission)
            )

    async def remove_participant(self, room: str, identity: str) -> None:
        """Kick ``identity`` out of ``room`` (its client gets ``disconnected``).

        Raises:
            LiveKitNotFound: the participant (or its room) does not exist.
        """
        async with _livekit_errors(room, identity, call="remove_participant", meter=self._meter):
            await self._api.room.remove_participant(
                api.RoomParticipantIdentity(room=room, identity=identity)
            )

    # ------------------------------------------------------------------ data

    async def send_data(
        self,
        room: str,
        data: bytes,
        *,
        topic: str,
        destination_identities: Sequence[str] | None = None,
    ) -> None:
        """Send a RELIABLE data packet from the server to ``room``.

        ``destination_identities`` of ``None``/empty broadcasts to everyone. Receivers get
        ``data_received`` with ``packet.participant is None`` (server-originated) and
        ``packet.topic == topic``.

        Note (v1.13.5): for a non-existent room the server answers 503
        ``unavailable: no response from servers`` rather than not_found; we confirm with
        ListRooms and translate to :class:`LiveKitNotFound` only when the room is really absent.

        Raises:
            LiveKitNotFound: the room does not exist.
        """
        request = api.SendDataRequest(
            room=room,
            data=data,
            kind=api.DataPacket.Kind.RELIABLE,
            topic=topic,
            destination_identities=list(destination_identities or []),
        )
        try:
            async with _livekit_errors(room, call="send_data", meter=self._meter):
                await self._api.room.send_data(request)
        except UTDStreamException as exc:
            if exc.code == ErrorCode.UNAVAILABLE and not await self.room_exists(room):
                raise LiveKitNotFound(f"room {room!r} not found", room=room) from exc
            raise


if TYPE_CHECKING:
    _: type[ControlPort] = LiveKitControl
