"""What only the fake promises (beyond the MediaPort contract in ``tests/contracts``).

Server-side behaviours a test world relies on (room limits, webhooks, process death, room
deletion, one-shot tokens) and the delivery model: facts cross threads with
``call_soon_threadsafe`` and every participant sees them in one server order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from adapters.fakes.sfu import FakeMedia, FakeSFU
from tests.contracts.media_contract import LISTENER, PUBLISHER, SPEAKER, Peer, Recorder
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import (
    ConnectionState, ConnectionStateChanged, DataReceived, MediaEvent, ParticipantConnected,
    ParticipantDisconnected, PermissionsChanged, RoomMetadataChanged, TrackSubscribed,
    TrackUnpublished, TrackUnsubscribed,
)
from stream_core.models import UTDPermissions
from stream_core.ports import ConnectOptions, MediaPort, RoomSetup

ROOM = "room-1"
Hook = tuple[str, str, str | None]


class World:
    """One SFU, its webhook log, and the peers a test joined (disconnected at teardown)."""

    def __init__(self) -> None:
        self.sfu = FakeSFU()
        self.hooks: list[Hook] = []
        self.sfu.add_webhook(lambda hook: self.hooks.append(tuple(hook)[:3]))
        self.peers: list[Peer] = []

    async def join(self, identity: str, permissions: UTDPermissions = LISTENER, *,
                   room: str = ROOM, auto_subscribe: bool = True) -> Peer:
        media = FakeMedia(self.sfu)
        peer = Peer(identity, media, Recorder(media))
        self.peers.append(peer)
        token = self.sfu.issue_token(room=room, identity=identity, permissions=permissions)
        await media.connect(self.sfu.url, token, ConnectOptions(auto_subscribe=auto_subscribe))
        return peer


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = World()
    yield world
    for peer in world.peers:
        await peer.media.disconnect()


def test_fake_media_is_a_media_port() -> None:
    assert isinstance(FakeMedia(FakeSFU()), MediaPort)


async def test_tokens_are_one_shot_and_bound_to_the_url(world: World) -> None:
    token = world.sfu.issue_token(room=ROOM, identity="alice", permissions=LISTENER)
    media = FakeMedia(world.sfu)
    with pytest.raises(UTDStreamException) as wrong_url:
        await media.connect("fake://elsewhere", token, ConnectOptions())
    assert wrong_url.value.code == ErrorCode.UNAVAILABLE
    await media.connect(world.sfu.url, token, ConnectOptions())
    await media.disconnect()
    for bad in (token, "forged"):
        with pytest.raises(UTDStreamException) as refused:
            await FakeMedia(world.sfu).connect(world.sfu.url, bad, ConnectOptions())
        assert (refused.value.status_code, refused.value.code) == (401, "unauthenticated")


async def test_connect_twice_is_illegal(world: World) -> None:
    alice = await world.join("alice")
    token = world.sfu.issue_token(room=ROOM, identity="alice", permissions=LISTENER)
    with pytest.raises(UTDStreamException) as refused:
        await alice.media.connect(world.sfu.url, token, ConnectOptions())
    assert refused.value.status_code == 409


async def test_full_room_refuses_and_keeps_the_token(world: World) -> None:
    world.sfu.create_room(ROOM, max_participants=1)
    await world.join("alice")
    token = world.sfu.issue_token(room=ROOM, identity="bob", permissions=LISTENER)
    bob = FakeMedia(world.sfu)
    bob_events = Recorder(bob)

    with pytest.raises(UTDStreamException) as refused:
        await bob.connect(world.sfu.url, token, ConnectOptions())
    assert (refused.value.status_code, refused.value.code) == (403, "room_full")
    assert bob.connection_state is ConnectionState.DISCONNECTED
    assert [e.state for e in bob_events.of(ConnectionStateChanged)] == [
        ConnectionState.CONNECTING, ConnectionState.DISCONNECTED]
    rejoin = await world.join("alice")  # a replacement does not count against the limit
    assert world.sfu.participants(ROOM) == ["alice"]
    await rejoin.media.disconnect()
    await bob.connect(world.sfu.url, token, ConnectOptions())  # the token was not used up
    await bob.disconnect()


async def test_create_room_is_idempotent_and_keeps_metadata(world: World) -> None:
    world.sfu.create_room(ROOM, metadata="first")
    world.sfu.create_room(ROOM, metadata="second")
    alice = await world.join("alice")
    assert alice.media.room_metadata == "first"


async def test_a_tokens_setup_creates_its_missing_room_as_livekit_does(world: World) -> None:
    token = world.sfu.issue_token(room=ROOM, identity="alice", permissions=LISTENER,
                                  setup=RoomSetup(metadata="state v1", max_participants=1))
    alice = FakeMedia(world.sfu)
    await alice.connect(world.sfu.url, token, ConnectOptions())
    assert alice.room_metadata == "state v1"
    world.sfu.create_room(ROOM, metadata="ignored")  # the room exists: left as it is
    late = world.sfu.issue_token(room=ROOM, identity="bob", permissions=LISTENER)
    with pytest.raises(UTDStreamException) as full:
        await FakeMedia(world.sfu).connect(world.sfu.url, late, ConnectOptions())
    assert full.value.code == "room_full"
    await alice.disconnect()


async def test_webhooks_report_joins_leaves_and_the_end(world: World) -> None:
    alice = await world.join("alice")
    bob = await world.join("bob")
    await alice.media.disconnect()
    await bob.media.disconnect()
    assert world.hooks == [
        ("participant_joined", ROOM, "alice"), ("participant_joined", ROOM, "bob"),
        ("participant_left", ROOM, "alice"), ("participant_left", ROOM, "bob"),
        ("room_finished", ROOM, None),
    ]
    assert world.sfu.participants(ROOM) == []


async def test_drop_looks_like_a_dead_process(world: World) -> None:
    alice = await world.join("alice", SPEAKER)
    bob = await world.join("bob")
    await alice.media.set_microphone(True)
    world.hooks.clear()

    world.sfu.drop(ROOM, "alice")
    assert world.hooks == [("participant_left", ROOM, "alice")]
    lost, view = await alice.events.wait_for(ConnectionStateChanged,
                                             state=ConnectionState.DISCONNECTED)
    assert lost.reason == "connection_lost"
    assert [e.state for e in alice.events.of(ConnectionStateChanged)][-2:] == [
        ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED]
    assert view.remote == () and not alice.media.microphone_enabled
    await bob.events.wait_for(ParticipantDisconnected, identity="alice")

    world.sfu.drop(ROOM, "bob")
    assert world.hooks[-2:] == [("participant_left", ROOM, "bob"), ("room_finished", ROOM, None)]


async def test_close_room_disconnects_everyone(world: World) -> None:
    peers = [await world.join("alice"), await world.join("bob")]
    world.hooks.clear()

    world.sfu.close_room(ROOM)
    for peer in peers:
        closed, _ = await peer.events.wait_for(ConnectionStateChanged,
                                               state=ConnectionState.DISCONNECTED)
        assert closed.reason == "room_deleted"
        assert peer.events.of(ParticipantDisconnected) == []  # no per-peer noise
    assert world.hooks == [("participant_left", ROOM, "alice"),
                           ("participant_left", ROOM, "bob"), ("room_finished", ROOM, None)]
    assert world.sfu.participants(ROOM) == [] and world.sfu.list_participants(ROOM) == []
    with pytest.raises(UTDStreamException) as missing:
        world.sfu.close_room(ROOM)
    assert missing.value.code == ErrorCode.NOT_FOUND


async def test_unknown_targets_are_not_found(world: World) -> None:
    await world.join("alice")
    calls: list[Callable[[], object]] = [lambda: world.sfu.update_permissions(ROOM, "ghost", SPEAKER),
             lambda: world.sfu.remove_participant(ROOM, "ghost"),
             lambda: world.sfu.set_room_metadata("no-room", "x"),
             lambda: world.sfu.published(ROOM, "ghost")]
    for call in calls:
        with pytest.raises(UTDStreamException) as missing:
            call()
        assert missing.value.status_code == 404


async def test_a_failing_listener_does_not_silence_the_others(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    alice = await world.join("alice")

    def explode(event: MediaEvent) -> None:
        raise RuntimeError("listener bug")

    alice.media.add_listener(explode)
    after = Recorder(alice.media)
    with caplog.at_level(logging.ERROR):
        world.sfu.set_room_metadata(ROOM, "still delivered")
        await after.wait_for(RoomMetadataChanged, metadata="still delivered")
    assert any("listener bug" in (r.exc_text or "") for r in caplog.records)


async def test_unsubscribed_listener_hears_nothing_more(world: World) -> None:
    alice = await world.join("alice")
    heard: list[MediaEvent] = []
    stop = alice.media.add_listener(heard.append)
    stop()
    stop()  # idempotent
    world.sfu.set_room_metadata(ROOM, "m")
    await alice.events.wait_for(RoomMetadataChanged)
    assert heard == []


async def test_control_from_threads_is_delivered_on_the_loop_in_one_order(
        world: World) -> None:
    alice = await world.join("alice")
    bob = await world.join("bob")
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    alice.media.add_listener(lambda event: threads.add(threading.get_ident()))

    await asyncio.gather(*(asyncio.to_thread(world.sfu.set_room_metadata, ROOM, str(i))
                           for i in range(40)))
    await asyncio.to_thread(world.sfu.set_room_metadata, ROOM, "done")
    for peer in (alice, bob):
        await peer.events.wait_for(RoomMetadataChanged, metadata="done")
    orders = [[e.metadata for e in p.events.of(RoomMetadataChanged)] for p in (alice, bob)]
    assert orders[0] == orders[1] and sorted(orders[0][:-1], key=int) == [str(i) for i in range(40)]
    assert threads == {loop_thread}


async def test_existing_tracks_are_visible_and_subscribed_at_connect(world: World) -> None:
    alice = await world.join("alice", PUBLISHER)
    await alice.media.set_microphone(True)
    await alice.media.set_camera(True)
    bob = await world.join("bob")
    carol = await world.join("carol", auto_subscribe=False)

    (seen_by_bob,) = bob.media.remote_participants
    assert {t.source for t in seen_by_bob.tracks} == {"microphone", "camera"}
    assert {(t.kind, t.subscribed) for t in seen_by_bob.tracks} == {("audio", True),
                                                                      ("video", True)}
    assert all(not t.subscribed for t in carol.media.remote_participants[0].tracks)
    assert world.sfu.published(ROOM, "alice") == {"microphone", "camera"}


async def test_leaving_takes_tracks_down_before_the_leave(world: World) -> None:
    alice = await world.join("alice", SPEAKER)
    bob = await world.join("bob")
    carol = await world.join("carol", auto_subscribe=False)
    await alice.media.set_microphone(True)
    await alice.media.set_microphone(True)  # idempotent: still one track
    await bob.events.wait_for(TrackSubscribed, identity="alice")
    since_bob, since_carol = bob.events.mark(), carol.events.mark()

    await alice.media.disconnect()
    await bob.events.wait_for(ParticipantDisconnected, since=since_bob)
    await carol.events.wait_for(ParticipantDisconnected, since=since_carol)
    assert [type(e) for e, _ in bob.events.seen[since_bob:]] == [
        TrackUnsubscribed, TrackUnpublished, ParticipantDisconnected]
    assert [type(e) for e, _ in carol.events.seen[since_carol:]] == [
        TrackUnpublished, ParticipantDisconnected]


async def test_unpublish_is_idempotent_and_reaches_others(world: World) -> None:
    alice = await world.join("alice", SPEAKER)
    bob = await world.join("bob")
    await alice.media.set_microphone(False)  # nothing published yet: a no-op
    await alice.media.set_microphone(True)
    await alice.media.set_microphone(False)
    await alice.media.set_microphone(False)
    _, view = await bob.events.wait_for(TrackUnpublished, identity="alice")
    assert not alice.media.microphone_enabled and view.remote[0].tracks == ()
    assert world.sfu.published(ROOM, "alice") == set()


async def test_a_stale_revoke_never_removes_a_newer_track(world: World) -> None:
    alice = await world.join("alice", SPEAKER)
    await alice.media.set_microphone(True)

    # Both facts are queued on the loop; the re-publish below runs before either is applied.
    world.sfu.update_permissions(ROOM, "alice", LISTENER)
    world.sfu.update_permissions(ROOM, "alice", SPEAKER)
    await alice.media.set_microphone(True)
    await alice.events.wait_for(PermissionsChanged, permissions=SPEAKER)  # the later fact
    assert len(alice.events.of(PermissionsChanged)) == 2
    assert alice.media.microphone_enabled
    assert world.sfu.published(ROOM, "alice") == {"microphone"}


async def test_revoking_subscribe_unsubscribes_the_target(world: World) -> None:
    alice = await world.join("alice", SPEAKER)
    bob = await world.join("bob")
    await alice.media.set_microphone(True)
    await bob.events.wait_for(TrackSubscribed, identity="alice")

    world.sfu.update_permissions(ROOM, "bob", UTDPermissions(can_subscribe=False))
    _, view = await bob.events.wait_for(TrackUnsubscribed, identity="alice")
    assert view.participant("alice") is not None
    assert [t.subscribed for t in view.remote[0].tracks] == [False]


async def test_remote_can_publish_follows_the_grant(world: World) -> None:
    await world.join("alice")
    bob = await world.join("bob")
    since = bob.events.mark()
    world.sfu.update_permissions(ROOM, "alice", SPEAKER)
    world.sfu.set_room_metadata(ROOM, "after")  # an ordered barrier: the update came first
    await bob.events.wait_for(RoomMetadataChanged, since=since)
    assert bob.media.remote_participants[0].can_publish
    assert world.sfu.list_participants(ROOM)[0].can_publish


async def test_server_data_has_no_sender_and_respects_to(world: World) -> None:
    alice = await world.join("alice")
    bob = await world.join("bob")
    world.sfu.send_data(ROOM, b"only bob", topic="sys", to=["bob"])
    world.sfu.send_data(ROOM, b"all")
    got, _ = await bob.events.wait_for(DataReceived, data=b"only bob")
    assert (got.sender, got.topic) == (None, "sys")
    await alice.events.wait_for(DataReceived, data=b"all")
    assert alice.events.of(DataReceived, data=b"only bob") == []


async def test_data_needs_the_data_grant(world: World) -> None:
    mute = await world.join("mute", UTDPermissions(can_publish_data=False))
    with pytest.raises(UTDStreamException) as refused:
        await mute.media.send_data(b"x")
    assert (refused.value.status_code, refused.value.code) == (403, ErrorCode.PUBLISH_DENIED)
    with pytest.raises(UTDStreamException) as never:
        await FakeMedia(world.sfu).set_camera(True)
    assert never.value.code == "not_connected"


async def test_duplicate_identity_is_a_leave_then_a_join(world: World) -> None:
    await world.join("alice")
    bob = await world.join("bob")
    since = bob.events.mark()
    world.hooks.clear()
    await world.join("alice")
    await bob.events.wait_for(ParticipantConnected, identity="alice", since=since)
    assert [type(e) for e, _ in bob.events.seen[since:]] == [
        ParticipantDisconnected, ParticipantConnected]
    assert world.hooks == [("participant_left", ROOM, "alice"),
                           ("participant_joined", ROOM, "alice")]


async def test_repr_shows_state(world: World) -> None:
    alice = await world.join("alice", SPEAKER)
    await alice.media.set_microphone(True)
    assert "CONNECTED" in repr(alice.media) and "microphone" in repr(alice.media)
    assert "'room-1': ['alice']" in repr(world.sfu)
