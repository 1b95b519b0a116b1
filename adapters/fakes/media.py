"""The client half of the fake SFU: :class:`FakeMedia`, one participant's ``MediaPort``.

Import it from :mod:`adapters.fakes.sfu` (which re-exports it next to ``FakeSFU``).

Rules of this file: the server hands facts to the loop that connected (see
:mod:`adapters.fakes.sfu_room`); for each fact, the view (permissions, remote participants,
metadata, connection state, own tracks) is updated first, using the ``_VIEW_UPDATES`` table,
and only then are the listeners called, in registration order. A listener that raises is
logged and the others still run.

Media: :meth:`FakeMedia.push_audio` / :meth:`FakeMedia.push_video` send frames on this
participant's published microphone / camera (dropped, returning ``False``, when it is not
published); the SFU hands them to every subscriber's loop in order with the facts, where
they feed the subscriber's :class:`~stream_core.frames.FrameStream`s. Audio is converted
to each reader's format (:mod:`adapters.fakes.pcm`); video is passed as pushed (the fake
does not convert pixel formats: a reader asking for another format than was pushed gets
the pushed one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from adapters.fakes.pcm import PcmMix, bytes_of, convert
from adapters.fakes.sfu_room import Delivery, SfuParticipant, not_connected
from adapters.media_view import MediaView
from stream_core.errors import UTDStreamException
from stream_core.events import (
    ConnectionState, ConnectionStateChanged, MediaEvent, ParticipantDisconnected,
    PermissionsChanged, RoomMetadataChanged, TrackPublished, TrackSubscribed, TrackUnpublished,
    TrackUnsubscribed,
)
from stream_core.frames import (
    FrameStream, UTDAudioFrame, UTDVideoFormat, UTDVideoFrame, check_audio_format,
)
from stream_core.models import UTDTrack
from stream_core.ports import ConnectOptions

if TYPE_CHECKING:
    from adapters.fakes.sfu import FakeSFU
    from stream_core.ports import MediaPort

__all__ = ["FakeMedia"]



class FakeMedia(MediaView):
    """One participant's connection to a :class:`FakeSFU` (implements ``MediaPort``).

    Use it from one event loop: the loop that called :meth:`connect` receives its events.
    Track and participant events are about remote participants only; a server-side revoke
    of this participant's own tracks shows as ``PermissionsChanged``, with
    :attr:`microphone_enabled` / :attr:`camera_enabled` already updated.
    """

    def __init__(self, sfu: FakeSFU) -> None:
        super().__init__()
        self._sfu = sfu
        self._link: SfuParticipant | None = None
        self._local: dict[str, UTDTrack] = {}
        self._readers: dict[FrameStream[Any], _Reader] = {}
        self._pushed_samples = 0  # position of the next pushed audio frame

    def __repr__(self) -> str:
        return (f"FakeMedia(identity={self._identity!r}, state={self._state.name}, "
                f"local={sorted(self._local)!r}, remote={list(self._remote)!r})")

    # -- MediaPort: actions -----------------------------------------------------------
    async def connect(self, url: str, token: str, options: ConnectOptions) -> None:
        """Join the token's room (created on demand). Raises 401 ``unauthenticated``,
        403 ``room_full``, or 409 if this instance is already connected."""
        if self._state is not ConnectionState.DISCONNECTED:
            raise UTDStreamException.illegal(f"already {self._state.value}; disconnect first")
        loop = asyncio.get_running_loop()
        self._set_state(ConnectionState.CONNECTING)
        try:
            link, present, metadata = self._sfu._join(
                url, token, auto_subscribe=options.auto_subscribe, loop=loop,
                sink=self._on_delivery, frame_sink=self._on_frame)
        except UTDStreamException as exc:
            self._set_state(ConnectionState.DISCONNECTED, exc.code)
            raise
        self._link = link
        self._identity = link.identity
        self._permissions = link.permissions
        self._remote = {p.identity: p for p in present}
        self._metadata = metadata
        self._set_state(ConnectionState.CONNECTED)

    async def disconnect(self) -> None:
        """Leave the room. Idempotent; a no-op when already disconnected."""
        link = self._link
        if link is None:
            return
        self._detach()
        self._sfu._leave(link)
        self._set_state(ConnectionState.DISCONNECTED, "client_initiated")

    async def send_data(self, data: bytes, *, reliable: bool = True,
                        to: Sequence[str] | None = None, topic: str | None = None) -> None:
        """Send to everyone else, or only to ``to`` (an empty list means everyone, as in
        LiveKit). Raises 403 ``publish_denied`` without the data grant."""
        if self._link is None:
            raise not_connected("send data")
        self._sfu._send(self._link, data, topic=topic, to=to)

    async def _set_source(self, source: str, enabled: bool) -> None:
        link = self._link
        if not enabled:
            self._local.pop(source, None)
            if link is not None:
                self._sfu._unpublish(link, source)
            return
        if link is None:
            raise not_connected(f"publish {source}")
        self._local[source] = self._sfu._publish(link, source)

    def _sources_on(self) -> Collection[str]:
        return self._local

    # -- media: what this participant says and shows ----------------------------------
    def push_audio(self, pcm: bytes, *, sample_rate: int = 48_000, channels: int = 1) -> bool:
        """Send interleaved 16-bit PCM on the published microphone; ``False`` (dropped) when
        the microphone is not published."""
        check_audio_format(sample_rate, channels)
        samples = len(pcm) // (2 * channels)
        frame = UTDAudioFrame(bytes(pcm[:2 * channels * samples]), sample_rate, channels,
                              samples, self._pushed_samples / sample_rate)
        if self._link is None or not self._sfu._relay(self._link, "microphone", frame):
            return False
        self._pushed_samples += samples
        return True

    def push_video(self, frame: UTDVideoFrame) -> bool:
        """Send a frame on the published camera; ``False`` (dropped) when not published."""
        return self._link is not None and self._sfu._relay(self._link, "camera", frame)

    # -- media: what this participant hears and sees ----------------------------------
    def audio_frames(self, identity: str, *, sample_rate: int = 48_000,
                     channels: int = 1) -> FrameStream[UTDAudioFrame]:
        check_audio_format(sample_rate, channels)
        return self._reader(f"audio of {identity!r}", (identity, "microphone"),
                            _AudioReader(sample_rate, channels))

    def video_frames(self, identity: str, *, format: UTDVideoFormat = UTDVideoFormat.RGBA,
                     max_fps: float | None = None) -> FrameStream[UTDVideoFrame]:
        return self._reader(f"video of {identity!r}", (identity, "camera"),
                            _VideoReader(max_fps))

    def mixed_audio(self, *, sample_rate: int = 48_000,
                    channels: int = 1) -> FrameStream[UTDAudioFrame]:
        check_audio_format(sample_rate, channels)
        return self._reader("mixed audio", None, _MixReader(PcmMix(sample_rate, channels)))

    def _reader(self, description: str, source: tuple[str, str] | None,
                reader: _Reader) -> FrameStream[Any]:
        if self._link is None:
            raise not_connected(f"read the {description}")
        stream = self._open_stream(description, source)
        self._readers[stream] = reader
        stream.on_end(lambda: self._readers.pop(stream, None))
        return stream

    def _on_frame(self, link: SfuParticipant, sender: str, source: str, frame: object) -> None:
        if link is not self._link:
            return
        for stream, reader in list(self._readers.items()):
            wanted = self._frame_streams.get(stream)
            if wanted is None or wanted == (sender, source):
                reader.take(stream, sender, source, frame)

    def _unmix(self, event: MediaEvent) -> None:
        """A speaker that stops publishing leaves every mix (its leftover mixed in)."""
        if isinstance(event, ParticipantDisconnected) or (
                isinstance(event, TrackUnsubscribed | TrackUnpublished)
                and event.track.source == "microphone"):
            for stream, reader in list(self._readers.items()):
                if isinstance(reader, _MixReader):
                    reader.drop(stream, event.identity)

    # -- delivery (on this media's loop) ----------------------------------------------
    def _on_delivery(self, link: SfuParticipant, delivery: Delivery) -> None:
        """Apply one server fact to the view, then tell the listeners.

        Facts for a connection this media already left (it disconnected, or reconnected)
        are stale by construction and dropped: LiveKit stops reporting a closed room too.
        """
        if link is not self._link:
            return
        if delivery.participant is not None:
            self._remote[delivery.participant.identity] = delivery.participant
        event = delivery.event
        if event is None:
            return
        update = _VIEW_UPDATES.get(type(event))
        if update is not None:
            update(self, event, delivery)
        self._unmix(event)
        self._emit(event)

    def _detach(self) -> None:
        self._link = None
        self._remote.clear()
        self._local.clear()

    def _retrack(self, identity: str,
                 change: Callable[[tuple[UTDTrack, ...]], tuple[UTDTrack, ...]]) -> None:
        view = self._remote.get(identity)
        if view is not None:
            self._remote[identity] = replace(view, tracks=change(view.tracks))


class _Reader:
    """How one stream takes the frames it reads."""

    def take(self, stream: FrameStream[Any], sender: str, source: str, frame: object) -> None:
        raise NotImplementedError


class _AudioReader(_Reader):
    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels, self.position = sample_rate, channels, 0

    def take(self, stream: FrameStream[Any], sender: str, source: str, frame: object) -> None:
        assert isinstance(frame, UTDAudioFrame)
        pcm = convert(frame, self.sample_rate, self.channels)
        samples = len(pcm) // self.channels
        stream.push(UTDAudioFrame(bytes_of(pcm), self.sample_rate, self.channels, samples,
                                  self.position / self.sample_rate))
        self.position += samples


class _VideoReader(_Reader):
    def __init__(self, max_fps: float | None) -> None:
        self.period = 1.0 / max_fps if max_fps else 0.0
        self.last: float | None = None

    def take(self, stream: FrameStream[Any], sender: str, source: str, frame: object) -> None:
        assert isinstance(frame, UTDVideoFrame)
        if self.last is not None and frame.timestamp - self.last < self.period:
            return  # over the rate limit: dropped, as LiveKit readers drop
        self.last = frame.timestamp
        stream.push(frame)


class _MixReader(_Reader):
    def __init__(self, mix: PcmMix) -> None:
        self.mix = mix

    def take(self, stream: FrameStream[Any], sender: str, source: str, frame: object) -> None:
        if source == "microphone" and isinstance(frame, UTDAudioFrame):
            mixed = self.mix.add(sender, frame)
            if mixed is not None:
                stream.push(mixed)

    def drop(self, stream: FrameStream[Any], speaker: str) -> None:
        mixed = self.mix.remove(speaker)
        if mixed is not None:
            stream.push(mixed)


def _on_state(media: FakeMedia, event: ConnectionStateChanged, _: Delivery) -> None:
    if event.state is ConnectionState.DISCONNECTED:
        media._detach()
    media._state = event.state


def _on_left(media: FakeMedia, event: ParticipantDisconnected, _: Delivery) -> None:
    media._remote.pop(event.identity, None)


def _on_published(media: FakeMedia, event: TrackPublished, _: Delivery) -> None:
    media._retrack(event.identity, lambda tracks: (*tracks, event.track))


def _on_unpublished(media: FakeMedia, event: TrackUnpublished, _: Delivery) -> None:
    media._retrack(event.identity,
                   lambda tracks: tuple(t for t in tracks if t.sid != event.track.sid))


def _on_subscription(media: FakeMedia, event: TrackSubscribed | TrackUnsubscribed,
                     _: Delivery) -> None:
    media._retrack(event.identity, lambda tracks: tuple(
        event.track if t.sid == event.track.sid else t for t in tracks))


def _on_permissions(media: FakeMedia, event: PermissionsChanged, delivery: Delivery) -> None:
    media._permissions = event.permissions
    for source, track in list(media._local.items()):
        if track.sid in delivery.unpublished:
            del media._local[source]


def _on_metadata(media: FakeMedia, event: RoomMetadataChanged, _: Delivery) -> None:
    media._metadata = event.metadata


#: How each event changes a FakeMedia's view before its listeners hear it. Events not
#: listed (ParticipantConnected carries its snapshot in the delivery; DataReceived) only
#: reach the listeners.
_VIEW_UPDATES: dict[type[MediaEvent], Callable[[FakeMedia, Any, Delivery], None]] = {
    ConnectionStateChanged: _on_state,
    ParticipantDisconnected: _on_left,
    TrackPublished: _on_published,
    TrackUnpublished: _on_unpublished,
    TrackSubscribed: _on_subscription,
    TrackUnsubscribed: _on_subscription,
    PermissionsChanged: _on_permissions,
    RoomMetadataChanged: _on_metadata,
}

if TYPE_CHECKING:
    _: type[MediaPort] = FakeMedia
