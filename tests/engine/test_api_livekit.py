"""The engine against a real livekit-server: grants, permission flips, webhooks, call timers.

What the server does is read back from the server (``ListParticipants``) and from what a
real ``livekit.rtc`` participant receives (``participant_permissions_changed``,
``room_metadata_changed``, ``disconnected``). HTTP calls run in a worker thread so the
event loop keeps delivering LiveKit events; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import requests
from livekit import api as lk_api
from livekit import rtc

from stream_core.names import livekit_call_name, livekit_room_name
from stream_devstack.stack import LocalStack
from tests.engine.stack_fixtures import (
    API, EVENT_TIMEOUT, QUICK_RING_TIMEOUT, WEBHOOK_TIMEOUT, EventLog, Member, StackApi,
    connected, livekit_control, store_of, unique, wait_until,
)

pytestmark = [pytest.mark.engine, pytest.mark.livekit]

TOKEN_TTL = 600  # the engine's default LiveKit token TTL: minutes (LiveKit refreshes it)


def lk_room(stack: LocalStack, room: str) -> str:
    """The engine's LiveKit name for an app's room."""
    return livekit_room_name(stack.apps[0].app_id, room)


def grants(stack: LocalStack, token: str) -> dict[str, Any]:
    """Decode (and verify) a LiveKit token with the stack's LiveKit API secret."""
    claims: dict[str, Any] = jwt.decode(token, stack.livekit.api_secret, algorithms=["HS256"])
    return claims


def publish_rights(claims: dict[str, Any]) -> tuple[bool, set[str]]:
    video = claims["video"]
    return bool(video.get("canPublish")), set(video.get("canPublishSources", []))


def state_of(metadata: str) -> dict[str, Any]:
    """A room's metadata as the engine pushes it (``RoomStateSchema``)."""
    doc: dict[str, Any] = json.loads(metadata) if metadata else {}
    return doc


def occupants(metadata: str) -> dict[int, str | None]:
    doc = state_of(metadata)
    if doc.get("kind") != "seats":
        return {}
    return {s["index"]: s["occupant"] for s in doc["seats"]["seats"]}


