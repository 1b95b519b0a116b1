"""The engine's auth matrix, over every privileged route of ``stream_core.operations.ROUTES``.

The route lists are derived from the table, so a new route is covered (or makes a test
here fail until someone decides how it is guarded). Expected answers:

* no / garbage / forged / expired / unknown-app bearer -> 401 ``unauthenticated``, before
  the body is even looked at;
* another app's bearer (same identity string!) on a room or call -> 404: rooms and calls
  belong to one app;
* an identity of the right app that is not in the room -> 404; not a party of the call -> 403;
* a non-host on a ``Host:`` route -> 403 ``forbidden``, and nothing changes;
* a banned identity's next ``/token`` -> 403 ``banned``;
* a wrong app key -> 401.

Every error body is ``{"error": {"code", "message"[, "field"]}}``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from stream_engine.bearers import issue_bearer
from stream_core.operations import OPERATIONS as ROUTES
from stream_core.operations import Credentials, Operation, Target
from stream_devstack.stack import LocalStack
from tests.engine.stack_fixtures import API, Member, StackApi, assert_error, unique

Route = Operation[Any]
pytestmark = [pytest.mark.engine, pytest.mark.livekit]

PRIVILEGED = [r for r in ROUTES if (r.credentials is Credentials.BEARER)]
PUBLIC = [r for r in ROUTES if r.credentials is Credentials.APP]
#: Host-only routes are the ones the table documents as such.
HOST_ONLY = [r for r in PRIVILEGED if r.summary.startswith("Host:")]
ROOM_ROUTES = [r for r in PRIVILEGED if "{room_name}" in r.url]
CALL_ROUTES = [r for r in PRIVILEGED if "{call_id}" in r.url]
#: Routes that address nothing but the caller's own identity (no path parameter).
SELF_SCOPED = [r for r in PRIVILEGED if "{" not in r.url]


def _id(route: Route) -> str:
    return f"{route.http} {route.url.removeprefix(API)}"


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    """One app's rooms and call, with someone in every role the matrix needs."""

    audio: str  # request mode: host, a seated speaker, listeners, a pending request
    stage: str  # live stream: host, a co-publisher on stage, viewers
    host: Member
    speaker: Member
    listener: Member
    invitee: Member
    requester: Member
    request_id: int
    stage_host: Member
    on_stage: Member
    viewer: Member
    viewer2: Member
    call_id: str
    caller: str
    callee: str
    caller_bearer: str
    callee_bearer: str
    outsider_bearer: str  # same app, in no room, party of no call


def build_world(api: StackApi) -> World:
    audio, host = api.audio_room(seats=4, mode="request")
    speaker = api.join(unique("speaker"), audio, "audio_room")
    api.act(host, "seats/invite", {"identity": speaker.identity, "seat_index": 1})
    api.act(speaker, "seats/take")
    listener = api.join(unique("listener"), audio, "audio_room")
    invitee = api.join(unique("invitee"), audio, "audio_room")
    requester = api.join(unique("requester"), audio, "audio_room")
    request = api.act(requester, "seats/request", {"seat_index": 2})

    stage, stage_host = api.live_stream()
    on_stage = api.join(unique("guest"), stage, "live_stream")
    api.act(stage_host, "stage/invite", {"identity": on_stage.identity})
    viewer = api.join(unique("viewer"), stage, "live_stream")
    viewer2 = api.join(unique("viewer"), stage, "live_stream")

    caller, callee = unique("caller"), unique("callee")
    caller_bearer, callee_bearer = api.bearer(caller), api.bearer(callee)
    call = api.create_call(caller_bearer, callee)
    return World(audio, stage, host, speaker, listener, invitee, requester,
                 request["request_id"], stage_host, on_stage, viewer, viewer2,
                 call["call_id"], caller, callee, caller_bearer, callee_bearer,
                 api.bearer(unique("outsider")))


