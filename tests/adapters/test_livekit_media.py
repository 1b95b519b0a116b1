"""What only the LiveKit adapter promises (beyond the MediaPort contract): real media flows.

Against a real loopback livekit-server: a tone is heard and silence is not, camera frames
arrive, a WAV file and app-pushed PCM are published, a revoke stops and unpublishes the
local track (so it can be published again), a dead or silent server fails the connect fast
without taking the process down, and ``disconnect`` leaves no task behind.

Every wait is bounded; participants that publish are announced to the others at once
(only non-publishers are batched by the server every 3 s), so no case waits for that batch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from adapters.livekit.media import LiveKitMedia
from adapters.livekit.sources import PushedAudio, SilentAudio, ToneAudio, WavAudio
from stream_engine.livekit_control import LiveKitControl, mint_token
from stream_devstack.livekit_process import LiveKitServer
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import (
    ConnectionState, ConnectionStateChanged, MediaEvent, PermissionsChanged, TrackSubscribed,
    TrackUnpublished,
)
from stream_core.ports import ConnectOptions

pytestmark = pytest.mark.livekit

#: RMS (fraction of full scale) that separates a 0.3-amplitude tone (~0.21) from silence.
HEARD = 0.05
SILENT = 0.005
WAIT = 5.0


class Events:
    """A media's events, awaitable (a minimal recorder for these cases)."""

    def __init__(self, media: LiveKitMedia) -> None:
        self.seen: list[MediaEvent] = []
        self._arrived = asyncio.Event()
        media.add_listener(self._record)

    def _record(self, event: MediaEvent) -> None:
        self.seen.append(event)
        self._arrived.set()

    async def wait_for(self, match: Callable[[MediaEvent], bool]) -> MediaEvent:
        async def scan() -> MediaEvent:
            index = 0
            while True:
                for event in self.seen[index:]:
                    if match(event):
                        return event
                index = len(self.seen)
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(scan(), WAIT)


class Room:
    """A fresh room on the shared server; every media it connected is disconnected."""

    def __init__(self, server: LiveKitServer, control: LiveKitControl) -> None:
        self.server, self.control = server, control
        self.name = f"media-{uuid.uuid4().hex[:10]}"
        self.joined: list[LiveKitMedia] = []

    def token(self, identity: str, *sources: str) -> str:
        return mint_token(self.server.api_key, self.server.api_secret, identity=identity,
                          room=self.name, can_publish=bool(sources),
                          can_publish_sources=list(sources), ttl_seconds=600)

    async def until_empty(self) -> None:
        """Wait (bounded) until the server lists nobody in this room."""
        deadline = time.monotonic() + WAIT
        while await self.control.list_participants(self.name):
            assert time.monotonic() < deadline, "the server still lists participants"
            await asyncio.sleep(0.05)

    async def join(self, identity: str, *sources: str,
                   media: LiveKitMedia | None = None) -> LiveKitMedia:
        media = media or LiveKitMedia()
        self.joined.append(media)
        await media.connect(self.server.url, self.token(identity, *sources), ConnectOptions())
        return media


@pytest.fixture
async def room(livekit_server: LiveKitServer) -> AsyncIterator[Room]:
    control = LiveKitControl(livekit_server.url, livekit_server.api_key,
                             livekit_server.api_secret)
    made = Room(livekit_server, control)
    try:
        yield made
    finally:
        for media in made.joined:
            await media.disconnect()
        await control.aclose()


async def test_a_tone_is_heard_and_silence_is_not(room: Room) -> None:
    tone = await room.join("tone", "microphone")
    quiet = await room.join("quiet", "microphone",
                            media=LiveKitMedia(audio_source=SilentAudio))
    await tone.set_microphone(True)
    await quiet.set_microphone(True)

    assert await quiet.remote_audio_rms("tone", seconds=0.5) > HEARD
    assert await tone.remote_audio_rms("quiet", seconds=0.5) < SILENT


async def test_camera_frames_arrive(room: Room) -> None:
    camera = await room.join("camera", "camera")
    viewer = await room.join("viewer")
    await camera.set_camera(True)

    frames = await viewer.remote_video_frames("camera", seconds=1.0)
    assert frames >= 5  # 15 fps generated; the first frames wait for a key frame


