"""The MediaPort contract, written once, run against every media adapter.

How to reuse it: in a ``test_*.py`` module, subclass :class:`MediaContract` as a ``Test*``
class and provide one fixture, ``media_backend``, returning a :class:`MediaBackend`:

* ``new_media`` -- a factory for fresh, unconnected ``MediaPort`` instances;
* ``server`` -- a :class:`ContractServer`: the server's ``url`` plus async control calls
  (token minting, permission updates, room metadata, listing and removing participants);
* ``feed`` -- make a media's published tracks carry a moment of media: a 440 Hz tone on
  the microphone, frames on the camera (the fake pushes them; LiveKit's default feeds
  already run, so there it does nothing).

``tests/contracts/test_media_fake.py`` does it for ``FakeSFU``/``FakeMedia``; a LiveKit run
wraps ``stream_engine.livekit_control`` (``mint_token`` + ``LiveKitControl``) in a
``ContractServer`` and returns the real adapter from ``new_media``. Every test uses a fresh
room name, so one server can serve the whole session.

Rules the cases hold adapters to: listeners run on the loop that connected, after the state
they describe is visible (each :class:`Recorder` snapshots the view at every event); waits
are event-driven with a 5 s limit, never sleeps; "X did not receive Y" is proven with an
ordered barrier message rather than by waiting for a while.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import pytest

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import (
    ConnectionState, ConnectionStateChanged, DataReceived, MediaEvent, ParticipantConnected,
    ParticipantDisconnected, PermissionsChanged, RoomMetadataChanged, TrackPublished,
    TrackSubscribed, TrackUnpublished,
)
from stream_core.frames import FrameStream, UTDAudioFrame, UTDVideoFormat
from stream_core.models import UTDPermissions, UTDRemoteParticipant
from stream_core.ports import ConnectOptions, MediaPort

__all__ = [
    "ContractServer", "MediaBackend", "MediaContract", "ContractRoom", "Peer", "Recorder",
    "View", "LISTENER", "SPEAKER", "PUBLISHER", "WAIT",
]

E = TypeVar("E", bound=MediaEvent)

#: How long any single wait may take before the case fails.
WAIT = 5.0

LISTENER = UTDPermissions(can_publish=False)
SPEAKER = UTDPermissions(can_publish=True, sources=("microphone",))
PUBLISHER = UTDPermissions(can_publish=True, sources=("microphone", "camera"))


class ContractServer(Protocol):
    """The server-side control the contract drives. Async, so REST-backed servers fit."""

    @property
    def url(self) -> str: ...

    async def issue_token(self, *, room: str, identity: str, permissions: UTDPermissions,
                          name: str | None = None) -> str: ...

    async def update_permissions(self, room: str, identity: str,
                                 permissions: UTDPermissions) -> None: ...

    async def set_room_metadata(self, room: str, metadata: str) -> None: ...

    async def list_participants(self, room: str) -> list[UTDRemoteParticipant]: ...

    async def remove_participant(self, room: str, identity: str) -> None: ...


@dataclass(frozen=True)
class MediaBackend:
    """What a concrete contract run supplies through the ``media_backend`` fixture."""

    new_media: Callable[[], MediaPort]
    server: ContractServer
    feed: Callable[[MediaPort], Awaitable[None]]


@dataclass(frozen=True)
class View:
    """A media's state as a listener saw it while handling one event."""

    state: ConnectionState
    permissions: UTDPermissions
    remote: tuple[UTDRemoteParticipant, ...]
    metadata: str
    microphone: bool
    camera: bool

    @classmethod
    def of(cls, media: MediaPort) -> View:
        return cls(media.connection_state, media.permissions, media.remote_participants,
                   media.room_metadata, media.microphone_enabled, media.camera_enabled)

    def participant(self, identity: str) -> UTDRemoteParticipant | None:
        return next((p for p in self.remote if p.identity == identity), None)