#: A valid body for each room operation, as the host would send it in ``World``.
BODIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "get_stage": lambda w: {},
    "invite_to_stage": lambda w: {"identity": w.viewer2.identity},
    "remove_from_stage": lambda w: {"identity": w.on_stage.identity},
    "request_stage": lambda w: {},
    "lower_hand": lambda w: {},
    "leave_stage": lambda w: {},
    "get_seats": lambda w: {},
    "setup_seats": lambda w: {"seat_count": 4},
    "take_seat": lambda w: {"seat_index": 3},
    "leave_seat": lambda w: {},
    "request_to_speak": lambda w: {"seat_index": 3},
    "cancel_speak_request": lambda w: {},
    "approve_speaker": lambda w: {"request_id": w.request_id},
    "deny_speaker": lambda w: {"request_id": w.request_id},
    "invite_to_speak": lambda w: {"identity": w.invitee.identity, "seat_index": 3},
    "decline_invite": lambda w: {},
    "kick_from_seat": lambda w: {"identity": w.speaker.identity},
    "lock_seat": lambda w: {"seat_index": 0},
    "mute_seat": lambda w: {"seat_index": 1},
    "move_seat": lambda w: {"seat_index": 3, "identity": w.speaker.identity},
    "ban": lambda w: {"identity": w.speaker.identity},
}


def body_for(route: Route, world: World) -> dict[str, Any] | None:
    if route.http == "GET":
        return None
    if route.target is Target.ROOM:
        if route.name not in BODIES:
            pytest.fail(f"new room route {_id(route)}: add a valid body for {route.name!r}")
        return BODIES[route.name](world)
    if route.url == f"{API}/calls":
        return {"callee_identity": unique("someone"), "type": "audio_call"}
    return {}


def path_for(route: Route, world: World) -> str:
    room = world.stage if "/stage" in route.url else world.audio
    return route.url.format(room_name=room, call_id=world.call_id)


def send(api: StackApi, route: Route, world: World, *, bearer: str | None = None,
         headers: dict[str, str] | None = None, body: Any = "valid") -> requests.Response:
    params = {"timeout": "0"} if route.query else None
    payload = body_for(route, world) if body == "valid" else body
    if route.http == "GET":
        return api.request("GET", path_for(route, world), bearer=bearer, headers=headers,
                           params=params)
    return api.request(route.http, path_for(route, world), bearer=bearer, headers=headers,
                       json=payload if payload is not None else {}, params=params)


@pytest.fixture(scope="module")
def world(api: StackApi) -> World:
    return build_world(api)


def _state(api: StackApi, world: World) -> tuple[Any, ...]:
    seats = api.get(api.room(world.audio, "seats"), bearer=world.host.bearer).json()
    stage = api.get(api.room(world.stage, "stage"), bearer=world.stage_host.bearer).json()
    call = api.get_call(world.caller_bearer, world.call_id)
    return seats, stage, call["status"]


# ----------------------------------------------------------------------------- the table


def test_route_lists_are_derived_from_the_table() -> None:
    assert PRIVILEGED and HOST_ONLY and CALL_ROUTES and ROOM_ROUTES
    assert {r.url for r in PUBLIC} == {f"{API}/token", f"{API}/auth"}
    # every privileged route is either addressed (room/call, so cross-app and membership
    # apply) or scoped to the caller itself; a new kind of route must be thought about here
    assert set(map(_id, PRIVILEGED)) == set(map(_id, ROOM_ROUTES + CALL_ROUTES + SELF_SCOPED))
    assert {_id(r) for r in SELF_SCOPED} == {
        "POST /calls", "GET /calls/incoming", "GET /calls/incoming/next"}
    assert all(r in ROOM_ROUTES for r in HOST_ONLY)


# ----------------------------------------------------------------------------- credentials


def _credentials(stack: LocalStack, world: World) -> dict[str, dict[str, str]]:
    app = stack.apps[0].app_id
    identity = world.host.identity
    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "wrong scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "forged": {"Authorization": "Bearer " + issue_bearer(
            "another-secret-of-32-characters!!", app_id=app, identity=identity, ttl=600)},
        "expired": {"Authorization": "Bearer " + issue_bearer(
            stack.signing_secret, app_id=app, identity=identity, ttl=60,
            now=time.time() - 3600)},
        "unknown app": {"Authorization": "Bearer " + issue_bearer(
            stack.signing_secret, app_id="no-such-app", identity=identity, ttl=600)},
    }


