"""``UTDStreamClient``: publishable credentials in, logic-only sessions out.

With only ``app_id`` and ``app_key`` the client wires the default backends (the REST
engine adapter and the LiveKit media adapter), found through the ``utd_stream.backends``
entry point so that ``import stream_core`` never imports an I/O library. Pass ``engine``
and ``media_factory`` to use anything else, e.g. the shipped in-memory fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from stream_core import operations as ops
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.operations import Operation
from stream_core.models import UTDCall, UTDSeatMode, UTDStreamType, UTDTokenResponse
from stream_core.ports import EnginePort, MediaPort
from stream_core.rooms.calls import CallLedger
from stream_core.names import check_app_id, check_identity, check_room_name
from stream_core.rooms.seats import parse_seat_mode
from stream_core.sessions.audio_room import UTDAudioRoomSession
from stream_core.sessions.base import DEFAULT_GRANT_TIMEOUT, UTDSession
from stream_core.sessions.call import UTDCallSession
from stream_core.sessions.live_stream import UTDLiveStreamSession
from stream_core.sessions.recovery import RejoinPolicy

__all__ = ["UTDStreamClient", "MediaFactory", "BACKENDS_ENTRY_POINT",
           "DEFAULT_BASE_URL", "DEFAULT_TOKEN_BASE_URL"]

MediaFactory = Callable[[], MediaPort]
R = TypeVar("R")
BACKENDS_ENTRY_POINT = "utd_stream.backends"
#: The reference engine's default address (``utd-stream engine`` with no flags).
DEFAULT_BASE_URL = "http://127.0.0.1:7800"
DEFAULT_TOKEN_BASE_URL = DEFAULT_BASE_URL


class UTDStreamClient:
    """One per signed-in user. Shares one engine connection pool across its sessions."""

    def __init__(self, app_id: str, app_key: str, base_url: str = DEFAULT_BASE_URL,
                 token_base_url: str | None = None, *, engine: EnginePort | None = None,
                 media_factory: MediaFactory | None = None,
                 grant_timeout: float = DEFAULT_GRANT_TIMEOUT,
                 adaptive_stream: bool = True, dynacast: bool = True,
                 rejoin_policy: RejoinPolicy | None = None) -> None:
        """``rejoin_policy``: how soon sessions try again after losing their media
        connection (see :mod:`stream_core.sessions.recovery`)."""
        check_app_id(app_id)
        check_identity(app_key, "app_key")
        self.app_id = app_id
        self.base_url = base_url
        self.token_base_url = token_base_url or base_url
        if engine is None or media_factory is None:
            default_engine, default_media = _default_backends(
                app_id, app_key, self.base_url, self.token_base_url)
            engine = engine or default_engine
            media_factory = media_factory or default_media
        self.engine = engine
        self._media_factory = media_factory
        self._session_options: dict[str, Any] = {"grant_timeout": grant_timeout,
                                                 "adaptive_stream": adaptive_stream,
                                                 "dynacast": dynacast,
                                                 "rejoin_policy": rejoin_policy}
        self._identity: str | None = None
        self._user_token: str | None = None
        self._calls = CallLedger()  # one call machine for every call session of this user
        self._disposed = False

    @property
    def identity(self) -> str | None:
        """The authenticated or last joined identity, or ``None``."""
        return self._identity

    async def authenticate(self, identity: str, *, name: str | None = None,
                           device_id: str | None = None, signature: str | None = None) -> str:
        """Mint a room-less bearer for ``identity`` (needed for calls); returns it.

        ``signature`` is your backend's HMAC of the identity, for apps that verify identities.
        """
        check_identity(identity)
        token = await self._engine(ops.AUTHENTICATE, None, identity=identity, name=name,
                                   device_id=device_id, signature=signature)
        self._identity, self._user_token = identity, token
        return token

    def call_session(self, type: UTDStreamType) -> UTDCallSession:
        """A new 1:1 call session. Call :meth:`authenticate` first."""
        self._require_live()
        if self._identity is None or self._user_token is None:
            raise UTDStreamException.unauthenticated("call authenticate() before call_session()")
        return UTDCallSession(type=type, engine=self.engine, media=self._media_factory(),
                              identity=self._identity, user_token=self._user_token,
                              ledger=self._calls, **self._session_options)

    async def incoming_calls(self) -> list[UTDCall]:
        """Calls ringing for the authenticated identity, oldest first."""
        return await self._engine(ops.INCOMING_CALLS, self._bearer())

    async def next_incoming_call(self, timeout: float = 30.0) -> UTDCall | None:
        """Wait (long-poll) up to ``timeout`` seconds for the next incoming call."""
        return await self._engine(ops.WAIT_INCOMING_CALL, self._bearer(), timeout=timeout)

    async def join_live_stream(self, identity: str, room_name: str, *, as_host: bool = False,
                               name: str | None = None, device_id: str | None = None,
                               signature: str | None = None) -> UTDLiveStreamSession:
        """Mint a room token, connect, and return a live stream session."""
        async def mint() -> UTDTokenResponse:
            return await self._mint(identity, room_name, UTDStreamType.LIVE_STREAM, as_host,
                                    name, device_id, signature=signature)

        grant = await mint()
        session = UTDLiveStreamSession(engine=self.engine, media=self._media_factory(),
                                       identity=identity, user_token=grant.user_token,
                                       room_name=grant.room_name, is_host=as_host,
                                       rejoin=mint, **self._session_options)
        await self._enter(session, grant)
        return session

    async def join_audio_room(self, identity: str, room_name: str, *, as_host: bool = False,
                              name: str | None = None, device_id: str | None = None,
                              seat_count: int | None = None,
                              seat_mode: UTDSeatMode | str | None = None,
                              signature: str | None = None) -> UTDAudioRoomSession:
        """Mint a room token, connect, and return an audio room session.

        A host may seed the grid with ``seat_count`` / ``seat_mode``; others may not.
        """
        mode = None if seat_mode is None else parse_seat_mode(seat_mode)
        grant = await self._mint(identity, room_name, UTDStreamType.AUDIO_ROOM, as_host, name,
                                 device_id, seat_count=seat_count, seat_mode=mode,
                                 signature=signature)

        async def mint_again() -> UTDTokenResponse:  # a rejoin does not seed the seats again
            return await self._mint(identity, room_name, UTDStreamType.AUDIO_ROOM, as_host,
                                    name, device_id, signature=signature)

        session = UTDAudioRoomSession(engine=self.engine, media=self._media_factory(),
                                      identity=identity, user_token=grant.user_token,
                                      room_name=grant.room_name, is_host=as_host,
                                      rejoin=mint_again, **self._session_options)
        await self._enter(session, grant)
        return session

    def dispose(self) -> None:
        """Release the engine's HTTP pool. Sessions are disposed separately."""
        if not self._disposed:
            self._disposed = True
            self.engine.close()

    async def __aenter__(self) -> UTDStreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"<UTDStreamClient app_id={self.app_id!r} identity={self._identity!r}>"

    # -- internals ------------------------------------------------------------------
    async def _mint(self, identity: str, room_name: str, stream_type: UTDStreamType,
                    as_host: bool, name: str | None, device_id: str | None,
                    **extra: Any) -> UTDTokenResponse:
        check_identity(identity)
        check_room_name(room_name)
        grant = await self._engine(
            ops.MINT_TOKEN, None, identity=identity, room_name=room_name,
            stream_type=stream_type, role="host" if as_host else "audience", name=name,
            device_id=device_id, **{k: v for k, v in extra.items() if v is not None})
        self._identity = identity
        return grant

    @staticmethod
    async def _enter(session: UTDSession, grant: UTDTokenResponse) -> None:
        try:
            await session._enter(grant)
        except BaseException:
            await session.dispose()
            raise

    async def _engine(self, op: Operation[R], user_token: str | None, **args: Any) -> R:
        """Run an engine operation in a worker thread: the event loop never blocks."""
        self._require_live()
        return await asyncio.to_thread(self.engine.run, op, user_token, **args)

    def _bearer(self) -> str:
        if self._user_token is None:
            raise UTDStreamException.unauthenticated("call authenticate() first")
        return self._user_token

    def _require_live(self) -> None:
        if self._disposed:
            raise UTDStreamException("this client is disposed", code="disposed")


def _default_backends(app_id: str, app_key: str, base_url: str,
                      token_base_url: str) -> tuple[EnginePort, MediaFactory]:
    """Load the installed default backends (the real adapters) without importing them here."""
    found = entry_points(group=BACKENDS_ENTRY_POINT, name="default")
    for ep in found:
        factory = ep.load()
        engine, media_factory = factory(app_id=app_id, app_key=app_key, base_url=base_url,
                                        token_base_url=token_base_url)
        return engine, media_factory
    raise UTDStreamException(
        "no default utd-stream backend is installed: install 'utd-stream[livekit]', or pass "
        "engine= and media_factory= (e.g. the fakes in adapters.fakes.engine)",
        code=ErrorCode.UNAVAILABLE)
