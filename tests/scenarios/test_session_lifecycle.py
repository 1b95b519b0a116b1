"""Session plumbing: context managers, disposal, event streams, data, grant timeouts."""

from __future__ import annotations

import asyncio

import pytest

from stream_core import (
    DataReceived, ParticipantConnected, UTDStreamClient, UTDStreamException, UTDStreamType,
)
from tests.scenarios.helpers import TIMEOUT, sees_participants


def _our_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("utd:")}


async def test_async_with_disposes_everything(make_client):
    client = make_client()
    async with await client.join_audio_room("h", "life", as_host=True, seat_count=2) as host:
        seen: list[bool] = []
        host.connected.listen(seen.append)
        changes = host.seats.changes()
        reader = asyncio.create_task(anext(changes, None))
        await host.take_seat(0)
        assert await asyncio.wait_for(reader, TIMEOUT) is not None
    assert host.connected.value is False and seen[-1] is False
    assert host.seats.listener_count == 0 and host.connected.listener_count == 0
    assert host.events.subscriber_count == 0
    assert _our_tasks() == set()
    await host.dispose()  # twice is fine
    with pytest.raises(UTDStreamException) as disposed:
        await host.take_seat(1)
    assert disposed.value.code == "disposed"


async def test_events_stream_and_targeted_data(make_client):
    host = await make_client().join_audio_room("h", "data", as_host=True, seat_count=2)
    a = await make_client().join_audio_room("a", "data")
    b = await make_client().join_audio_room("b", "data")
    try:
        await sees_participants(host, {"a", "b"})
        got_a: list[DataReceived] = []
        got_b: list[DataReceived] = []
        arrived = asyncio.Event()

        async def collect(session, into):
            async for event in session.events:
                if isinstance(event, DataReceived):
                    into.append(event)
                    arrived.set()

        readers = [asyncio.create_task(collect(a, got_a)), asyncio.create_task(collect(b, got_b))]
        await asyncio.sleep(0)  # let the readers subscribe (a yield, not a timed wait)
        await host.send_data(b"for a only", to=["a"], topic="chat")
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
        assert [(e.data, e.sender, e.topic) for e in got_a] == [(b"for a only", "h", "chat")]
        arrived.clear()
        await host.send_data(b"for all")
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
    finally:
        for s in (host, a, b):
            await s.dispose()
        await asyncio.gather(*readers)  # the streams end when their session is disposed
    assert got_b[0].data == b"for all" and all(e.data != b"for a only" for e in got_b)


async def test_participant_events_carry_the_backend_event(make_client):
    host = await make_client().join_live_stream("h", "ev", as_host=True)
    stream = host.events.__aiter__()
    pending = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    viewer = await make_client().join_live_stream("v", "ev")
    try:
        event = await asyncio.wait_for(pending, TIMEOUT)
        while not isinstance(event, ParticipantConnected):
            event = await asyncio.wait_for(anext(stream), TIMEOUT)
        assert event.identity == "v"
    finally:
        await viewer.dispose()
        await host.dispose()


async def test_a_grant_the_media_server_never_confirms_times_out(engine, sfu, mocker):
    # the outermost seam: the media server silently drops the engine's permission update
    mocker.patch.object(sfu, "update_permissions", lambda *a, **k: None)
    from adapters.fakes.media import FakeMedia
    client = UTDStreamClient(app_id="a", app_key="k", engine=engine,
                             media_factory=lambda: FakeMedia(sfu), grant_timeout=0.2)
    host = await client.join_audio_room("h", "stuck", as_host=True, seat_count=1)
    try:
        with pytest.raises(UTDStreamException) as info:
            await host.take_seat(0)
        assert info.value.status_code == 504 and "microphone" in info.value.message
    finally:
        await host.dispose()


async def test_leave_keeps_the_session_reusable(make_client):
    host = await make_client().join_audio_room("h", "again", as_host=True, seat_count=2)
    alice = await make_client().join_audio_room("alice", "again")
    try:
        await alice.take_seat(1)
        await alice.leave()
        assert alice.connected.value is False
        # leaving the media room frees the seat (the engine hears it from the SFU)
        await host.seats.wait_for(lambda g: g is not None and g.seat_of("alice") is None,
                                  TIMEOUT)
        await alice.rejoin()
        assert alice.connected.value is True
        await alice.rejoin()  # already connected: a no-op
        await sees_participants(host, {"alice"})
        await alice.take_seat(0)
        assert alice.local_participant is not None
        assert alice.local_participant.microphone_enabled
    finally:
        await host.dispose()
        await alice.dispose()


async def test_call_sessions_do_not_rejoin(make_client):
    client = make_client()
    await client.authenticate("zed")
    call = client.call_session(UTDStreamType.AUDIO_CALL)
    with pytest.raises(UTDStreamException) as refused:
        await call.rejoin()
    assert refused.value.status_code == 409
    await call.dispose()
