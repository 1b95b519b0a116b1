"""The real ``MediaPort``: :class:`LiveKitMedia`, one participant's connection to a
livekit-server through ``livekit.rtc``.

Rules of this file:

* ``livekit.rtc`` calls our callbacks synchronously (``room.on`` takes sync callbacks only and
  swallows what they raise). Every rtc event goes through ``HANDLERS``
  (:mod:`adapters.livekit.rtc_handlers`), a table keyed by the rtc event name: the handler
  refreshes this adapter's own view from the rtc objects and returns the core event; only
  then are the listeners called, in registration order. A listener that raises is logged
  and the others still run.
* Events of a room this adapter no longer uses (after a disconnect, a kick, a failed connect)
  are dropped. Events rtc delivers while :meth:`LiveKitMedia.connect` is still finishing are
  held and replayed after the post-connect sweep, so nothing is heard before ``CONNECTED``.
* Every background task (frame feeds, the unpublish after a revoke, an abandoned connect)
  is tracked and awaited by :meth:`LiveKitMedia.disconnect`. A pending ``Room.connect`` is
  never cancelled (doing so can take the whole process down): a connect that overruns
  ``ConnectOptions.timeout`` (or whose caller is cancelled) finishes in a tracked task and
  is then disconnected.
* Received media (:meth:`LiveKitMedia.audio_frames`, ``video_frames``, ``mixed_audio``) is
  fed by one tracked task per stream (:mod:`adapters.livekit.receivers`); ending the stream
  (the events in :mod:`adapters.media_view`, or the reader's ``aclose``) cancels the task,
  which closes its rtc streams. :meth:`LiveKitMedia.disconnect` ends every stream first.
* Backend failures become ``UTDStreamException`` in one place,
  :func:`adapters.livekit.errors.map_errors`.

What differs from the fake, because LiveKit does:

* Publishing without permission is silently ignored by the server (rtc's ``publish_track``
  fails only after ~10 s), so :meth:`set_microphone` / :meth:`set_camera` refuse locally with
  403 ``publish_denied`` when the current permissions do not allow the source.
* rtc's ``publish_track`` may never answer when its connection dies while it waits (seen
  after a LiveKit restart), so a publish is awaited only while its connection lives: the
  loss of the connection ends it with 409 ``not_connected``.
* On a server-side revoke the local SDK keeps the publication and reports nothing about it,
  so when our own ``participant_permissions_changed`` arrives the handler drops the
  disallowed tracks from the view and stops their feeds *before* ``PermissionsChanged`` is
  emitted; the rtc ``unpublish_track`` (a round trip) then runs as a tracked task that the
  next ``set_*`` or ``disconnect`` waits for.
* Other participants learn of a *non-publishing* participant's join or leave up to ~3 s
  late (livekit-server batches subscriber-only updates), and a data packet from a sender we
  have not been told about yet arrives with ``sender=None`` (rtc drops the identity).

Adaptive stream: ``ConnectOptions.adaptive_stream`` is accepted and ignored. ``rtc.RoomOptions``
has no such option (it has ``auto_subscribe``, ``dynacast``, ``connect_timeout``, ...):
adaptive stream is a browser/mobile feature that lowers a subscription's quality, or pauses
it, according to the size and visibility of the UI element showing the video. A headless
client has no UI, so it subscribes at full quality; bandwidth is saved on the publisher side
by ``dynacast`` (passed through), which stops encoding simulcast layers nobody subscribes to.
Camera tracks are therefore published with simulcast.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from livekit import rtc
from livekit.rtc.room import EventTypes

from adapters.livekit.errors import NOT_CONNECTED, map_errors, not_connected, publish_denied
from adapters.livekit.events import PUBLISH_SOURCES, participant_view, permissions_of
from adapters.livekit.probes import RemoteTrackWaiters, count_video_frames, receive_audio_level
from adapters.livekit.receivers import feed_audio, feed_mix, feed_video
from adapters.livekit.rtc_handlers import HANDLERS
from adapters.livekit.sources import (
    AudioSourceFactory, GeneratedVideo, ToneAudio, VideoSourceFactory,
)
from adapters.media_view import MediaView
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import ConnectionState
from stream_core.frames import (
    FrameStream, UTDAudioFrame, UTDVideoFormat, UTDVideoFrame, check_audio_format,
)
from stream_core.ports import ConnectOptions

if TYPE_CHECKING:
    from stream_core.ports import MediaPort

__all__ = ["LiveKitMedia", "NOT_CONNECTED"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: How long ``disconnect`` waits for background work (an abandoned connect included).
SETTLE_TIMEOUT = 30.0
#: Bounds on rtc round trips we wait for without being able to cancel them safely.
DISCONNECT_TIMEOUT = 10.0
UNPUBLISH_TIMEOUT = 5.0


@dataclass(slots=True)
class _Published:
    """One of our own tracks: the rtc source and track, and the task feeding it."""

    source: str
    rtc_source: rtc.AudioSource | rtc.VideoSource
    track: rtc.LocalAudioTrack | rtc.LocalVideoTrack
    feed: asyncio.Task[None]
    sid: str = ""


class LiveKitMedia(MediaView):
    """One participant's connection to a livekit-server (implements ``MediaPort``).

    ``audio_source`` / ``video_source`` make the feed of each microphone / camera publication
    (defaults: :class:`~adapters.livekit.sources.ToneAudio`,
    :class:`~adapters.livekit.sources.GeneratedVideo`). Use one instance from one event loop,
    the one that called :meth:`connect`; it may connect again after a disconnect.
    """

    def __init__(self, *, audio_source: AudioSourceFactory | None = None,
                 video_source: VideoSourceFactory | None = None) -> None:
        super().__init__()
        self._audio_source: AudioSourceFactory = audio_source or ToneAudio
        self._video_source: VideoSourceFactory = video_source or GeneratedVideo
        self._room: rtc.Room | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._held: list[tuple[EventTypes, tuple[Any, ...]]] | None = None
        self._teardown: asyncio.Task[None] | None = None  # see _watch_teardown
        self._published: dict[str, _Published] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._publishing = asyncio.Lock()
        self._track_waiters = RemoteTrackWaiters()
        self._gone = asyncio.Event()  # set when the current connection is lost or left

    @property
    def rtc_room(self) -> rtc.Room | None:
        """The underlying ``livekit.rtc.Room`` while connected (the seed's ``UTDRoom.room``),
        for apps that need what the port does not carry. Disconnecting it directly is
        taken as leaving (``client_initiated``); the session does not rejoin by itself."""
        return self._room

    def __repr__(self) -> str:
        return (f"LiveKitMedia(identity={self._identity!r}, state={self._state.name}, "
                f"local={sorted(self._published)!r}, remote={list(self._remote)!r}, "
                f"tasks={len(self._tasks)})")

    # -- MediaPort: actions -----------------------------------------------------------
    async def connect(self, url: str, token: str, options: ConnectOptions) -> None:
        """Join the token's room within ``options.timeout``. Raises 401 ``unauthenticated``,
        ``unavailable``, ``timeout``, or 409 if this instance is not disconnected."""
        if self._state is not ConnectionState.DISCONNECTED:
            raise UTDStreamException.illegal(f"already {self._state.value}; disconnect first")
        loop = asyncio.get_running_loop()
        room = rtc.Room(loop=loop)
        for name in HANDLERS:
            room.on(name, functools.partial(self._on_rtc, room, name))
        self._room, self._held = room, []
        self._gone = asyncio.Event()
        self._set_state(ConnectionState.CONNECTING)
        rtc_options = rtc.RoomOptions(auto_subscribe=options.auto_subscribe,
                                      dynacast=options.dynacast,
                                      connect_timeout=options.timeout)
        connecting = self._connecting = loop.create_task(room.connect(url, token, rtc_options),
                                                         name="utd-livekit-connect")
        try:
            with map_errors("connect to the media server"):
                done, _ = await asyncio.wait({connecting}, timeout=options.timeout)
                if not done:
                    raise UTDStreamException(f"no media connection within {options.timeout:g}s",
                                             code=ErrorCode.TIMEOUT)
                connecting.result()
                if room is not self._room:  # disconnect() gave up waiting for us
                    raise not_connected("finish connecting (disconnected meanwhile)")
        except BaseException as exc:  # a failure, or our caller was cancelled
            if not connecting.done() or room is not self._room:
                self._spawn(self._finish_abandoned(room, connecting), "utd-abandoned-connect")
            if room is self._room:
                self._room = self._held = None
                reason = exc.code if isinstance(exc, UTDStreamException) else "cancelled"
                self._set_state(ConnectionState.DISCONNECTED, reason)
            raise
        finally:
            if self._connecting is connecting:
                self._connecting = None
        self._adopt(room)

    async def disconnect(self) -> None:
        """Leave the room and wait for every background task. Idempotent. A connect in
        progress is let finish first (it is never cancelled), then left."""
        if self._connecting is not None:
            await asyncio.wait({self._connecting}, timeout=SETTLE_TIMEOUT)
        if self._retiring:  # let a revoke's unpublish finish while the room still answers
            await asyncio.wait(set(self._retiring), timeout=UNPUBLISH_TIMEOUT)
        for stream in list(self._frame_streams):
            stream.end("disconnected")
        room, self._room, self._held = self._room, None, None
        self._gone.set()
        self._stop_watching_teardown()
        published = list(self._published.values())
        self._published.clear()
        for track in published:
            track.feed.cancel()
        if room is not None:
            await self._close_room(room)
        for track in published:
            await self._release(track, None)
        await self._settle()
        if self._state is not ConnectionState.DISCONNECTED:
            self._remote.clear()
            self._set_state(ConnectionState.DISCONNECTED, "client_initiated")

    async def send_data(self, data: bytes, *, reliable: bool = True,
                        to: Sequence[str] | None = None, topic: str | None = None) -> None:
        """Send to everyone else, or only to ``to`` (empty means everyone). Raises 403
        ``publish_denied`` without the data grant, ``not_connected`` when not connected."""
        room = self._connected_room("send data")
        if not self._permissions.can_publish_data:
            raise UTDStreamException("this participant may not publish data", status_code=403,
                                     code=ErrorCode.PUBLISH_DENIED)
        with map_errors("send data"):
            await room.local_participant.publish_data(
                data, reliable=reliable, destination_identities=list(to or ()),
                topic=topic or "")

    def _sources_on(self) -> Collection[str]:
        return self._published

    # -- received media ---------------------------------------------------------------
    def audio_frames(self, identity: str, *, sample_rate: int = 48_000,
                     channels: int = 1) -> FrameStream[UTDAudioFrame]:
        check_audio_format(sample_rate, channels)
        self._connected_room(f"read the audio of {identity!r}")
        stream = self._open_stream(f"audio of {identity!r}", (identity, "microphone"))
        track = self._subscribed(identity, rtc.TrackKind.KIND_AUDIO, "microphone")
        return self._feed(stream, feed_audio(stream, track, sample_rate, channels))

    def video_frames(self, identity: str, *, format: UTDVideoFormat = UTDVideoFormat.RGBA,
                     max_fps: float | None = None) -> FrameStream[UTDVideoFrame]:
        self._connected_room(f"read the video of {identity!r}")
        stream = self._open_stream(f"video of {identity!r}", (identity, "camera"))
        track = self._subscribed(identity, rtc.TrackKind.KIND_VIDEO, "camera")
        return self._feed(stream, feed_video(stream, track, format, max_fps))

    def mixed_audio(self, *, sample_rate: int = 48_000,
                    channels: int = 1) -> FrameStream[UTDAudioFrame]:
        check_audio_format(sample_rate, channels)
        self._connected_room("read the mixed audio")
        stream = self._open_stream("mixed audio", None)
        return self._feed(stream, feed_mix(stream, self._microphones,
                                           self._track_waiters.changed, sample_rate, channels))

    def _feed(self, stream: FrameStream[Any], feed: Coroutine[Any, Any, None],
              ) -> FrameStream[Any]:
        task = self._spawn(feed, f"utd-frames ({stream.description})")
        stream.on_end(lambda: task.cancel() if task is not asyncio.current_task() else None)
        stream.settle_with(lambda: asyncio.wait({task}))
        return stream

    async def _subscribed(self, identity: str, kind: rtc.TrackKind.ValueType,
                          source: str) -> rtc.Track:
        return await self._track_waiters.track(
            lambda: self._connected_room("read remote media"), identity, kind, None,
            PUBLISH_SOURCES[source])

    def _microphones(self) -> dict[str, rtc.Track]:
        room = self._room
        if room is None:
            return {}
        return {pub.sid: pub.track for p in room.remote_participants.values()
                for pub in p.track_publications.values()
                if pub.track is not None and pub.kind == rtc.TrackKind.KIND_AUDIO
                and pub.source == rtc.TrackSource.SOURCE_MICROPHONE}

    # -- media checks (tests, diagnostics) --------------------------------------------
    async def remote_audio_rms(self, identity: str, seconds: float = 0.5,
                               timeout: float = 5.0) -> float:
        """RMS (0..1) of ``seconds`` of the audio received from ``identity``, waiting up to
        ``timeout`` for its audio track to be subscribed."""
        track = await self._remote_track(identity, rtc.TrackKind.KIND_AUDIO, timeout)
        with map_errors(f"measure the audio of {identity!r}"):
            return await receive_audio_level(track, seconds)

    async def remote_video_frames(self, identity: str, seconds: float = 0.5,
                                  timeout: float = 5.0) -> int:
        """Video frames received from ``identity`` in ``seconds`` (waits as above)."""
        track = await self._remote_track(identity, rtc.TrackKind.KIND_VIDEO, timeout)
        with map_errors(f"count the video frames of {identity!r}"):
            return await count_video_frames(track, seconds)

    # -- own tracks -------------------------------------------------------------------
    async def _set_source(self, source: str, enabled: bool) -> None:
        async with self._publishing:
            if self._retiring:  # a revoke's unpublish must land before we publish again
                await asyncio.wait(set(self._retiring))
            if not enabled:
                gone = self._published.pop(source, None)
                if gone is not None:
                    gone.feed.cancel()
                    await self._release(gone, self._room)
                return
            room = self._connected_room(f"publish the {source}")
            if source in self._published:
                return
            if not self._permissions.allows(source):
                raise publish_denied(source)
            track = self._start_feed(source)
            options = rtc.TrackPublishOptions(source=PUBLISH_SOURCES[source],
                                              simulcast=source == "camera")
            try:
                with map_errors(f"publish the {source}"):
                    publication = await self._while_connected(
                        room.local_participant.publish_track(track.track, options),
                        f"publish the {source}")
            except BaseException:
                self._retire(track, None)
                raise
            track.sid = publication.sid
            if room is not self._room or not self._permissions.allows(source):
                self._retire(track, room)  # disconnected or revoked while publishing
                raise (not_connected(f"publish the {source}") if room is not self._room
                       else publish_denied(source))
            self._published[source] = track

    def _start_feed(self, source: str) -> _Published:
        loop = asyncio.get_running_loop()
        if source == "microphone":
            audio = self._audio_source()
            audio_source = rtc.AudioSource(audio.sample_rate, audio.num_channels, loop=loop)
            feed = self._spawn(audio.run(audio_source), f"utd-{source}-feed")
            return _Published(source, audio_source,
                              rtc.LocalAudioTrack.create_audio_track(source, audio_source), feed)
        video = self._video_source()
        video_source = rtc.VideoSource(video.width, video.height)
        feed = self._spawn(video.run(video_source), f"utd-{source}-feed")
        return _Published(source, video_source,
                          rtc.LocalVideoTrack.create_video_track(source, video_source), feed)

    def _retire(self, track: _Published, room: rtc.Room | None) -> None:
        """Stop ``track`` now; unpublish (if ``room``) and close it in a tracked task."""
        track.feed.cancel()
        task = self._spawn(self._release(track, room), f"utd-retire-{track.source}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _release(self, track: _Published, room: rtc.Room | None) -> None:
        await asyncio.wait({track.feed})  # already cancelled by the caller
        if room is not None and track.sid and room.isconnected():
            try:
                await asyncio.wait_for(room.local_participant.unpublish_track(track.sid),
                                       UNPUBLISH_TIMEOUT)
            except Exception:
                logger.warning("unpublishing %s (%s) failed", track.source, track.sid,
                               exc_info=True)
        await track.rtc_source.aclose()

    # -- connection -------------------------------------------------------------------
    def _adopt(self, room: rtc.Room) -> None:
        """Sweep what the join response told rtc (participants and the tracks they already
        publish), become CONNECTED, then replay the rtc events held meanwhile."""
        local = room.local_participant
        self._identity = local.identity
        self._permissions = permissions_of(local.permissions)
        self._metadata = room.metadata
        self._remote = {p.identity: participant_view(p) for p in room.remote_participants.values()}
        held, self._held = self._held or [], None
        self._set_state(ConnectionState.CONNECTED)
        for name, args in held:
            if room is self._room:
                self._dispatch(name, args)

    async def _finish_abandoned(self, room: rtc.Room, connecting: asyncio.Task[None]) -> None:
        await asyncio.wait({connecting})  # never cancel Room.connect
        if not connecting.cancelled() and connecting.exception() is None:
            await self._close_room(room)

    async def _close_room(self, room: rtc.Room) -> None:
        # livekit-ffi closes a room by dropping its remote tracks' handles and storing
        # placeholders under the same ids, two steps (rust-sdks #539). A track object
        # collected between them drops an unknown handle, and livekit-rtc's
        # FfiHandle.__del__ asserts: an unraisable AssertionError, once in twelve CI runs.
        # Every remote track is kept referenced until the close is over (late or not), so
        # none can be collected during it.
        held = [publication.track for participant in room.remote_participants.values()
                for publication in participant.track_publications.values()
                if publication.track is not None]
        closing = asyncio.get_running_loop().create_task(room.disconnect())
        closing.add_done_callback(lambda _: held.clear())
        done, _ = await asyncio.wait({closing}, timeout=DISCONNECT_TIMEOUT)
        if not done:
            logger.warning("rtc Room.disconnect did not finish in %ss", DISCONNECT_TIMEOUT)
            self._tasks.add(closing)
            closing.add_done_callback(self._task_done)
        elif closing.exception() is not None:
            logger.warning("rtc Room.disconnect failed", exc_info=closing.exception())

    async def _while_connected(self, work: Coroutine[Any, Any, T], what: str) -> T:
        """Await ``work`` until the current connection is lost or left, then give up on
        it (cancelled) with 409 ``not_connected``."""
        task, gone = asyncio.ensure_future(work), asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # our caller was cancelled
            task.cancel()
            raise
        finally:
            gone.cancel()
        if not task.done():
            task.cancel()
            raise not_connected(f"{what} (the connection was lost meanwhile)")
        return task.result()

    def _lost(self) -> None:
        """The server ended our session: drop the room and stop our feeds (tracked)."""
        self._gone.set()
        self._room = None
        self._stop_watching_teardown()
        for track in self._published.values():
            self._retire(track, None)
        self._published.clear()
        self._remote.clear()

    def _connected_room(self, what: str) -> rtc.Room:
        if self._room is None or self._state is not ConnectionState.CONNECTED:
            raise not_connected(what)
        return self._room

    async def _remote_track(self, identity: str, kind: rtc.TrackKind.ValueType,
                            timeout: float) -> rtc.Track:
        return await self._track_waiters.track(
            lambda: self._connected_room("read remote media"), identity, kind, timeout)

    # -- tasks ------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s failed", task.get_name(),
                         exc_info=task.exception())

    async def _settle(self) -> None:
        while self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=SETTLE_TIMEOUT)
            if pending:
                logger.warning("left running after %ss: %s", SETTLE_TIMEOUT,
                               sorted(t.get_name() for t in pending))
                return

    # -- events -----------------------------------------------------------------------
    def _on_rtc(self, room: rtc.Room, name: EventTypes, *args: Any) -> None:
        if room is not self._room:
            return  # a room we left: stale by construction
        if name == "connection_state_changed" and args[0] == rtc.ConnectionState.CONN_DISCONNECTED:
            self._watch_teardown(room)
        if self._held is not None:
            self._held.append((name, args))
            return
        self._dispatch(name, args)

    def _watch_teardown(self, room: rtc.Room) -> None:
        """Make sure a room rtc reports DISCONNECTED ends up DISCONNECTED here too.

        ``disconnected`` (the event with the reason, which is what we act on) can be lost:
        when ``Room.disconnect()`` is called on the rtc room directly, rtc (1.2.1) forwards
        the state change but may stop its event loop before the ``disconnected`` event, and
        its own fallback emits that only if the state had not flipped yet. We then stayed
        CONNECTED on a dead room for good (the random walk's last divergence). So when rtc's
        event loop ends and the room is still ours, it was left from the client side.
        """
        listener: asyncio.Task[None] | None = getattr(room, "_task", None)
        if listener is None or self._teardown is not None:
            return
        self._teardown = asyncio.get_running_loop().create_task(
            self._after_teardown(room, listener), name="utd-livekit-teardown")

    async def _after_teardown(self, room: rtc.Room, listener: asyncio.Task[None]) -> None:
        await asyncio.wait({listener})
        self._teardown = None
        if room is self._room and self._state is not ConnectionState.DISCONNECTED:
            logger.info("rtc ended its room without a 'disconnected' event: taken as left")
            self._on_rtc(room, "disconnected", rtc.DisconnectReason.CLIENT_INITIATED)

    def _stop_watching_teardown(self) -> None:
        watch, self._teardown = self._teardown, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()

    def _dispatch(self, name: EventTypes, args: tuple[Any, ...]) -> None:
        try:
            event = HANDLERS[name](self, *args)
        except Exception:
            logger.exception("translating rtc %s%r failed", name, args)
            return
        if event is not None:
            self._emit(event)
        self._track_waiters.wake()

    def _refresh(self, participant: rtc.RemoteParticipant) -> None:
        self._remote[participant.identity] = participant_view(participant)


if TYPE_CHECKING:
    _: type[MediaPort] = LiveKitMedia
