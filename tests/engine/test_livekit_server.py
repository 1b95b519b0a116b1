"""Integration tests against a real livekit-server (see ``conftest.livekit_server``).

Why real: permissions, metadata fan-out, targeted data packets and "listener cannot publish"
are server behaviours; mocks would only restate our assumptions. Every wait is bounded and
event-driven (``asyncio.Event`` + timeout); nothing sleeps to "let things settle".

pytest-asyncio is not a project dependency, so each test is a plain function that runs its
async body with ``asyncio.run``. Rooms are uniquely named per test because the server is
shared for the whole session.

Rule for ``livekit.rtc``: a pending ``Room.connect()`` is never cancelled (cancelling it
mid-handshake leaves the FFI side in a bad state); see :func:`connected`.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import queue
import stat
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import jwt
import pytest
from livekit import api, rtc
from livekit.rtc.participant import PublishTrackError

from stream_core.ports import RoomSetup
from stream_engine.livekit_control import LiveKitControl, LiveKitNotFound, mint_token
from stream_devstack.livekit_binary import LiveKitServerNotFound
from stream_devstack.livekit_process import LiveKitServer

#: Per-attempt signalling timeout handed to the SDK (RoomOptions.connect_timeout).
SIGNAL_CONNECT_TIMEOUT_S = 5.0
#: How long a test waits for Room.connect() before failing. A healthy loopback connect
#: takes ~0.1 s.
CONNECT_TIMEOUT_S = 15.0
#: Extra time granted to a connect that overran, so it can settle and be disconnected
#: instead of being cancelled. The SDK retries a failing connect 3 times and each attempt
#: can take >10 s (observed "wait_pc_connection timed out" when ICE cannot complete), so
#: this is generous; it is only ever spent when a test is already failing.
CONNECT_GRACE_S = 45.0
DISCONNECT_TIMEOUT_S = 10.0
EVENT_TIMEOUT_S = 5.0
#: The Python SDK gives up on an unanswered AddTrack after ~10 s; allow margin.
PUBLISH_DENIED_TIMEOUT_S = 20.0
TOKEN_TTL_S = 600


def _room_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _token(
    server: LiveKitServer,
    identity: str,
    room: str,
    *,
    can_publish: bool,
    sources: list[str] | None = None,
) -> str:
    return mint_token(
        server.api_key,
        server.api_secret,
        identity=identity,
        room=room,
        can_publish=can_publish,
        can_publish_sources=sources or [],
        ttl_seconds=TOKEN_TTL_S,
    )


@asynccontextmanager
async def connected(room: rtc.Room, url: str, token: str) -> AsyncIterator[rtc.Room]:
    """Connect ``room`` (register handlers *before* entering) and always disconnect.

    The connect runs as a task that is waited on with a timeout but never cancelled: if it
    overruns we give it a grace period to settle so it can be disconnected cleanly.
    """
    task = asyncio.ensure_future(
        room.connect(url, token, rtc.RoomOptions(connect_timeout=SIGNAL_CONNECT_TIMEOUT_S))
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=CONNECT_TIMEOUT_S)
        if not done:
            raise AssertionError(f"Room.connect did not finish within {CONNECT_TIMEOUT_S}s")
        task.result()  # re-raise ConnectError, if any
        yield room
    finally:
        if not task.done():
            await asyncio.wait({task}, timeout=CONNECT_GRACE_S)
        if task.done() and not task.cancelled() and task.exception() is None:
            await asyncio.wait_for(room.disconnect(), DISCONNECT_TIMEOUT_S)


async def _wait(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), EVENT_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"timed out after {EVENT_TIMEOUT_S}s waiting for {what}") from None


# ---------------------------------------------------------------------- process management


@pytest.mark.livekit
def test_server_starts_and_answers(livekit_server: LiveKitServer) -> None:
    assert livekit_server.running
    assert livekit_server.url == f"ws://127.0.0.1:{livekit_server.http_port}"
    with urllib.request.urlopen(livekit_server.http_url + "/", timeout=5) as resp:
        assert resp.status == 200
        assert resp.read() == b"OK"

    async def body() -> None:
        # An authenticated RoomService round-trip proves the generated keys are accepted.
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control:
            assert await control.list_participants(_room_name("absent")) == []

    asyncio.run(body())


def test_start_reports_early_exit_with_output_tail(tmp_path: Path) -> None:
    fake = tmp_path / "livekit-server"
    fake.write_text("#!/bin/sh\necho 'boom: config rejected' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    server = LiveKitServer(fake)
    started = time.monotonic()
    with pytest.raises(RuntimeError) as excinfo:
        server.start(timeout=10)
    assert time.monotonic() - started < 10
    message = str(excinfo.value)
    assert "exited with code 3" in message
    assert "boom: config rejected" in message
    assert server.api_secret not in message
    assert not server.running


@pytest.mark.livekit
def test_stop_is_bounded_with_connected_participant(livekit_server: LiveKitServer) -> None:
    """livekit-server's first SIGTERM waits for participants to leave *forever*; stop() must
    escalate to the forced shutdown, and the client must notice the server went away: told
    (``disconnected``), or, when the server closed its signal stream asking it to resume
    (seen with v1.13.5), by trying to reconnect (``reconnecting``)."""
    with LiveKitServer(livekit_server.binary) as server:
        config_path = server.config_path
        assert config_path is not None and config_path.exists()

        async def body() -> None:
            room = rtc.Room()
            gone = asyncio.Event()
            room.on("disconnected", lambda reason: gone.set())
            room.on("reconnecting", lambda: gone.set())
            async with connected(
                room, server.url, _token(server, "stopper", _room_name("stop"), can_publish=False)
            ):
                started = time.monotonic()
                await asyncio.to_thread(server.stop)
                assert time.monotonic() - started < 4.0
                assert not server.running
                await _wait(gone, "disconnected or reconnecting after server stop")

        asyncio.run(body())
    assert not config_path.exists()  # temp dir with the secret is removed


@contextmanager
def _webhook_receiver() -> Iterator[tuple[str, queue.Queue[tuple[str, bytes]]]]:
    """A plain HTTP receiver on loopback: its URL, and the (Authorization, body) it got."""
    deliveries: queue.Queue[tuple[str, bytes]] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            deliveries.put((self.headers.get("Authorization", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    receiver_http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver_http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{receiver_http.server_address[1]}/hook", deliveries
    finally:
        receiver_http.shutdown()
        receiver_http.server_close()
        thread.join(timeout=5)


@pytest.mark.livekit
def test_webhook_section_delivers_signed_events(livekit_server: LiveKitServer) -> None:
    """The generated ``webhook`` config is accepted and events are signed with api_key."""
    with _webhook_receiver() as (hook_url, deliveries), \
            LiveKitServer(livekit_server.binary, webhook_urls=hook_url) as server:
        room_name = _room_name("hook")

        async def body() -> None:
            async with LiveKitControl(server.url, server.api_key, server.api_secret) as c:
                await c.create_room(room_name, empty_timeout=30)

        asyncio.run(body())
        auth, payload = deliveries.get(timeout=EVENT_TIMEOUT_S)
        verifier = api.WebhookReceiver(api.TokenVerifier(server.api_key, server.api_secret))
        event = verifier.receive(payload.decode(), auth)
        assert (event.event, event.room.name) == ("room_started", room_name)


@pytest.mark.livekit
def test_webhook_events_filter_what_the_server_sends(livekit_server: LiveKitServer) -> None:
    """With ``webhook_events`` the server sends only those: a room created and deleted
    reaches the receiver as its room_finished alone, never as a room_started first."""
    with _webhook_receiver() as (hook_url, deliveries), \
            LiveKitServer(livekit_server.binary, webhook_urls=hook_url,
                          webhook_events={"room_finished"}) as server:
        room_name = _room_name("filtered")

        async def body() -> None:
            async with LiveKitControl(server.url, server.api_key, server.api_secret) as c:
                await c.create_room(room_name, empty_timeout=30)
                await c.delete_room(room_name)

        asyncio.run(body())
        auth, payload = deliveries.get(timeout=EVENT_TIMEOUT_S)
        verifier = api.WebhookReceiver(api.TokenVerifier(server.api_key, server.api_secret))
        event = verifier.receive(payload.decode(), auth)
        assert (event.event, event.room.name) == ("room_finished", room_name)


def test_missing_binary_is_reported(tmp_path: Path) -> None:
    with pytest.raises(LiveKitServerNotFound, match="not found"):
        LiveKitServer(tmp_path / "does-not-exist").start()


@pytest.mark.livekit
def test_secret_never_appears_in_output_tail(livekit_server: LiveKitServer) -> None:
    assert livekit_server.api_secret not in livekit_server.output_tail(1000)
    assert len(livekit_server.api_secret) >= 32
    config_path = livekit_server.config_path
    assert config_path is not None
    assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600


# ---------------------------------------------------------------------- tokens / control


def test_mint_token_rejects_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown track source"):
        mint_token(
            "key",
            "x" * 32,
            identity="u",
            room="r",
            can_publish=True,
            can_publish_sources=["mic"],
            ttl_seconds=60,
        )


@pytest.mark.livekit
def test_not_found_is_translated(livekit_server: LiveKitServer) -> None:
    async def body() -> None:
        room = _room_name("nf")
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control:
            with pytest.raises(LiveKitNotFound):
                await control.delete_room(room)
            with pytest.raises(LiveKitNotFound):
                await control.set_room_metadata(room, "m")
            with pytest.raises(LiveKitNotFound):
                await control.send_data(room, b"x", topic="t")
            await control.create_room(room, metadata="first", empty_timeout=30)
            with pytest.raises(LiveKitNotFound) as excinfo:
                await control.remove_participant(room, "ghost")
            assert excinfo.value.identity == "ghost"
            with pytest.raises(LiveKitNotFound):
                await control.update_permissions(room, "ghost", can_publish=True, sources=[])
            # CreateRoom on an existing room returns it unchanged (metadata NOT updated).
            again = await control.create_room(room, metadata="second")
            assert again.metadata == "first"
            await control.delete_room(room)

    asyncio.run(body())


# ---------------------------------------------------------------------- real rtc participants


@pytest.mark.livekit
def test_rtc_participant_connects(livekit_server: LiveKitServer) -> None:
    async def body() -> None:
        room_name = _room_name("connect")
        room = rtc.Room()
        async with connected(
            room, livekit_server.url, _token(livekit_server, "alice", room_name, can_publish=False)
        ):
            assert room.isconnected()
            assert room.name == room_name
            assert room.local_participant.identity == "alice"
            async with LiveKitControl(
                livekit_server.url, livekit_server.api_key, livekit_server.api_secret
            ) as control:
                participants = await control.list_participants(room_name)
            assert [p.identity for p in participants] == ["alice"]
            identity, can_publish, sources, tracks, sid = participants[0]
            assert (identity, can_publish, sources, tracks) == ("alice", False, [], [])
            assert sid.startswith("PA_")  # the connection's id, new on every reconnect

    asyncio.run(body())


@pytest.mark.livekit
def test_update_permissions_flips_can_publish(livekit_server: LiveKitServer) -> None:
    async def body() -> None:
        room_name = _room_name("perm")
        room = rtc.Room()
        granted = asyncio.Event()
        revoked = asyncio.Event()

        def on_permissions(participant: rtc.Participant, permission: object) -> None:
            if participant.identity != "bob":
                return
            if participant.permissions.can_publish:
                granted.set()
            elif granted.is_set():
                revoked.set()

        room.on("participant_permissions_changed", on_permissions)
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control, connected(
            room, livekit_server.url, _token(livekit_server, "bob", room_name, can_publish=False)
        ):
            assert not room.local_participant.permissions.can_publish

            await control.update_permissions(
                room_name, "bob", can_publish=True, sources=["microphone"]
            )
            (bob,) = await control.list_participants(room_name)
            assert bob.can_publish is True
            assert bob.can_publish_sources == ["microphone"]
            await _wait(granted, "participant_permissions_changed(can_publish=True)")
            permissions = room.local_participant.permissions
            assert permissions.can_publish
            assert list(permissions.can_publish_sources) == [rtc.TrackSource.SOURCE_MICROPHONE]
            assert permissions.can_subscribe and permissions.can_publish_data

            await control.update_permissions(room_name, "bob", can_publish=False, sources=[])
            (bob,) = await control.list_participants(room_name)
            assert (bob.can_publish, bob.can_publish_sources) == (False, [])
            await _wait(revoked, "participant_permissions_changed(can_publish=False)")
            assert not room.local_participant.permissions.can_publish

    asyncio.run(body())


@pytest.mark.livekit
def test_set_room_metadata_reaches_participant(livekit_server: LiveKitServer) -> None:
    async def body() -> None:
        room_name = _room_name("meta")
        room = rtc.Room()
        changed = asyncio.Event()
        seen: list[tuple[str, str]] = []

        def on_metadata(old: str, new: str) -> None:
            seen.append((old, new))
            changed.set()

        room.on("room_metadata_changed", on_metadata)
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control:
            await control.create_room(room_name, metadata='{"v":1}', empty_timeout=30)
            token = _token(livekit_server, "carol", room_name, can_publish=False)
            async with connected(room, livekit_server.url, token):
                assert room.metadata == '{"v":1}'
                await control.set_room_metadata(room_name, '{"v":2}')
                await _wait(changed, "room_metadata_changed")
                assert seen == [('{"v":1}', '{"v":2}')]
                assert room.metadata == '{"v":2}'

    asyncio.run(body())


@pytest.mark.livekit
def test_a_tokens_setup_creates_its_missing_room_with_the_state(
        livekit_server: LiveKitServer) -> None:
    """What lets a new room's mint answer before the room exists: a join that reaches
    LiveKit first creates the room from the token's ``roomConfig`` (the engine's state as
    metadata, its cap); a later create of the existing room changes nothing."""
    async def body() -> None:
        room_name = _room_name("setup")
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control:
            token = await control.mint_token(
                identity="first", room=room_name, name=None, sources=frozenset(), ttl=60,
                setup=RoomSetup(metadata='{"v":1}', max_participants=2))
            room = rtc.Room()
            async with connected(room, livekit_server.url, token):
                assert room.metadata == '{"v":1}'
                again = await control.create_room(room_name, metadata='{"v":1}',
                                                  max_participants=2)
                assert (again.metadata, again.max_participants) == ('{"v":1}', 2)
            plain = await control.mint_token(identity="x", room=_room_name("plain"), name=None,
                                             sources=frozenset(), ttl=60)
            assert "roomConfig" not in jwt.decode(plain, options={"verify_signature": False})

    asyncio.run(body())


@pytest.mark.livekit
@pytest.mark.slow  # ~10 s: the SDK-side publish timeout is the only failure signal
def test_listener_cannot_publish_audio(livekit_server: LiveKitServer) -> None:
    """A can_publish=False token: the server silently ignores AddTrack, so the SDK's
    publish_track raises PublishTrackError only after its own ~10 s timeout, and the
    server never lists a track for the participant."""

    async def body() -> None:
        room_name = _room_name("listener")
        room = rtc.Room()
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control, connected(
            room, livekit_server.url, _token(livekit_server, "dave", room_name, can_publish=False)
        ):
            source = rtc.AudioSource(48_000, 1)
            track = rtc.LocalAudioTrack.create_audio_track("mic", source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            with pytest.raises(PublishTrackError, match="timed out"):
                await asyncio.wait_for(
                    room.local_participant.publish_track(track, options),
                    PUBLISH_DENIED_TIMEOUT_S,
                )
            (dave,) = await control.list_participants(room_name)
            assert dave.tracks == []
            assert room.local_participant.track_publications == {}

    asyncio.run(body())


@pytest.mark.livekit
def test_send_data_reaches_only_destination_identities(livekit_server: LiveKitServer) -> None:
    async def body() -> None:
        room_name = _room_name("data")
        received: dict[str, list[tuple[bytes, str | None]]] = {"erin": [], "frank": []}
        markers = {"erin": asyncio.Event(), "frank": asyncio.Event()}
        ready = {"erin": asyncio.Event(), "frank": asyncio.Event()}
        erin_room, frank_room = rtc.Room(), rtc.Room()

        def recorder(identity: str) -> Callable[[rtc.DataPacket], None]:
            def on_data(packet: rtc.DataPacket) -> None:
                assert packet.participant is None  # server-originated
                if packet.topic == "ready":
                    ready[identity].set()
                    return
                received[identity].append((packet.data, packet.topic))
                if packet.topic == "marker":
                    markers[identity].set()

            return on_data

        erin_room.on("data_received", recorder("erin"))
        frank_room.on("data_received", recorder("frank"))
        async with LiveKitControl(
            livekit_server.url, livekit_server.api_key, livekit_server.api_secret
        ) as control, connected(
            erin_room,
            livekit_server.url,
            _token(livekit_server, "erin", room_name, can_publish=False),
        ), connected(
            frank_room,
            livekit_server.url,
            _token(livekit_server, "frank", room_name, can_publish=False),
        ):
            # A packet sent the instant a connect returns can be lost: the receiver's data
            # channel may not be open yet. Ping until both have heard one (each wait
            # bounded), so the packets under test go over open channels.
            for _attempt in range(20):
                await control.send_data(room_name, b"ping", topic="ready")
                try:
                    await asyncio.wait_for(
                        asyncio.gather(ready["erin"].wait(), ready["frank"].wait()), 0.5)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("data channels never opened")
            await control.send_data(
                room_name, b"for-frank", topic="private", destination_identities=["frank"]
            )
            # Reliable packets are ordered per receiver: once the broadcast marker arrives,
            # anything sent before it to that receiver has arrived too. No sleeps needed.
            await control.send_data(room_name, b"everyone", topic="marker")
            await _wait(markers["frank"], "frank's marker")
            await _wait(markers["erin"], "erin's marker")
            assert received["frank"] == [(b"for-frank", "private"), (b"everyone", "marker")]
            assert received["erin"] == [(b"everyone", "marker")]

    asyncio.run(body())