CREDENTIALS = ["missing", "empty bearer", "wrong scheme", "garbage", "forged", "expired",
               "unknown app"]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("route", PRIVILEGED, ids=_id)
def test_bad_credentials_are_401_before_the_body_is_read(
        api: StackApi, stack: LocalStack, world: World, route: Route, credential: str) -> None:
    headers = _credentials(stack, world)[credential]
    # an empty body: were it validated first, required fields would give 422 instead
    error = assert_error(send(api, route, world, headers=headers, body={}), 401,
                         "unauthenticated")
    if credential == "expired":
        assert "expired" in error["message"]
    # and with a perfectly valid body too
    assert_error(send(api, route, world, headers=headers), 401, "unauthenticated")


def test_valid_bearer_gets_through(api: StackApi, world: World) -> None:
    """The control for the matrix: the same requests with good credentials are answered."""
    assert api.get(api.room(world.audio, "seats"), bearer=world.listener.bearer).ok
    assert api.get(api.room(world.stage, "stage"), bearer=world.viewer.bearer).ok
    assert api.get_call(world.callee_bearer, world.call_id)["status"] == "initiating"


# ----------------------------------------------------------------------------- other app


@pytest.mark.parametrize("route", ROOM_ROUTES + CALL_ROUTES, ids=_id)
def test_other_apps_bearer_finds_nothing(api: StackApi, world: World, route: Route) -> None:
    """Same identity string, other app: the room / call simply does not exist there."""
    identity = world.caller if route in CALL_ROUTES else (
        world.stage_host.identity if "/stage" in route.url else world.host.identity)
    foreign = api.bearer(identity, api.app("other"))
    before = _state(api, world)
    assert_error(send(api, route, world, bearer=foreign), (403, 404))
    assert _state(api, world) == before


def test_other_app_cannot_see_incoming_calls(api: StackApi, world: World) -> None:
    foreign = api.bearer(world.callee, api.app("other"))
    answer = api.get(f"{API}/calls/incoming", bearer=foreign)
    assert answer.status_code == 200 and answer.json() == {"calls": []}
    polled = api.get(f"{API}/calls/incoming/next", bearer=foreign, params={"timeout": "0"})
    assert polled.status_code == 204
    # while the callee of the right app does see it
    own = api.get(f"{API}/calls/incoming", bearer=world.callee_bearer).json()["calls"]
    assert [c["call_id"] for c in own] == [world.call_id]


def test_other_app_calls_stay_in_that_app(api: StackApi, world: World) -> None:
    """A call made in the other app is invisible to the main app's identically named callee."""
    other = api.app("other")
    call = api.create_call(api.bearer(world.caller, other), world.callee)
    mine = api.get(f"{API}/calls/incoming", bearer=world.callee_bearer).json()["calls"]
    assert call["call_id"] not in [c["call_id"] for c in mine]
    assert_error(api.get(f"{API}/calls/{call['call_id']}", bearer=world.callee_bearer), 404,
                 "not_found")


# ----------------------------------------------------------------------------- membership


@pytest.mark.parametrize("route", ROOM_ROUTES, ids=_id)
def test_identity_not_in_the_room_gets_404(api: StackApi, world: World, route: Route) -> None:
    before = _state(api, world)
    assert_error(send(api, route, world, bearer=world.outsider_bearer), 404, "not_found")
    assert _state(api, world) == before


@pytest.mark.parametrize("route", CALL_ROUTES, ids=_id)
def test_non_party_of_a_call_gets_403(api: StackApi, world: World, route: Route) -> None:
    before = _state(api, world)
    assert_error(send(api, route, world, bearer=world.outsider_bearer), 403, "forbidden")
    assert _state(api, world) == before


