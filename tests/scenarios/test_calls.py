"""1:1 call scenarios on the fakes: ring, accept, publish, end; reject, busy, missed."""

from __future__ import annotations

import pytest

from stream_core import UTDCallStatus, UTDStreamException, UTDStreamType
from tests.scenarios.helpers import TIMEOUT, sees_track


async def _pair(make_client):
    alice, bob = make_client(), make_client()
    await alice.authenticate("alice")
    await bob.authenticate("bob")
    return alice, bob


async def test_video_call_start_ring_accept_end(make_client):
    alice, bob = await _pair(make_client)
    caller = alice.call_session(UTDStreamType.VIDEO_CALL)
    callee = bob.call_session(UTDStreamType.VIDEO_CALL)
    try:
        call = await caller.start("bob", metadata={"topic": "hello"})
        assert caller.status.value is UTDCallStatus.INITIATING
        incoming = await bob.next_incoming_call(timeout=TIMEOUT)
        assert incoming is not None and incoming.call_id == call.call_id
        assert incoming.metadata == {"topic": "hello"}

        await callee.ringing(call.call_id)
        await caller.status.wait_for(lambda s: s is UTDCallStatus.RINGING, TIMEOUT)
        await callee.accept(call.call_id)
        await caller.status.wait_for(lambda s: s is UTDCallStatus.ACTIVE, TIMEOUT)
        for me, other in ((caller, "bob"), (callee, "alice")):  # both publish both
            await sees_track(me, other, "microphone")
            await sees_track(me, other, "camera")

        await callee.end()
        assert callee.status.value is UTDCallStatus.ENDED
        await caller.status.wait_for(lambda s: s is UTDCallStatus.ENDED, TIMEOUT)
        await caller.connected.wait_for(lambda c: not c, TIMEOUT)
        await caller.end()  # duplicate end: a no-op
        await callee.end()
        assert caller.status.value is UTDCallStatus.ENDED
    finally:
        await caller.dispose()
        await callee.dispose()


async def test_audio_call_caller_ends(make_client):
    alice, bob = await _pair(make_client)
    caller = alice.call_session(UTDStreamType.AUDIO_CALL)
    callee = bob.call_session(UTDStreamType.AUDIO_CALL)
    try:
        call = await caller.start("bob")
        await callee.accept(call.call_id)
        await sees_track(callee, "alice", "microphone")
        assert not any(p.has_track("camera") for p in callee.remote_participants.value)
        await caller.end()
        await callee.status.wait_for(lambda s: s is UTDCallStatus.ENDED, TIMEOUT)
        assert callee.call.value is not None and callee.call.value.ended_by == "alice"
    finally:
        await caller.dispose()
        await callee.dispose()


async def _hang_up(callee, call_id):
    """The callee's phone rings and it hangs up: the call table makes that a reject."""
    await callee.ringing(call_id)
    await callee.end()


@pytest.mark.parametrize("answer,status", [
    (lambda callee, call_id: callee.reject(call_id), UTDCallStatus.REJECTED),
    (lambda callee, call_id: callee.busy(call_id), UTDCallStatus.BUSY),
    (_hang_up, UTDCallStatus.REJECTED),
], ids=["reject", "busy", "end"])
async def test_callee_rejects_or_is_busy(make_client, answer, status):
    alice, bob = await _pair(make_client)
    caller = alice.call_session(UTDStreamType.AUDIO_CALL)
    callee = bob.call_session(UTDStreamType.AUDIO_CALL)
    try:
        call = await caller.start("bob")
        await answer(callee, call.call_id)
        assert callee.status.value is status
        await caller.status.wait_for(lambda s: s is status, TIMEOUT)
        assert caller.call.value is not None and caller.call.value.ended_by is None
        await caller.connected.wait_for(lambda c: not c, TIMEOUT)
        with pytest.raises(UTDStreamException) as late:
            await callee.accept(call.call_id)
        assert late.value.status_code == 409
    finally:
        await caller.dispose()
        await callee.dispose()


async def test_missed_after_ring_timeout(make_client, engine, clock):
    alice, bob = await _pair(make_client)
    caller = alice.call_session(UTDStreamType.AUDIO_CALL)
    try:
        call = await caller.start("bob")
        clock.advance(29.9)
        assert engine.tick() == []
        clock.advance(0.2)
        assert [c.call_id for c in engine.tick()] == [call.call_id]
        await caller.status.wait_for(lambda s: s is UTDCallStatus.MISSED, TIMEOUT)
        await caller.connected.wait_for(lambda c: not c, TIMEOUT)
        assert await bob.incoming_calls() == []
    finally:
        await caller.dispose()


async def test_third_participant_is_refused(make_client):
    alice, bob = await _pair(make_client)
    carol = make_client()
    await carol.authenticate("carol")
    caller = alice.call_session(UTDStreamType.AUDIO_CALL)
    intruder = carol.call_session(UTDStreamType.AUDIO_CALL)
    try:
        call = await caller.start("bob")
        with pytest.raises(UTDStreamException) as refused:
            await intruder.accept(call.call_id)
        assert refused.value.status_code == 403
        with pytest.raises(UTDStreamException) as unknown:
            await intruder.accept("no-such-call")
        assert unknown.value.status_code == 404
        with pytest.raises(UTDStreamException) as self_call:
            await carol.call_session(UTDStreamType.AUDIO_CALL).start("carol")
        assert self_call.value.status_code == 422
    finally:
        await caller.dispose()
        await intruder.dispose()


async def test_calls_need_authentication(make_client):
    client = make_client()
    with pytest.raises(UTDStreamException) as exc:
        client.call_session(UTDStreamType.AUDIO_CALL)
    assert exc.value.status_code == 401
    await client.authenticate("zed")
    with pytest.raises(UTDStreamException) as wrong_type:
        client.call_session(UTDStreamType.LIVE_STREAM)
    assert wrong_type.value.status_code == 422


async def test_a_call_whose_room_is_deleted_ends_without_a_final_push(make_client, engine,
                                                                      mocker):
    """The engine ends a call by deleting its room, and LiveKit may drop the last state push
    with the room: the session that did not hang up asks the engine when its room closes."""
    alice, bob = await _pair(make_client)
    caller = alice.call_session(UTDStreamType.AUDIO_CALL)
    callee = bob.call_session(UTDStreamType.AUDIO_CALL)
    try:
        call = await caller.start("bob")
        await callee.accept(call.call_id)
        await callee.status.wait_for(lambda s: s is UTDCallStatus.ACTIVE, TIMEOUT)

        async def lost(room: str, state: str) -> None:
            return None  # the push goes nowhere, as when LiveKit deletes the room first

        mocker.patch.object(engine.control, "push_state", lost)  # the engine's outermost seam
        await caller.end()
        await callee.status.wait_for(lambda s: s is UTDCallStatus.ENDED, TIMEOUT)
    finally:
        await caller.dispose()
        await callee.dispose()
