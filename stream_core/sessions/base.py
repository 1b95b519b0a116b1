"""``UTDSession``: the service layer shared by the four products.

A session asks the engine (synchronous port, run in a worker thread so the event loop
never blocks), feeds the answer to its mirror of the room's state, and makes the media
follow: it publishes exactly what the engine's state grants this participant, and only
after the media server itself reports the grant (waited for, with a timeout).

The engine pushes every state change into the LiveKit room metadata (``RoomStateSchema``
JSON with a growing ``version``), so sessions update without polling; answers to our own
requests and pushes converge because a session applies only newer versions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import MediaEvent
from stream_core.frames import FrameStream, UTDAudioFrame, UTDVideoFormat, UTDVideoFrame
from stream_core.models import UTDPermissions, UTDRemoteParticipant, UTDStreamType, UTDTokenResponse
from stream_core.observable import EventStream, Observable
from stream_core.operations import Operation
from stream_core.ports import EnginePort, MediaPort
from stream_core.sessions.recovery import Recovery, RejoinPolicy
from stream_core.sessions.room import UTDRoom
from stream_core.wire import RoomStateSchema, load

__all__ = ["UTDSession", "UTDLocalParticipant", "DEFAULT_GRANT_TIMEOUT"]

R = TypeVar("R")
_log = logging.getLogger(__name__)
_STATE_SCHEMA = RoomStateSchema()
_NOTHING: frozenset[str] = frozenset()

#: How long a session waits for the media server to confirm a grant the engine made.
DEFAULT_GRANT_TIMEOUT = 10.0

@dataclass(frozen=True, slots=True)
class UTDLocalParticipant:
    """This participant as the media server sees it."""

    identity: str
    permissions: UTDPermissions
    microphone_enabled: bool
    camera_enabled: bool

class UTDSession:
    """Base of every session: media room, publish following, engine calls, lifecycle."""

    def __init__(self, *, type: UTDStreamType, engine: EnginePort, media: MediaPort,
                 identity: str, user_token: str | None, room_name: str | None,
                 grant_timeout: float = DEFAULT_GRANT_TIMEOUT,
                 adaptive_stream: bool = True, dynacast: bool = True,
                 rejoin: Callable[[], Awaitable[UTDTokenResponse]] | None = None,
                 rejoin_policy: RejoinPolicy | None = None) -> None:
        self.type = type
        self.identity = identity
        self.room = UTDRoom(media, adaptive_stream=adaptive_stream, dynacast=dynacast)
        self._engine_port = engine
        self._user_token = user_token
        self._room_name = room_name
        self._grant_timeout = grant_timeout
        self._applied: frozenset[str] = _NOTHING  # what we last made the media publish
        self._publish_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._state_version = -1
        self._disposed = False
        self._rejoin = rejoin
        self._unsubscribe_metadata = self.room.metadata.listen(self._on_metadata)
        self._recovery = Recovery(self, rejoin_policy)  # see stream_core.sessions.recovery

    # -- the seed's headless state ---------------------------------------------------
    @property
    def connected(self) -> Observable[bool]:
        return self.room.connected

    @property
    def can_publish(self) -> Observable[bool]:
        return self.room.can_publish

    @property
    def remote_participants(self) -> Observable[tuple[UTDRemoteParticipant, ...]]:
        return self.room.remote_participants

    @property
    def events(self) -> EventStream[MediaEvent]:
        """Media events, and this session's own recovery (``RejoinScheduled``,
        ``Rejoined``, ``RejoinAbandoned``, ``SessionResynced``)."""
        return self.room.events

    @property
    def recovering(self) -> bool:
        """True while the session resyncs after a reconnect or rejoins after a loss."""
        return self._recovery.recovering

    @property
    def local_participant(self) -> UTDLocalParticipant | None:
        media = self.room.media
        if not self.room.connected.value or media.identity is None:
            return None
        return UTDLocalParticipant(media.identity, media.permissions, media.microphone_enabled,
                                   media.camera_enabled)

    # -- media controls -------------------------------------------------------------
    async def set_microphone(self, enabled: bool) -> None:
        """Toggle the microphone; the media server refuses it without a grant (403)."""
        await self.room.set_microphone(enabled)

    async def set_camera(self, enabled: bool) -> None:
        await self.room.set_camera(enabled)

    async def send_data(self, data: bytes | bytearray | Sequence[int], *, reliable: bool = True,
                        to: Sequence[str] | None = None, topic: str | None = None) -> None:
        """Send bytes to everyone in the room, or only to the identities in ``to``."""
        await self.room.send_data(data, reliable=reliable, destination_identities=to,
                                  topic=topic)

    # -- received media -------------------------------------------------------------
    def audio_frames(self, identity: str, *, sample_rate: int = 48_000,
                     channels: int = 1) -> FrameStream[UTDAudioFrame]:
        """Hear ``identity``'s microphone as 16-bit PCM frames at this format.

        ``async for frame in session.audio_frames("caller", sample_rate=16_000): ...``
        waits for the microphone to be subscribed and ends cleanly when the participant
        leaves, stops publishing (a revoked seat or stage slot included) or this session
        leaves; ``aclose()`` (or ``async with``) stops it early. Raises ``not_connected``
        when the session is not in its media room.
        """
        self._require_live()
        return self.room.media.audio_frames(identity, sample_rate=sample_rate,
                                            channels=channels)

    def video_frames(self, identity: str, *, format: UTDVideoFormat = UTDVideoFormat.RGBA,
                     max_fps: float | None = None) -> FrameStream[UTDVideoFrame]:
        """See ``identity``'s camera as RGBA or I420 frames, at most ``max_fps`` a second;
        starts and ends as :meth:`audio_frames` does."""
        self._require_live()
        return self.room.media.video_frames(identity, format=format, max_fps=max_fps)

    def mixed_audio(self, *, sample_rate: int = 48_000,
                    channels: int = 1) -> FrameStream[UTDAudioFrame]:
        """What this participant hears: every remote microphone mixed (for recorders).
        Speakers join and leave the mix as they publish; ends when the session leaves."""
        self._require_live()
        return self.room.media.mixed_audio(sample_rate=sample_rate, channels=channels)

    # -- lifecycle ------------------------------------------------------------------
    async def leave(self) -> None:
        """Leave the media room; the session object stays usable (e.g. to rejoin a call).
        Stops any recovery under way: a session that left does not come back by itself."""
        await self._recovery.disarm()
        await self._drain_tasks()
        async with self._publish_lock:
            self._applied = _NOTHING
        await self.room.disconnect()

    async def rejoin(self) -> None:
        """Join the media room again after :meth:`leave` (the engine mints a new token).

        A no-op while connected. Call sessions do not rejoin: start or accept a new call.
        """
        self._require_live()
        if self._rejoin is None:
            raise UTDStreamException.illegal("this session cannot rejoin; start a new call")
        if self.room.connected.value:
            return
        grant = await self._rejoin()
        self._user_token = grant.user_token
        await self._enter(grant)

    async def _enter(self, grant: UTDTokenResponse) -> None:
        """Connect with a minted grant; the room's state comes with the connection."""
        await self.room.connect(grant.ws_url or grant.url, grant.token)
        # A new connection publishes nothing yet, whatever the last one did: a connection
        # lost behind our back (no leave() to reset it) left its sources here, and the
        # grants would never be followed again (the random walk: a seated member dropped
        # and rejoined stayed silent). Set before anything awaits, so every follow sees it.
        self._applied = _NOTHING
        await self._first_state(grant.state_version)

    async def _first_state(self, minted: int | None) -> None:
        """Have a state at least as new as the mint's before the join returns.

        The room metadata delivered at connect is already applied (``_on_metadata`` runs as
        the connection comes up) and normally is that new: the engine pushes before it
        answers the mint. Only when it is missing or older (a media room recreated empty, a
        push not through yet) or the engine did not say what it minted is the engine asked,
        one round trip more.
        """
        if minted is None or self._state_version < minted:
            await self._read_state()
        else:
            await self._follow_grants()

    async def _read_state(self) -> None:
        """Read the engine's current state and follow its grants (subclasses)."""

    # -- recovery hooks (driven by stream_core.sessions.recovery.Recovery) -----------
    async def _reread_state(self) -> None:
        """Read the engine's current state over REST (subclasses): pushes made while the
        connection was away may never arrive."""

    async def _resync(self) -> frozenset[str]:
        """Reread the state, then make the media publish exactly what it grants, published
        afresh (a reconnect may have lost tracks the media still believes in). Returns
        what is published."""
        await self._reread_state()
        async with self._publish_lock:
            # republish from scratch: after a full reconnect the media may believe a track
            # is published that the new server never got (the walk found rtc's own
            # republish failing), and nothing but a fresh publish tells the difference
            media = self.room.media
            for source, on in (("microphone", media.microphone_enabled),
                               ("camera", media.camera_enabled)):
                if on and self.room.connected.value:
                    await self._set_source(source, False)
            self._applied = _NOTHING
        await self._follow_grants()
        return self._applied

    async def _recover_from_loss(self) -> bool:
        """The connection was lost for good: rejoin with a fresh token and resync. True
        when back; False when this session cannot rejoin (it stays disconnected)."""
        if self._rejoin is None:
            return False
        await self.rejoin()  # a no-op if an earlier attempt got connected
        try:
            await self._resync()
        except UTDStreamException as exc:
            if exc.status_code != 404:
                raise
            # the late leave of the lost connection made the engine let us go after our
            # mint: connected to LiveKit, unknown to the engine; mint and join again
            await self.room.disconnect()
            raise UTDStreamException("the engine let this member go meanwhile; joining again",
                                     code=ErrorCode.NOT_CONNECTED) from exc
        return True

    async def dispose(self) -> None:
        """Leave and release everything: no task, listener or iterator is left behind."""
        if self._disposed:
            return
        self._disposed = True
        try:
            await self.leave()
        finally:
            self._unsubscribe_metadata()
            self._recovery.close()
            self._close_observables()
            self.room.close()

    async def __aenter__(self) -> UTDSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dispose()

    # -- for subclasses -------------------------------------------------------------
    async def _run(self, op: Operation[R], **args: Any) -> R:
        """Run engine operation ``op`` with this session's bearer, in a worker thread (the
        engine port is synchronous); ``room_name`` is this session's room unless given."""
        self._require_live()
        if self._room_name is not None and "room_name" in op.path_params:
            args.setdefault("room_name", self._room_name)
        return await asyncio.to_thread(self._engine_port.run, op, self._bearer, **args)

    @property
    def _bearer(self) -> str:
        if self._user_token is None:
            raise UTDStreamException.unauthenticated("call authenticate() first")
        return self._user_token

    def _wanted_sources(self) -> frozenset[str]:
        """What this participant should publish now, per the mirrored engine state."""
        return _NOTHING

    def _apply_state(self, state: dict[str, Any]) -> bool:
        """Apply an engine state push; return True if the grants may have changed.

        Subclasses check ordering themselves (seat and stage pushes carry a ``version``
        compared with :meth:`_accept_version`; call pushes are ordered by the call table).
        """
        return False

    def _close_observables(self) -> None:
        """Close the subclass's own observables."""

    async def _follow_grants(self) -> None:
        """Make the media publish what the state grants: enable new grants, drop revoked ones.

        Edge-triggered on purpose: a source the app muted by hand stays muted until the
        grant itself changes again.
        """
        async with self._publish_lock:
            if not self.room.connected.value:
                self._applied = _NOTHING
                return
            want = self._wanted_sources()
            for source in sorted(self._applied - want):
                await self._set_source(source, False)
            for source in sorted(want - self._applied):
                await self.room.permissions.wait_for(
                    lambda p, s=source: p.allows(s), self._grant_timeout,  # type: ignore[misc]
                    what=f"the media server to grant {source}")
                await self._set_source(source, True)
            self._applied = want

    async def _set_source(self, source: str, enabled: bool) -> None:
        setter = self.room.media.set_microphone if source == "microphone" else \
            self.room.media.set_camera
        await setter(enabled)

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` as a tracked task: awaited on leave, its failure logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=f"utd:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("%s failed: %s", task.get_name(), task.exception())

    async def _drain_tasks(self) -> None:
        """Finish our background work before leaving: grant-following is cancelled (it
        would only wait for a grant that no longer matters), anything else is awaited."""
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current]
        for task in pending:
            if task.get_name() == "utd:follow-grants":
                task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _require_live(self) -> None:
        if self._disposed:
            raise UTDStreamException("this session is disposed", code="disposed")

    def _on_metadata(self, metadata: str) -> None:
        if not metadata:
            return
        try:
            state = load(_STATE_SCHEMA, json.loads(metadata))
        except (ValueError, UTDStreamException) as exc:
            _log.warning("ignoring room metadata that is not engine state: %s", exc)
            return
        if self._apply_state(state):
            self._spawn(self._follow_grants(), "follow-grants")

    def _accept_version(self, version: int) -> bool:
        """True (and remembered) if ``version`` is newer than what we applied."""
        if version <= self._state_version:
            return False
        self._state_version = version
        return True

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.type.value} {self.identity!r} "
                f"room={self._room_name!r} {self.room!r}>")