async def test_wav_file_and_pushed_pcm_are_published(room: Room, tmp_path: Path) -> None:
    clip = tmp_path / "tone-16k-stereo.wav"
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000))
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(np.repeat(samples.astype(np.int16), 2).tobytes())
    pushed = PushedAudio()
    from_file = await room.join("file", "microphone",
                                media=LiveKitMedia(audio_source=lambda: WavAudio(clip)))
    from_app = await room.join("app", "microphone", media=LiveKitMedia(audio_source=lambda: pushed))
    await from_file.set_microphone(True)
    await from_app.set_microphone(True)

    async def speak() -> None:  # what an app does: push 20 ms of PCM every 20 ms
        for chunk in range(150):
            t = (np.arange(960) + chunk * 960) / 48_000
            pushed.push((0.3 * 32767 * np.sin(2 * np.pi * 660 * t)).astype(np.int16).tobytes())
            await asyncio.sleep(0.02)
    speaking = asyncio.create_task(speak())
    try:
        assert await from_app.remote_audio_rms("file", seconds=0.5) > HEARD
        assert await from_file.remote_audio_rms("app", seconds=0.5) > HEARD
    finally:
        speaking.cancel()
        await asyncio.wait({speaking})


def test_wav_files_the_adapter_cannot_publish_are_refused(tmp_path: Path) -> None:
    clip = tmp_path / "8bit.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(48_000)
        wav.writeframes(bytes(480))
    with pytest.raises(ValueError, match="only 16-bit PCM"):
        WavAudio(clip)
    (tmp_path / "not.wav").write_bytes(b"RIFF....nonsense")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        WavAudio(tmp_path / "not.wav")


async def test_revoke_unpublishes_locally_and_others_see_the_track_go(room: Room) -> None:
    alice = await room.join("alice", "microphone")
    bob = await room.join("bob")
    alice_events, bob_events = Events(alice), Events(bob)
    await alice.set_microphone(True)
    await bob_events.wait_for(lambda e: isinstance(e, TrackSubscribed))

    await room.control.update_permissions(room.name, "alice", can_publish=False, sources=[])
    await alice_events.wait_for(lambda e: isinstance(e, PermissionsChanged))
    assert not alice.microphone_enabled
    await bob_events.wait_for(lambda e: isinstance(e, TrackUnpublished))
    await alice.set_microphone(False)  # a no-op that waits for the unpublish in flight
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("utd-microphone")]

    # The local publication is really gone: granted again, the microphone publishes anew.
    await room.control.update_permissions(room.name, "alice", can_publish=True,
                                          sources=["microphone"])
    await alice_events.wait_for(
        lambda e: isinstance(e, PermissionsChanged) and e.permissions.can_publish)
    await alice.set_microphone(True)
    assert await bob.remote_audio_rms("alice", seconds=0.3) > HEARD


async def test_connect_to_a_dead_port_fails_fast(room: Room) -> None:
    async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
    probe = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nothing listens on ``port`` any more
    media = LiveKitMedia()
    events = Events(media)

    started = time.monotonic()
    with pytest.raises(UTDStreamException) as failed:
        await media.connect(f"ws://127.0.0.1:{port}", room.token("x"), ConnectOptions(timeout=5))
    assert time.monotonic() - started < 2.0
    assert failed.value.code == ErrorCode.UNAVAILABLE
    assert media.connection_state is ConnectionState.DISCONNECTED
    assert [(e.state, e.reason) for e in events.seen if isinstance(e, ConnectionStateChanged)] \
        == [(ConnectionState.CONNECTING, None), (ConnectionState.DISCONNECTED, "unavailable")]
    await media.disconnect()


async def test_connect_timeout_leaves_the_connect_running_and_reaps_it(room: Room) -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, never answer the WebSocket upgrade
    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    media = LiveKitMedia()

    started = time.monotonic()
    with pytest.raises(UTDStreamException) as failed:
        await media.connect(f"ws://127.0.0.1:{port}", room.token("x"),
                            ConnectOptions(timeout=0.5))
    assert time.monotonic() - started < 1.5
    assert failed.value.code == ErrorCode.TIMEOUT
    assert media.connection_state is ConnectionState.DISCONNECTED
    assert [t.get_name() for t in asyncio.all_tasks()].count("utd-livekit-connect") == 1

    silent.close()  # the SDK's own retries now fail fast, so the connect can finish
    for writer in held:
        writer.close()
    await silent.wait_closed()
    await asyncio.wait_for(media.disconnect(), 10)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_disconnect_awaits_every_background_task(room: Room) -> None:
    alice = await room.join("alice", "microphone", "camera")
    heard: list[MediaEvent] = []

    def broken(event: MediaEvent) -> None:
        raise RuntimeError("a listener bug")
    alice.add_listener(broken)
    alice.add_listener(heard.append)
    await alice.set_microphone(True)
    await alice.set_camera(True)
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert {"utd-microphone-feed", "utd-camera-feed"} <= names

    await alice.disconnect()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert not (alice.microphone_enabled or alice.camera_enabled)
    assert heard == [ConnectionStateChanged(ConnectionState.DISCONNECTED, "client_initiated")]