class Recorder:
    """Every event one media emitted (with the view at that moment), awaitable.

    A listener appends and sets an ``asyncio.Event``; :meth:`wait_for` rescans after each
    wake-up, so no event is missed between a check and a wait.
    """

    def __init__(self, media: MediaPort) -> None:
        self.seen: list[tuple[MediaEvent, View]] = []
        self._media = media
        self._arrived = asyncio.Event()
        self.stop = media.add_listener(self._record)

    def _record(self, event: MediaEvent) -> None:
        self.seen.append((event, View.of(self._media)))
        self._arrived.set()

    def mark(self) -> int:
        """A position to pass as ``since`` so later waits ignore what came before."""
        return len(self.seen)

    def of(self, kind: type[E], *, since: int = 0, **attrs: Any) -> list[E]:
        """The events of ``kind`` (with these attribute values) seen so far."""
        return [e for e, _ in self.seen[since:] if isinstance(e, kind) and _has(e, attrs)]

    async def wait_for(self, kind: type[E], *, since: int = 0, timeout: float = WAIT,
                       **attrs: Any) -> tuple[E, View]:
        """The first event of ``kind`` with ``attrs`` at or after ``since``, and its view."""
        async def scan() -> tuple[E, View]:
            index = since
            while True:
                for event, view in self.seen[index:]:
                    if isinstance(event, kind) and _has(event, attrs):
                        return event, view
                index = len(self.seen)
                self._arrived.clear()
                await self._arrived.wait()
        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            seen = [e for e, _ in self.seen[since:]]
            raise AssertionError(f"no {kind.__name__}{attrs or ''} within {timeout}s; "
                                 f"saw {seen!r}") from None


#: A tone heard as a tone: the FFT peak within this many Hz of what was spoken.
TONE_HZ, TONE_SLACK_HZ = 440.0, 5.0


async def read_audio(frames: FrameStream[UTDAudioFrame], seconds: float,
                     timeout: float = WAIT) -> tuple[np.ndarray, int]:
    """``seconds`` of audible PCM (mono, float) from ``frames`` (leading silence skipped,
    as a real track may start before its first decoded audio), and its sample rate."""
    chunks: list[np.ndarray] = []
    rate = 0

    async def collect() -> None:
        nonlocal rate
        got = 0
        async for frame in frames:
            pcm = np.frombuffer(frame.data, np.int16).reshape(-1, frame.channels).mean(axis=1)
            assert frame.samples_per_channel * frame.channels * 2 == len(frame.data)
            if not chunks and np.abs(pcm).max(initial=0) < 300:
                continue
            rate = frame.sample_rate
            chunks.append(pcm)
            got += len(pcm)
            if got >= seconds * rate:
                return
    await asyncio.wait_for(collect(), timeout)
    assert chunks, f"{frames!r} ended before any audible frame"
    return np.concatenate(chunks), rate


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``pcm`` (Hann-windowed FFT)."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1.0 / rate)[int(np.argmax(spectrum))])


async def drain(frames: FrameStream[Any], timeout: float = WAIT) -> int:
    """Read ``frames`` to its end (failing after ``timeout``); how many were left."""
    async def count() -> int:
        return sum([1 async for _ in frames])
    try:
        return await asyncio.wait_for(count(), timeout)
    except TimeoutError:
        raise AssertionError(f"{frames!r} did not end within {timeout}s") from None


def _has(event: MediaEvent, attrs: dict[str, Any]) -> bool:
    return all(getattr(event, name) == value for name, value in attrs.items())


@dataclass
class Peer:
    """One connected participant of a contract case."""

    identity: str
    media: MediaPort
    events: Recorder