async def http(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def participant(stack: LocalStack, room: str, identity: str) -> Any:
    async with livekit_control(stack) as control:
        found = [p for p in await control.list_participants(lk_room(stack, room))
                 if p.identity == identity]
    assert found, f"{identity} is not in LiveKit room {room}"
    return found[0]


async def until(probe: Callable[[], Awaitable[Any]], what: str,
                timeout: float = EVENT_TIMEOUT) -> Any:
    """Poll server state that has no event of its own until ``probe`` answers truthy."""
    deadline = time.monotonic() + timeout
    while not (found := await probe()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)  # bounded poll with a deadline, not synchronization
    return found


async def _negate(probe: Callable[[], Awaitable[Any]]) -> bool:
    return not await probe()


def permission_is(identity: str, can_publish: bool) -> Callable[..., bool]:
    def match(p: rtc.Participant, *_: Any) -> bool:
        return p.identity == identity and p.permissions.can_publish is can_publish
    return match


# ----------------------------------------------------------------------------- grants


def _check_token(stack: LocalStack, member_token: str, identity: str, room: str, *,
                 publish: bool, sources: set[str]) -> None:
    claims = grants(stack, member_token)
    assert claims["sub"] == identity
    assert claims["iss"] == stack.livekit.api_key
    assert claims["video"]["roomJoin"] is True
    assert claims["video"]["room"] == room
    assert claims["video"]["canSubscribe"] is True
    assert publish_rights(claims) == (publish, sources)
    assert abs(claims["exp"] - claims["nbf"] - TOKEN_TTL) <= 5
    assert claims["exp"] > time.time()


def test_audio_room_tokens_grant_at_most_the_microphone(api: StackApi,
                                                        stack: LocalStack) -> None:
    room, host = api.audio_room(seats=3)
    _check_token(stack, host.token, host.identity, lk_room(stack, room), publish=False,
                 sources=set())  # the host is not seated yet
    listener = api.join(unique("listener"), room, "audio_room")
    _check_token(stack, listener.token, listener.identity, lk_room(stack, room),
                 publish=False, sources=set())
    api.act(listener, "seats/take", {"seat_index": 1})
    api.act(host, "seats/take", {"seat_index": 0})
    for member in (listener, host):  # a re-mint (reconnect) of a seated speaker
        again = api.join(member.identity, room, "audio_room",
                         role="host" if member is host else "audience")
        _check_token(stack, again.token, member.identity, lk_room(stack, room), publish=True,
                     sources={"microphone"})


def test_live_stream_tokens(api: StackApi, stack: LocalStack) -> None:
    room, host = api.live_stream()
    name = lk_room(stack, room)
    _check_token(stack, host.token, host.identity, name, publish=True,
                 sources={"camera", "microphone"})
    viewer = api.join(unique("viewer"), room, "live_stream")
    _check_token(stack, viewer.token, viewer.identity, name, publish=False, sources=set())
    api.act(host, "stage/invite", {"identity": viewer.identity})
    guest = api.join(viewer.identity, room, "live_stream")
    _check_token(stack, guest.token, viewer.identity, name, publish=True,
                 sources={"camera", "microphone"})


@pytest.mark.parametrize("call_type, sources", [("audio_call", {"microphone"}),
                                                ("video_call", {"camera", "microphone"})])
def test_call_party_tokens(api: StackApi, stack: LocalStack, call_type: str,
                           sources: set[str]) -> None:
    caller, callee = unique("caller"), unique("callee")
    caller_bearer, callee_bearer = api.bearer(caller), api.bearer(callee)
    call = api.create_call(caller_bearer, callee, call_type)
    name = livekit_call_name(stack.apps[0].app_id, call["call_id"])
    _check_token(stack, call["token"], caller, name, publish=True, sources=sources)
    accepted = api.call_action(callee_bearer, call["call_id"], "accept")
    assert accepted.status_code == 200, accepted.text
    _check_token(stack, accepted.json()["token"], callee, name, publish=True, sources=sources)
    # a plain read never carries a token
    assert api.get_call(caller_bearer, call["call_id"]).get("token") is None


def test_bearer_and_livekit_token_are_different_credentials(api: StackApi,
                                                            stack: LocalStack) -> None:
    room, host = api.live_stream()
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(host.bearer, stack.livekit.api_secret, algorithms=["HS256"],
                   options={"verify_aud": False})
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(host.token, stack.signing_secret, algorithms=["HS256"])
    # and a LiveKit token is no bearer
    answer = api.get(api.room(room, "stage"), bearer=host.token)
    assert answer.status_code == 401


# ----------------------------------------------------------------------------- permission flips


async def test_seat_take_and_leave_flip_can_publish_on_the_server(
        api: StackApi, stack: LocalStack) -> None:
    room, host = await http(api.audio_room, seats=4)
    listener: Member = await http(api.join, unique("listener"), room, "audio_room")
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "participant_permissions_changed", "room_metadata_changed")
    async with connected(stack.livekit.url, listener.token, rtc_room):
        assert not rtc_room.local_participant.permissions.can_publish
        assert (await participant(stack, room, listener.identity)).can_publish is False

        grid = await http(api.act, listener, "seats/take", {"seat_index": 2})
        assert grid["seats"][2]["occupant"] == listener.identity
        seated = await participant(stack, room, listener.identity)
        assert (seated.can_publish, seated.can_publish_sources) == (True, ["microphone"])
        await events.wait_for("participant_permissions_changed",
                              permission_is(listener.identity, True), "the grant")
        assert list(rtc_room.local_participant.permissions.can_publish_sources) == [
            rtc.TrackSource.SOURCE_MICROPHONE]
        await events.wait_for(
            "room_metadata_changed",
            lambda old, new: occupants(new).get(2) == listener.identity,
            "the grid with the listener on seat 2")
        assert state_of(rtc_room.metadata)["seats"]["version"] == grid["version"]

        await http(api.act, listener, "seats/leave")
        left = await participant(stack, room, listener.identity)
        assert (left.can_publish, left.can_publish_sources) == (False, [])
        await events.wait_for("participant_permissions_changed",
                              permission_is(listener.identity, False), "the revoke")
        await events.wait_for("room_metadata_changed",
                              lambda old, new: occupants(new).get(2) is None
                              and state_of(new)["version"] > grid["version"],
                              "the grid with seat 2 free")