async def test_disconnect_during_connect_lets_the_connect_finish_then_leaves(
        room: Room) -> None:
    media = LiveKitMedia()
    events = Events(media)
    connecting = asyncio.create_task(
        media.connect(room.server.url, room.token("early"), ConnectOptions()))
    await asyncio.sleep(0)  # the connect is under way

    await media.disconnect()
    await asyncio.wait({connecting})
    assert media.connection_state is ConnectionState.DISCONNECTED
    states = [e.state for e in events.seen if isinstance(e, ConnectionStateChanged)]
    assert states[0] is ConnectionState.CONNECTING
    assert states[-1] is ConnectionState.DISCONNECTED and states.count(states[-1]) == 1
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await room.until_empty()  # the server handles the leave asynchronously


async def test_measuring_a_participant_without_media_times_out(room: Room) -> None:
    viewer = await room.join("viewer")
    with pytest.raises(UTDStreamException) as failed:
        await viewer.remote_audio_rms("nobody", timeout=0.2)
    assert failed.value.code == ErrorCode.TIMEOUT
    with pytest.raises(UTDStreamException) as refused:
        await LiveKitMedia().remote_video_frames("nobody")
    assert refused.value.code == "not_connected"


async def test_the_underlying_rtc_room_is_reachable_while_connected(room: Room) -> None:
    media = LiveKitMedia()
    assert media.rtc_room is None
    await room.join("raw-access", media=media)
    assert media.rtc_room is not None and media.rtc_room.isconnected()
    assert media.rtc_room.local_participant.identity == "raw-access"
    await media.disconnect()
    assert media.rtc_room is None


async def test_an_rtc_room_disconnected_directly_is_seen_as_left_every_time(room: Room) -> None:
    """rtc may drop its ``disconnected`` event when its room is disconnected directly (the
    state change comes, the event does not); the adapter must still end DISCONNECTED, not
    stay CONNECTED on a dead room (the random walk's divergence: a member that stayed
    "connected" with a stale mirror). Several rounds, since rtc loses the event by a race."""
    media = LiveKitMedia()
    events = Events(media)
    for attempt in range(8):
        await room.join("dropped", "microphone", media=media)
        await media.set_microphone(True)
        rtc_room = media.rtc_room
        assert rtc_room is not None
        await rtc_room.disconnect()
        left = await events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                                     and e.state is ConnectionState.DISCONNECTED)
        assert left == ConnectionStateChanged(ConnectionState.DISCONNECTED, "client_initiated"), \
            attempt
        assert media.connection_state is ConnectionState.DISCONNECTED and media.rtc_room is None
        events.seen.clear()


async def test_a_publish_rtc_never_answers_ends_when_the_connection_is_lost(room: Room) -> None:
    """After a LiveKit restart rtc's ``publish_track`` could wait for good on the dead
    connection (the random walk's stuck resync); a publish must end with the connection.
    rtc's hang is played by a publish that never answers; the server then removes us."""
    media = await room.join("hung", "microphone")
    rtc_room = media.rtc_room
    assert rtc_room is not None
    waiting = asyncio.Event()

    async def never_answers(*args: object, **kwargs: object) -> None:
        waiting.set()
        await asyncio.Event().wait()

    rtc_room.local_participant.publish_track = never_answers  # type: ignore[method-assign]
    publishing = asyncio.create_task(media.set_microphone(True))
    await asyncio.wait_for(waiting.wait(), WAIT)
    await room.control.remove_participant(room.name, "hung")
    with pytest.raises(UTDStreamException) as lost:
        await asyncio.wait_for(publishing, WAIT)
    assert lost.value.code == ErrorCode.NOT_CONNECTED
    assert not media.microphone_enabled