@pytest.mark.parametrize("route", HOST_ONLY, ids=_id)
def test_non_host_on_host_only_route_gets_403(api: StackApi, world: World,
                                              route: Route) -> None:
    actor = world.viewer if "/stage" in route.url else world.listener
    before = _state(api, world)
    assert_error(send(api, route, world, bearer=actor.bearer), 403, "forbidden")
    assert _state(api, world) == before


@pytest.mark.parametrize("route", HOST_ONLY, ids=_id)
def test_host_may_do_what_a_non_host_may_not(api: StackApi, route: Route) -> None:
    """The control for the 403s: the same request from the host succeeds (fresh world)."""
    world = build_world(api)
    host = world.stage_host if "/stage" in route.url else world.host
    answer = send(api, route, world, bearer=host.bearer)
    assert answer.status_code == 200, answer.text


# ----------------------------------------------------------------------------- bans


@pytest.mark.parametrize("stream_type", ["audio_room", "live_stream"])
def test_banned_identity_next_token_is_403_banned(api: StackApi, stream_type: str) -> None:
    room, host = (api.audio_room() if stream_type == "audio_room" else api.live_stream())
    victim = api.join(unique("victim"), room, stream_type)
    api.act(host, "ban", {"identity": victim.identity})
    error = assert_error(api.mint(victim.identity, room, stream_type), 403, "banned")
    assert error["message"]
    # the ban is the room's, not the identity's everywhere
    elsewhere = unique("elsewhere")
    assert api.mint(victim.identity, elsewhere, stream_type).status_code == 200
    # and a banned identity's old bearer no longer acts in the room
    kind = "seats" if stream_type == "audio_room" else "stage"
    assert_error(api.get(api.room(room, kind), bearer=victim.bearer), (403, 404))


def test_host_cannot_be_banned_and_non_host_cannot_ban(api: StackApi) -> None:
    room, host = api.audio_room()
    listener = api.join(unique("listener"), room, "audio_room")
    assert_error(api.post(api.room(room, "ban"), {"identity": host.identity},
                          bearer=listener.bearer), 403, "forbidden")
    assert_error(api.post(api.room(room, "ban"), {"identity": host.identity},
                          bearer=host.bearer), 409)
    assert api.mint(listener.identity, room, "audio_room").status_code == 200


# ----------------------------------------------------------------------------- app keys


@pytest.mark.parametrize("route", PUBLIC, ids=_id)
@pytest.mark.parametrize("case", ["wrong key", "unknown app", "other app's key"])
def test_wrong_app_key_is_401(api: StackApi, route: Route, case: str) -> None:
    main, other = api.main, api.app("other")
    app_id, app_key = {"wrong key": (main.app_id, "0" * 32),
                       "unknown app": ("no-such-app", main.app_key),
                       "other app's key": (main.app_id, other.app_key)}[case]
    body = {"app_id": app_id, "app_key": app_key, "identity": unique("who"),
            "room_name": unique("room"), "stream_type": "audio_room"}
    assert_error(api.post(route.url, body), 401, "unauthenticated")


@pytest.mark.parametrize("route", PUBLIC, ids=_id)
def test_missing_app_key_names_the_field(api: StackApi, route: Route) -> None:
    body = {"app_id": api.main.app_id, "identity": unique("who")}
    error = assert_error(api.post(route.url, body), (400, 422))
    assert error.get("field") == "app_key"


def test_error_messages_never_echo_the_key(api: StackApi) -> None:
    key = "k" * 40
    answer = api.post(f"{API}/auth", {"app_id": api.main.app_id, "app_key": key,
                                      "identity": unique("who")})
    assert_error(answer, 401)
    assert key not in answer.text


def test_host_only_routes_match_the_documented_set() -> None:
    """Spelled out once, so a route that silently stops being host-only is noticed."""
    ops = {r.name for r in HOST_ONLY}
    assert ops == {"invite_to_stage", "remove_from_stage", "setup_seats", "approve_speaker",
                   "deny_speaker", "invite_to_speak", "kick_from_seat", "lock_seat",
                   "mute_seat", "ban"}
    assert all(re.search(r"{room_name}", r.url) for r in HOST_ONLY)