async def test_stage_promotion_grants_microphone_and_camera(api: StackApi,
                                                            stack: LocalStack) -> None:
    room, host = await http(api.live_stream)
    viewer: Member = await http(api.join, unique("viewer"), room, "live_stream")
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "participant_permissions_changed", "room_metadata_changed")
    async with connected(stack.livekit.url, viewer.token, rtc_room):
        assert (await participant(stack, room, viewer.identity)).can_publish is False
        await http(api.act, host, "stage/invite", {"identity": viewer.identity})
        promoted = await participant(stack, room, viewer.identity)
        assert promoted.can_publish is True
        assert sorted(promoted.can_publish_sources) == ["camera", "microphone"]
        await events.wait_for("participant_permissions_changed",
                              permission_is(viewer.identity, True), "the stage grant")
        await events.wait_for(
            "room_metadata_changed",
            lambda old, new: viewer.identity in
            [m["identity"] for m in state_of(new).get("stage", {}).get("members", [])],
            "the stage with the viewer on it")

        await http(api.act, host, "stage/remove", {"identity": viewer.identity})
        assert (await participant(stack, room, viewer.identity)).can_publish is False
        await events.wait_for("participant_permissions_changed",
                              permission_is(viewer.identity, False), "the stage revoke")


async def test_kick_revokes_and_the_server_unpublishes_the_microphone(
        api: StackApi, stack: LocalStack) -> None:
    room, host = await http(api.audio_room, seats=2)
    speaker: Member = await http(api.join, unique("speaker"), room, "audio_room")
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "participant_permissions_changed")
    async with connected(stack.livekit.url, speaker.token, rtc_room):
        await http(api.act, speaker, "seats/take", {"seat_index": 1})
        await events.wait_for("participant_permissions_changed",
                              permission_is(speaker.identity, True), "the grant")
        source = rtc.AudioSource(48_000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await asyncio.wait_for(rtc_room.local_participant.publish_track(track, options),
                               EVENT_TIMEOUT)
        async def sources() -> list[str]:
            return [t.source for t in (await participant(stack, room, speaker.identity)).tracks]

        await until(sources, "the server to list the microphone")
        assert await sources() == ["microphone"]

        await http(api.act, host, "seats/kick", {"identity": speaker.identity})
        kicked = await participant(stack, room, speaker.identity)
        assert kicked.can_publish is False
        await events.wait_for("participant_permissions_changed",
                              permission_is(speaker.identity, False), "the revoke")
        # the server unpublishes the revoked source (asynchronously)
        await until(lambda: _negate(sources), "the server to drop the revoked microphone")


async def test_ban_disconnects_a_connected_participant(api: StackApi,
                                                       stack: LocalStack) -> None:
    room, host = await http(api.audio_room)
    victim: Member = await http(api.join, unique("victim"), room, "audio_room")
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "disconnected")
    async with connected(stack.livekit.url, victim.token, rtc_room):
        await http(api.act, host, "ban", {"identity": victim.identity})
        await events.wait_for("disconnected", lambda *_: True, "the ban's disconnect")
    answer = await http(api.mint, victim.identity, room, "audio_room")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "banned"


# ----------------------------------------------------------------------------- webhooks


