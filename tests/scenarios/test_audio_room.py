"""Audio room scenarios on the fakes: seats grant speech, everyone's grid follows."""

from __future__ import annotations

import pytest

from stream_core import UTDSeatMode, UTDStreamException
from tests.scenarios.helpers import TIMEOUT, sees_participants, sees_track


async def test_free_mode_take_and_leave_a_seat(make_client):
    host = await make_client().join_audio_room("host", "lobby", as_host=True, seat_count=8)
    alice = await make_client().join_audio_room("alice", "lobby")
    bob = await make_client().join_audio_room("bob", "lobby")
    try:
        assert host.seats.value is not None and host.seats.value.seat_count == 8
        await sees_participants(host, {"alice", "bob"})
        await sees_participants(bob, {"host", "alice"})

        await alice.take_seat(0)
        assert alice.my_seat.value == 0
        assert alice.can_publish.value is True
        assert alice.local_participant is not None
        assert alice.local_participant.microphone_enabled
        for session in (host, bob):  # every grid follows the engine's push
            await session.seats.wait_for(lambda g: g is not None and g.seats[0].occupant == "alice",
                                         TIMEOUT)
        await sees_track(bob, "alice", "microphone")

        with pytest.raises(UTDStreamException) as taken:
            await bob.take_seat(0)
        assert taken.value.status_code == 409 and taken.value.code == "seat_taken"
        with pytest.raises(UTDStreamException) as refused:
            await bob.set_microphone(True)  # a listener's publish is refused by the SFU
        assert refused.value.status_code == 403

        await alice.leave_seat()
        assert alice.my_seat.value is None
        assert not alice.local_participant.microphone_enabled
        await sees_track(bob, "alice", "microphone", present=False)
        await bob.seats.wait_for(lambda g: g is not None and g.seats[0].occupant is None, TIMEOUT)
    finally:
        for s in (host, alice, bob):
            await s.dispose()


async def test_one_seat_per_participant_and_move(make_client):
    host = await make_client().join_audio_room("host", "r1", as_host=True, seat_count=4)
    alice = await make_client().join_audio_room("alice", "r1")
    try:
        await alice.take_seat(1)
        with pytest.raises(UTDStreamException) as twice:
            await alice.take_seat(2)
        assert twice.value.status_code == 409
        await alice.move_seat(3)
        assert alice.my_seat.value == 3
        assert alice.local_participant is not None and alice.local_participant.microphone_enabled
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("alice") == 3, TIMEOUT)
    finally:
        await host.dispose()
        await alice.dispose()


async def test_request_mode_request_and_approve(make_client):
    host = await make_client().join_audio_room("host", "club", as_host=True, seat_count=8,
                                               seat_mode="request")
    bob = await make_client().join_audio_room("bob", "club")
    try:
        with pytest.raises(UTDStreamException) as no_free_take:
            await bob.take_seat(2)
        assert no_free_take.value.status_code == 409
        request = await bob.request_to_speak()
        await host.seats.wait_for(
            lambda g: g is not None and [r.identity for r in g.requests] == ["bob"], TIMEOUT)
        await host.approve_speaker(request.request_id)
        # bob learns of the approval through the push and turns his microphone on by himself
        await bob.my_seat.wait_for(lambda s: s is not None, TIMEOUT)
        await sees_track(host, "bob", "microphone")
        assert host.seats.value is not None and host.seats.value.requests == ()
    finally:
        await host.dispose()
        await bob.dispose()


async def test_host_invites_to_a_seat(make_client):
    host = await make_client().join_audio_room("host", "talk", as_host=True, seat_count=6,
                                               seat_mode=UTDSeatMode.REQUEST)
    carol = await make_client().join_audio_room("carol", "talk")
    try:
        await host.invite_to_speak("carol", seat_index=5)
        await carol.seats.wait_for(lambda g: g is not None and g.invites == {"carol": 5}, TIMEOUT)
        await carol.take_seat()  # no index: the seat she was invited to
        assert carol.my_seat.value == 5
        await sees_track(host, "carol", "microphone")
    finally:
        await host.dispose()
        await carol.dispose()


async def test_host_moderation_kick_lock_mute(make_client):
    host = await make_client().join_audio_room("host", "mod", as_host=True, seat_count=4)
    dave = await make_client().join_audio_room("dave", "mod")
    try:
        await dave.take_seat(0)
        with pytest.raises(UTDStreamException) as not_host:
            await dave.lock_seat(1)
        assert not_host.value.status_code == 403

        await host.mute_seat(0)
        await sees_track(host, "dave", "microphone", present=False)  # revoke unpublishes
        await host.mute_seat(0, muted=False)
        await sees_track(host, "dave", "microphone")  # the grant returns; dave follows it

        await host.lock_seat(0)  # locking an occupied seat sends its speaker back
        await dave.my_seat.wait_for(lambda s: s is None, TIMEOUT)
        await sees_track(host, "dave", "microphone", present=False)
        with pytest.raises(UTDStreamException):
            await dave.take_seat(0)

        await dave.take_seat(1)
        await host.kick_from_seat("dave")
        await dave.my_seat.wait_for(lambda s: s is None, TIMEOUT)
    finally:
        await host.dispose()
        await dave.dispose()


async def test_ban_removes_and_refuses_rejoin(make_client, sfu):
    host = await make_client().join_audio_room("host", "b", as_host=True, seat_count=2)
    eve = await make_client().join_audio_room("eve", "b")
    try:
        await eve.take_seat(0)
        await host.ban("eve")
        await eve.connected.wait_for(lambda c: c is False, TIMEOUT)
        assert eve.room.disconnect_reason == "removed"
        assert host.seats.value is not None and host.seats.value.seat_of("eve") is None
        with pytest.raises(UTDStreamException) as banned:
            await make_client().join_audio_room("eve", "b")
        assert banned.value.is_banned
    finally:
        await host.dispose()
        await eve.dispose()


async def test_dropped_speaker_loses_seat_through_webhook(make_client, sfu, engine):
    host = await make_client().join_audio_room("host", "drop", as_host=True, seat_count=2)
    fred = await make_client().join_audio_room("fred", "drop")
    try:
        await fred.take_seat(1)
        sfu.drop(engine.media_room("drop"), "fred")
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("fred") is None, TIMEOUT)
    finally:
        await host.dispose()
        await fred.dispose()


async def test_bad_input_changes_nothing(make_client):
    host = await make_client().join_audio_room("host", "bad", as_host=True, seat_count=3)
    try:
        before = host.seats.value
        for index in (3, -1, 99):
            with pytest.raises(UTDStreamException) as exc:
                await host.take_seat(index)
            assert exc.value.status_code == 422 and "seat_index" in exc.value.message
        for count in (0, -2, 65):
            with pytest.raises(UTDStreamException) as exc:
                await host.setup_seats(seat_count=count)
            assert exc.value.status_code == 422
        with pytest.raises(UTDStreamException) as mode:
            await host.setup_seats(seat_mode="chaos")
        assert mode.value.status_code == 422
        assert await host.get_seats() == before
        with pytest.raises(UTDStreamException) as empty:
            await make_client().join_audio_room("", "bad")
        assert empty.value.status_code == 422
        with pytest.raises(UTDStreamException) as seeding:
            await make_client().join_audio_room("x", "bad", seat_count=4)
        assert seeding.value.status_code == 403
    finally:
        await host.dispose()