@dataclass
class ContractRoom:
    """A fresh room of one case; every peer it made is disconnected at teardown."""

    backend: MediaBackend
    name: str = field(default_factory=lambda: f"contract-{uuid.uuid4().hex[:10]}")
    peers: list[Peer] = field(default_factory=list)

    @property
    def server(self) -> ContractServer:
        return self.backend.server

    async def join(self, identity: str, permissions: UTDPermissions = LISTENER, *,
                   auto_subscribe: bool = True) -> Peer:
        media = self.backend.new_media()
        peer = Peer(identity, media, Recorder(media))
        self.peers.append(peer)
        token = await self.server.issue_token(room=self.name, identity=identity,
                                              permissions=permissions)
        await media.connect(self.server.url, token, ConnectOptions(auto_subscribe=auto_subscribe))
        return peer

    async def identities(self) -> list[str]:
        return sorted(p.identity for p in await self.server.list_participants(self.name))

    async def close(self) -> None:
        for peer in self.peers:
            await peer.media.disconnect()


class MediaContract:
    """The cases. Subclass as ``Test...`` and override the ``media_backend`` fixture."""

    @pytest.fixture
    def media_backend(self) -> MediaBackend:
        raise NotImplementedError("a contract run must provide the media_backend fixture")

    @pytest.fixture
    async def room(self, media_backend: MediaBackend) -> AsyncIterator[ContractRoom]:
        room = ContractRoom(media_backend)
        yield room
        await room.close()

    async def test_connect_makes_participants_visible_both_ways(self, room: ContractRoom) -> None:
        alice = await room.join("alice")
        bob = await room.join("bob")

        states = [e.state for e in alice.events.of(ConnectionStateChanged)]
        assert states == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
        assert bob.media.identity == "bob"
        assert bob.media.connection_state is ConnectionState.CONNECTED
        assert [p.identity for p in bob.media.remote_participants] == ["alice"]
        _, view = await alice.events.wait_for(ParticipantConnected, identity="bob")
        assert view.participant("bob") is not None  # visible before the listener ran
        assert await room.identities() == ["alice", "bob"]

    async def test_granted_publish_is_seen_by_others(self, room: ContractRoom) -> None:
        alice = await room.join("alice")
        bob = await room.join("bob")

        await room.server.update_permissions(room.name, "alice", SPEAKER)
        changed, view = await alice.events.wait_for(PermissionsChanged)
        assert changed.permissions.allows("microphone")
        assert view.permissions.allows("microphone")

        await alice.media.set_microphone(True)
        assert alice.media.microphone_enabled
        published, _ = await bob.events.wait_for(TrackPublished, identity="alice")
        assert (published.track.kind, published.track.source) == ("audio", "microphone")
        _, view = await bob.events.wait_for(TrackSubscribed, identity="alice")
        seen = view.participant("alice")
        assert seen is not None and seen.has_track("microphone")
        assert all(t.subscribed for t in seen.tracks)
        listed = {p.identity: p for p in await room.server.list_participants(room.name)}
        assert listed["alice"].can_publish and listed["alice"].has_track("microphone")

    async def test_publish_without_grant_is_refused(self, room: ContractRoom) -> None:
        listener = await room.join("listener")
        speaker = await room.join("speaker", SPEAKER)

        with pytest.raises(UTDStreamException) as refused:
            await listener.media.set_microphone(True)
        assert (refused.value.status_code, refused.value.code) == (403, ErrorCode.PUBLISH_DENIED)
        with pytest.raises(UTDStreamException) as wrong_source:
            await speaker.media.set_camera(True)
        assert wrong_source.value.code == ErrorCode.PUBLISH_DENIED
        assert not listener.media.microphone_enabled and not speaker.media.camera_enabled

    async def test_revoke_unpublishes_and_others_see_it_go(self, room: ContractRoom) -> None:
        alice = await room.join("alice", SPEAKER)
        bob = await room.join("bob")
        await alice.media.set_microphone(True)
        await bob.events.wait_for(TrackSubscribed, identity="alice")
        since_alice, since_bob = alice.events.mark(), bob.events.mark()

        await room.server.update_permissions(room.name, "alice", LISTENER)
        changed, view = await alice.events.wait_for(PermissionsChanged, since=since_alice)
        assert not changed.permissions.can_publish
        assert not view.microphone  # already off when the listener heard of the revoke
        assert not alice.media.microphone_enabled
        _, view = await bob.events.wait_for(TrackUnpublished, identity="alice", since=since_bob)
        seen = view.participant("alice")
        assert seen is not None and not seen.has_track("microphone")

    async def test_revoking_one_source_keeps_the_others(self, room: ContractRoom) -> None:
        alice = await room.join("alice", PUBLISHER)
        bob = await room.join("bob")
        await alice.media.set_microphone(True)
        await alice.media.set_camera(True)
        since = alice.events.mark()

        camera_only = UTDPermissions(can_publish=True, sources=("camera",))
        await room.server.update_permissions(room.name, "alice", camera_only)
        await alice.events.wait_for(PermissionsChanged, since=since)
        assert (alice.media.microphone_enabled, alice.media.camera_enabled) == (False, True)
        unpublished, view = await bob.events.wait_for(TrackUnpublished, identity="alice")
        assert unpublished.track.source == "microphone"
        seen = view.participant("alice")
        assert seen is not None and seen.has_track("camera") and not seen.has_track("microphone")

    async def test_room_metadata_reaches_everyone(self, room: ContractRoom) -> None:
        peers = [await room.join("alice"), await room.join("bob")]

        await room.server.set_room_metadata(room.name, '{"topic": "jazz"}')
        for peer in peers:
            _, view = await peer.events.wait_for(RoomMetadataChanged, metadata='{"topic": "jazz"}')
            assert view.metadata == '{"topic": "jazz"}'
        late = await room.join("carol")
        assert late.media.room_metadata == '{"topic": "jazz"}'

    async def test_data_reaches_everyone_or_only_the_addressed(self, room: ContractRoom) -> None:
        alice, bob, carol = [await room.join(n) for n in ("alice", "bob", "carol")]

        await alice.media.send_data(b"to all", topic="chat")
        for peer in (bob, carol):
            got, _ = await peer.events.wait_for(DataReceived, data=b"to all")
            assert (got.sender, got.topic) == ("alice", "chat")

        await alice.media.send_data(b"to bob", to=["bob"])
        await alice.media.send_data(b"barrier")  # ordered after "to bob" for every receiver
        await bob.events.wait_for(DataReceived, data=b"to bob")
        await carol.events.wait_for(DataReceived, data=b"barrier")
        assert carol.events.of(DataReceived, data=b"to bob") == []

        await bob.media.send_data(b"bob's barrier", to=["alice"])
        await alice.events.wait_for(DataReceived, data=b"bob's barrier")
        assert alice.events.of(DataReceived, sender="alice") == []  # never echoed to sender

    async def test_duplicate_identity_kicks_the_older(self, room: ContractRoom) -> None:
        older = await room.join("alice")
        bob = await room.join("bob")
        since = bob.events.mark()

        newer = await room.join("alice")
        kicked, _ = await older.events.wait_for(ConnectionStateChanged,
                                                state=ConnectionState.DISCONNECTED)
        assert kicked.reason == "duplicate_identity"
        assert older.media.connection_state is ConnectionState.DISCONNECTED
        assert newer.media.connection_state is ConnectionState.CONNECTED
        await bob.events.wait_for(ParticipantConnected, identity="alice", since=since)

        await older.media.disconnect()  # the kicked instance cannot take its successor down
        assert newer.media.connection_state is ConnectionState.CONNECTED
        assert await room.identities() == ["alice", "bob"]

    async def test_remove_participant_disconnects_with_reason(self, room: ContractRoom) -> None:
        alice = await room.join("alice")
        bob = await room.join("bob")

        await room.server.remove_participant(room.name, "bob")
        event, view = await bob.events.wait_for(ConnectionStateChanged,
                                                state=ConnectionState.DISCONNECTED)
        assert event.reason == "removed"
        assert view.state is ConnectionState.DISCONNECTED
        _, view = await alice.events.wait_for(ParticipantDisconnected, identity="bob")
        assert view.participant("bob") is None

    async def test_disconnect_is_idempotent_and_others_see_the_leave(
            self, room: ContractRoom) -> None:
        alice = await room.join("alice")
        bob = await room.join("bob")

        await alice.media.disconnect()
        await alice.media.disconnect()
        assert alice.media.connection_state is ConnectionState.DISCONNECTED
        disconnects = alice.events.of(ConnectionStateChanged, state=ConnectionState.DISCONNECTED)
        assert len(disconnects) == 1
        _, view = await bob.events.wait_for(ParticipantDisconnected, identity="alice")
        assert view.participant("alice") is None
        assert await room.identities() == ["bob"]
        with pytest.raises(UTDStreamException) as refused:
            await alice.media.send_data(b"late")
        assert refused.value.code == "not_connected"

    # -- received media -----------------------------------------------------------------
    async def test_audio_frames_carry_the_speakers_tone_resampled(
            self, room: ContractRoom) -> None:
        alice = await room.join("alice", SPEAKER)
        bob = await room.join("bob")
        frames = bob.media.audio_frames("alice", sample_rate=16_000, channels=2)

        await alice.media.set_microphone(True)
        await room.backend.feed(alice.media)
        async with frames:
            pcm, rate = await read_audio(frames, 0.3)
        assert rate == 16_000
        assert abs(peak_hz(pcm, rate) - TONE_HZ) < TONE_SLACK_HZ
        assert frames.ended == "closed"

    async def test_audio_frames_end_when_the_grant_is_revoked(self, room: ContractRoom) -> None:
        alice = await room.join("alice", SPEAKER)
        bob = await room.join("bob")
        frames = bob.media.audio_frames("alice")
        await alice.media.set_microphone(True)
        await room.backend.feed(alice.media)
        await read_audio(frames, 0.05)

        await room.server.update_permissions(room.name, "alice", LISTENER)
        await drain(frames)
        assert frames.ended is not None and frames.ended != "closed"

    async def test_frames_end_when_the_speaker_leaves_or_we_do(self, room: ContractRoom) -> None:
        alice = await room.join("alice", PUBLISHER)
        bob = await room.join("bob")
        carol = await room.join("carol")
        from_alice = bob.media.video_frames("alice")
        never = carol.media.audio_frames("nobody")  # waits for a participant who never comes

        await alice.media.disconnect()
        await drain(from_alice)
        await carol.media.disconnect()
        await drain(never)
        assert never.ended == "disconnected"
        with pytest.raises(UTDStreamException) as refused:
            carol.media.mixed_audio()
        assert refused.value.code == ErrorCode.NOT_CONNECTED

    async def test_video_frames_arrive_in_the_asked_format(self, room: ContractRoom) -> None:
        alice = await room.join("alice", PUBLISHER)
        bob = await room.join("bob")
        frames = bob.media.video_frames("alice", format=UTDVideoFormat.RGBA, max_fps=30)

        await alice.media.set_camera(True)
        await room.backend.feed(alice.media)
        async with frames:
            frame = await asyncio.wait_for(anext(frames), WAIT)
        assert frame.format is UTDVideoFormat.RGBA and frame.width > 0 and frame.height > 0
        assert len(frame.data) == frame.width * frame.height * 4

    async def test_mixed_audio_is_what_a_listener_hears(self, room: ContractRoom) -> None:
        alice = await room.join("alice", SPEAKER)
        bob = await room.join("bob")
        mix = bob.media.mixed_audio()

        await alice.media.set_microphone(True)
        await room.backend.feed(alice.media)
        async with mix:
            pcm, rate = await read_audio(mix, 0.3)
        assert rate == 48_000
        assert abs(peak_hz(pcm, rate) - TONE_HZ) < TONE_SLACK_HZ