async def test_disconnected_speaker_loses_its_seat(api: StackApi, stack: LocalStack) -> None:
    """LiveKit's participant_left webhook frees the seat; the others see the new grid."""
    room, host = await http(api.audio_room, seats=3)
    speaker: Member = await http(api.join, unique("speaker"), room, "audio_room")
    observer: Member = await http(api.join, unique("observer"), room, "audio_room")
    watching = rtc.Room()
    events = EventLog(watching, "room_metadata_changed")
    async with connected(stack.livekit.url, observer.token, watching):
        async with connected(stack.livekit.url, speaker.token):
            await http(api.act, speaker, "seats/take", {"seat_index": 1})
            await events.wait_for("room_metadata_changed",
                                  lambda old, new: occupants(new).get(1) == speaker.identity,
                                  "the speaker seated")
            seated = len(events.items)  # a push from before the take must not count below
        # the speaker's room is disconnected here: no API call, only LiveKit's webhook
        await events.wait_for("room_metadata_changed",
                              lambda old, new: occupants(new).get(1) is None,
                              "seat 1 freed by the webhook", timeout=WEBHOOK_TIMEOUT,
                              since=seated)
    grid = await http(api.seats, host)
    assert all(s["occupant"] != speaker.identity for s in grid["seats"])
    # and it is no longer present: it must join again to act
    gone = await http(api.get, api.room(room, "seats"), bearer=speaker.bearer)
    assert gone.status_code == 404


async def test_disconnected_co_publisher_leaves_the_stage(api: StackApi,
                                                          stack: LocalStack) -> None:
    room, host = await http(api.live_stream)
    guest: Member = await http(api.join, unique("guest"), room, "live_stream")
    await http(api.act, host, "stage/invite", {"identity": guest.identity})
    guest_room = rtc.Room()
    events = EventLog(guest_room, "participant_permissions_changed")
    async with connected(stack.livekit.url, guest.token, guest_room):
        # The guest is a co-publisher once LiveKit has it joined and the engine's stage
        # grant (sent on participant_joined: its token predates the invite) has reached it.
        # Leaving the instant Room.connect returns races LiveKit's own join: the leave is
        # then reported as participant_connection_aborted, or lost with the signal
        # connection and noticed only by LiveKit's ~20 s ICE timeouts.
        await events.wait_for("participant_permissions_changed",
                              permission_is(guest.identity, True), "the guest's stage grant")

    def off_stage() -> bool:
        stage = api.get(api.room(room, "stage"), bearer=host.bearer).json()
        return guest.identity not in [m["identity"] for m in stage["members"]]

    try:
        await http(wait_until, off_stage, "the guest off stage", timeout=WEBHOOK_TIMEOUT)
    except AssertionError as exc:  # say what the engine heard from LiveKit about the guest
        heard = [line for line in stack.log_tail(400).splitlines() if guest.identity in line]
        raise AssertionError(f"{exc}\nengine log about the guest:\n" + "\n".join(heard))


async def test_call_party_leaving_ends_the_call(api: StackApi, stack: LocalStack) -> None:
    caller, callee = unique("caller"), unique("callee")
    caller_bearer = await http(api.bearer, caller)
    callee_bearer = await http(api.bearer, callee)
    call = await http(api.create_call, caller_bearer, callee)
    accepted = await http(api.call_action, callee_bearer, call["call_id"], "accept")
    assert accepted.status_code == 200, accepted.text
    callee_room = rtc.Room()
    events = EventLog(callee_room, "room_metadata_changed", "disconnected",
                      "participant_connected")
    async with connected(stack.livekit.url, accepted.json()["token"], callee_room):
        async with connected(stack.livekit.url, call["token"]):
            # the caller hangs up by leaving, once LiveKit has it in the room (leaving the
            # instant connect() returns races LiveKit's own join, see the stage test above)
            await events.wait_for("participant_connected", lambda p: p.identity == caller,
                                  "the caller in the room")
        # the engine ends the call and closes its room: the server disconnects the callee
        await events.wait_for("disconnected", lambda *_: True, "the room closed",
                              timeout=WEBHOOK_TIMEOUT)
    # LiveKit may drop the last metadata update with the deleted room, so the ended state is
    # the engine's word (sessions ask for it when their room closes); any push that did
    # arrive is ordered: nothing after "ended"
    pushed = [state_of(args[1]).get("call", {}).get("status")
              for name, args in events.items if name == "room_metadata_changed"]
    assert "ended" not in pushed[:-1]
    assert (await http(api.get_call, callee_bearer, call["call_id"]))["status"] == "ended"


# ----------------------------------------------------------------------------- ring timeout


def test_ring_timeout_marks_the_call_missed_by_itself(quick_api: StackApi,
                                                      quick_stack: LocalStack) -> None:
    """Nobody asks the engine anything: its own timer marks the call missed (read back
    from the database directly) and closes the LiveKit room."""
    app = quick_stack.apps[0]
    caller, callee = unique("caller"), unique("callee")
    caller_bearer, callee_bearer = quick_api.bearer(caller), quick_api.bearer(callee)
    started = time.monotonic()
    call = quick_api.create_call(caller_bearer, callee)
    store = store_of(quick_stack)
    try:
        missed = wait_until(
            lambda: (c := store.read_call(app.app_id, call["call_id"])).status.value == "missed"
            and c, "the engine's ring timer", timeout=QUICK_RING_TIMEOUT + 10)
    finally:
        store.close()
    assert time.monotonic() - started >= QUICK_RING_TIMEOUT - 0.2
    assert missed.ended_by is None

    async def room_closed() -> None:
        async with livekit_control(quick_stack) as control:
            name = livekit_call_name(app.app_id, call["call_id"])
            await until(lambda: _negate(lambda: control.room_exists(name)),
                        "the missed call's room to close")

    asyncio.run(room_closed())
    assert quick_api.get_call(caller_bearer, call["call_id"])["status"] == "missed"
    assert quick_api.get(f"{API}/calls/incoming", bearer=callee_bearer).json() == {"calls": []}
    late = quick_api.call_action(callee_bearer, call["call_id"], "accept")
    assert late.status_code == 409, late.text


# ----------------------------------------------------------------------------- long-poll


def test_long_poll_returns_the_incoming_call(api: StackApi) -> None:
    caller, callee = unique("caller"), unique("callee")
    caller_bearer, callee_bearer = api.bearer(caller), api.bearer(callee)
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(api.get, f"{API}/calls/incoming/next", bearer=callee_bearer,
                              params={"timeout": "15"})
        call = api.create_call(caller_bearer, callee)
        answer: requests.Response = waiting.result(timeout=20)
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 10
    got = answer.json()
    assert (got["call_id"], got["caller_identity"], got["status"]) == (
        call["call_id"], caller, "initiating")
    assert got.get("token") is None  # the callee gets its token by accepting
    # handed out once: the next poll waits out its timeout with nothing
    started = time.monotonic()
    again = api.get(f"{API}/calls/incoming/next", bearer=callee_bearer, params={"timeout": "0.5"})
    assert again.status_code == 204 and not again.content
    assert time.monotonic() - started >= 0.45
    # but the plain list still shows it, and accepting clears it
    listed = api.get(f"{API}/calls/incoming", bearer=callee_bearer).json()["calls"]
    assert [c["call_id"] for c in listed] == [call["call_id"]]
    assert api.call_action(callee_bearer, call["call_id"], "accept").status_code == 200
    assert api.get(f"{API}/calls/incoming", bearer=callee_bearer).json() == {"calls": []}


def test_long_poll_times_out_with_204(api: StackApi) -> None:
    bearer = api.bearer(unique("lonely"))
    started = time.monotonic()
    answer = api.get(f"{API}/calls/incoming/next", bearer=bearer, params={"timeout": "0.3"})
    elapsed = time.monotonic() - started
    assert answer.status_code == 204
    assert 0.25 <= elapsed < 5


@pytest.mark.parametrize("timeout", ["abc", "-1", "nan", "inf"])
def test_long_poll_rejects_a_bad_timeout(api: StackApi, timeout: str) -> None:
    bearer = api.bearer(unique("poller"))
    answer = api.get(f"{API}/calls/incoming/next", bearer=bearer, params={"timeout": timeout})
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"]["field"] == "timeout"


async def test_a_seat_taken_before_connecting_is_granted_on_join(api: StackApi,
                                                                 stack: LocalStack) -> None:
    """The token was minted as a listener; the seat was taken before the participant
    reached LiveKit, where no permission could be updated. Joining must not leave it mute."""
    room, host = await http(api.audio_room, seats=2)
    listener: Member = await http(api.join, unique("early"), room, "audio_room")
    await http(api.act, listener, "seats/take", {"seat_index": 1})
    assert publish_rights(grants(stack, listener.token)) == (False, set())  # the old token
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "participant_permissions_changed")
    async with connected(stack.livekit.url, listener.token, rtc_room):
        if not rtc_room.local_participant.permissions.can_publish:
            await events.wait_for("participant_permissions_changed",
                                  permission_is(listener.identity, True),
                                  "the grant applied on join", timeout=WEBHOOK_TIMEOUT)
        seated = await participant(stack, room, listener.identity)
        assert (seated.can_publish, seated.can_publish_sources) == (True, ["microphone"])


async def test_a_seat_lost_before_connecting_is_revoked_on_join(api: StackApi,
                                                                stack: LocalStack) -> None:
    """The reverse: a token minted while seated, then kicked before connecting."""
    room, host = await http(api.audio_room, seats=2)
    speaker: Member = await http(api.join, unique("late"), room, "audio_room")
    await http(api.act, speaker, "seats/take", {"seat_index": 1})
    seated: Member = await http(api.join, speaker.identity, room, "audio_room")
    assert publish_rights(grants(stack, seated.token)) == (True, {"microphone"})
    await http(api.act, host, "seats/kick", {"identity": speaker.identity})
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "participant_permissions_changed")
    async with connected(stack.livekit.url, seated.token, rtc_room):
        if rtc_room.local_participant.permissions.can_publish:
            await events.wait_for("participant_permissions_changed",
                                  permission_is(speaker.identity, False),
                                  "the revoke applied on join", timeout=WEBHOOK_TIMEOUT)
        kicked = await participant(stack, room, speaker.identity)
        assert kicked.can_publish is False


def _longest(tag: str, i: int) -> str:
    """An identity (or name) at its longest, in 4-byte UTF-8 characters: the worst case."""
    head = f"{tag}{i}-"
    return head + "\U0001d54f" * (128 - len(head))


async def test_every_list_filled_to_its_cap_still_pushes(api: StackApi,
                                                         stack: LocalStack) -> None:
    """Requests, invitations, raised hands and the stage, each at its cap with the longest
    identities and names: LiveKit accepts every push (the room metadata is the last state)."""
    from stream_core.limits import (
        MAX_RAISED_HANDS, MAX_SEAT_INVITES, MAX_SPEAK_REQUESTS, MAX_STAGE_MEMBERS,
    )

    grid_room, host = await http(api.audio_room, seats=64, mode="request")
    for i in range(MAX_SPEAK_REQUESTS):
        who = await http(api.join, _longest("r", i), grid_room, "audio_room",
                         name=_longest("n", i))
        await http(api.act, who, "seats/request")
    for i in range(MAX_SEAT_INVITES):
        await http(api.join, _longest("i", i), grid_room, "audio_room", name=_longest("m", i))
        await http(api.act, host, "seats/invite", {"identity": _longest("i", i)})
    show, star = await http(api.live_stream)
    for i in range(MAX_STAGE_MEMBERS):
        await http(api.join, _longest("s", i), show, "live_stream", name=_longest("t", i))
        await http(api.act, star, "stage/invite", {"identity": _longest("s", i)})
    for i in range(MAX_RAISED_HANDS):
        fan = await http(api.join, _longest("h", i), show, "live_stream",
                         name=_longest("f", i))
        await http(api.act, fan, "stage/request")
    async with livekit_control(stack) as control:
        for room, member in ((grid_room, host), (show, star)):
            served = api.get(api.room(room, "seats" if room == grid_room else "stage"),
                             bearer=member.bearer).json()
            rooms = await control._api.room.list_rooms(
                lk_api.ListRoomsRequest(names=[lk_room(stack, room)]))
            pushed = json.loads(rooms.rooms[0].metadata)
            assert pushed["version"] == served["version"], "the last push did not land"
            assert len(rooms.rooms[0].metadata.encode()) < 512 * 1024
