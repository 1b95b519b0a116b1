"""Engine edges: rate limits, identity verification, the OpenAPI document, malformed input,
LiveKit webhooks, and secrets that must never leave the engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from livekit import api as lk_api
from marshmallow import Schema, fields, validate

from stream_core.names import livekit_room_name
from stream_engine.bearers import identity_signature
from stream_engine.openapi import build_openapi
from stream_core.operations import OPERATIONS as ROUTES
from stream_core.operations import Credentials, Operation, Target
from stream_devstack.stack import LocalStack
from tests.engine.stack_fixtures import (
    API, QUICK_RATE, StackApi, assert_error, find_secrets, secrets_of, unique, wait_until,
)

Route = Operation[Any]
pytestmark = [pytest.mark.engine, pytest.mark.livekit]

BURST = int(QUICK_RATE.split("/")[1])
WITH_BODY = [r for r in ROUTES if r.request is not None]


def _id(route: Route) -> str:
    return f"{route.http} {route.url.removeprefix(API)}"


# ----------------------------------------------------------------------------- rate limits


def _until_limited(send: Any, limit: int = BURST + 5) -> tuple[list[int], requests.Response]:
    """Send until a 429 (bounded): the statuses before it, and the 429 itself."""
    statuses: list[int] = []
    for _ in range(limit):
        answer = send()
        if answer.status_code == 429:
            return statuses, answer
        statuses.append(answer.status_code)
    raise AssertionError(f"no 429 after {limit} requests: {statuses}")


def _retry_after(answer: requests.Response) -> int:
    assert_error(answer, 429, "rate_limited")
    value = answer.headers["Retry-After"]
    assert value.isdigit(), value  # delta-seconds, an integer as HTTP wants
    seconds = int(value)
    rate = float(QUICK_RATE.split("/")[0])
    assert 1 <= seconds <= math.ceil(1 / rate), seconds
    return seconds


@pytest.mark.parametrize("kind", ["token", "auth"])
def test_minting_is_rate_limited_per_identity(quick_api: StackApi, kind: str) -> None:
    identity, room = unique("eager"), unique("room")

    def mint() -> requests.Response:
        if kind == "token":
            return quick_api.mint(identity, room, "live_stream")
        return quick_api.post(f"{API}/auth", quick_api.credentials(identity))

    before, limited = _until_limited(mint)
    assert len(before) >= BURST - 1 and set(before) == {200}, before
    wait = _retry_after(limited)
    # the bucket is per identity: someone else is not throttled
    assert quick_api.mint(unique("patient"), room, "live_stream").status_code == 200
    # and the limited identity may go again once Retry-After has passed (the behaviour
    # under test is time itself, so this waits exactly the advertised delay)
    time.sleep(wait)
    assert mint().status_code == 200


def test_mutations_are_rate_limited_reads_are_not(quick_api: StackApi) -> None:
    room = unique("live")
    viewer = quick_api.join(unique("viewer"), room, "live_stream")
    actions = iter(["stage/request", "stage/lower"] * (BURST + 5))

    def mutate() -> requests.Response:
        return quick_api.post(quick_api.room(room, next(actions)), bearer=viewer.bearer)

    before, limited = _until_limited(mutate)
    assert set(before) == {200}, before
    _retry_after(limited)
    version = quick_api.get(quick_api.room(room, "stage"), bearer=viewer.bearer).json()
    for _ in range(BURST * 3):  # reads are never throttled
        answer = quick_api.get(quick_api.room(room, "stage"), bearer=viewer.bearer)
        assert answer.status_code == 200
    # a refused (throttled) mutation changed nothing
    assert answer.json() == version


# ----------------------------------------------------------------------------- verification


@pytest.mark.parametrize("path", [f"{API}/token", f"{API}/auth"])
def test_identity_verification_needs_the_apps_hmac(api: StackApi, path: str) -> None:
    app = api.app("verified")
    assert app.server_secret
    identity = unique("verified-user")
    base = {"app_id": app.app_id, "app_key": app.app_key, "identity": identity,
            "room_name": unique("room"), "stream_type": "live_stream"}
    other_secret = api.app("main").app_key
    refused = {
        "no signature": None,
        "garbage": "00" * 32,
        "another identity's": identity_signature(app.server_secret, identity + "x"),
        "another secret's": identity_signature(other_secret, identity),
    }
    for name, signature in refused.items():
        body = dict(base) if signature is None else {**base, "signature": signature}
        error = assert_error(api.post(path, body), 403, "forbidden")
        assert "signature" in error["message"], name
    good = {**base, "signature": identity_signature(app.server_secret, identity)}
    answer = api.post(path, good)
    assert answer.status_code == 200, answer.text
    assert good["signature"] not in answer.text


def test_apps_without_a_server_secret_need_no_signature(api: StackApi) -> None:
    identity = unique("plain")
    body = {"app_id": api.main.app_id, "app_key": api.main.app_key, "identity": identity}
    assert api.post(f"{API}/auth", body).status_code == 200
    assert api.post(f"{API}/auth", {**body, "signature": "whatever"}).status_code == 200


# ----------------------------------------------------------------------------- OpenAPI


def test_served_openapi_document_is_the_generated_one(api: StackApi) -> None:
    answer = api.get(f"{API}/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json() == json.loads(json.dumps(build_openapi()))


def test_openapi_document_is_valid() -> None:
    import openapi_spec_validator  # a dev dependency: fail, never skip, when it is missing

    openapi_spec_validator.validate(json.loads(json.dumps(build_openapi())))


def test_openapi_document_describes_every_route() -> None:
    doc = build_openapi()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http",
                                                              "scheme": "bearer"}
    ids = []
    for route in ROUTES:
        op = doc["paths"][route.url][route.http.lower()]
        ids.append(op["operationId"])
        assert ("security" in op) is (route.credentials is Credentials.BEARER), _id(route)
        assert "200" in op["responses"]
        for status in ("400", "401", "422", "429"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
        if route.request is not None:
            assert "application/json" in op["requestBody"]["content"]
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"{(\w+)}", route.url)), _id(route)
    assert len(ids) == len(set(ids)) == len(ROUTES)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])


# ----------------------------------------------------------------------------- malformed input


def _valid_value(field: fields.Field) -> Any:
    for check in field.validators:
        if isinstance(check, validate.OneOf):
            return list(check.choices)[0]
        if isinstance(check, validate.Range):
            return check.min if check.min is not None else 0
    if isinstance(field, fields.Enum):
        return list(field.enum)[0].value
    if isinstance(field, fields.Boolean):
        return True
    if isinstance(field, fields.Number):
        return 1
    if isinstance(field, fields.Dict):
        return {}
    return "valid-name"


def _wrong_value(field: fields.Field) -> Any:
    if isinstance(field, fields.Boolean):
        return "maybe"
    if isinstance(field, fields.Number):
        return "not-a-number"
    if isinstance(field, fields.Enum):
        return "no-such-choice"
    if isinstance(field, fields.Dict):
        return ["not", "a", "mapping"]
    if isinstance(field, fields.String):
        return 12345
    raise AssertionError(f"add a wrong value for {type(field).__name__}")


def _loadable(schema: Schema) -> dict[str, fields.Field]:
    return {name: f for name, f in schema.fields.items() if not f.dump_only}


def _required_body(schema: Schema) -> dict[str, Any]:
    return {name: _valid_value(f) for name, f in _loadable(schema).items() if f.required}


@pytest.fixture(scope="module")
def actor(api: StackApi) -> str:
    return api.bearer(unique("prober"))


def _send(api: StackApi, route: Route, bearer: str, **kwargs: Any) -> requests.Response:
    path = route.url.format(room_name="no-such-room", call_id="no-such-call")
    return api.request(route.http, path, bearer=bearer if (route.credentials is Credentials.BEARER) else None, **kwargs)


FIELD_CASES = [(route, name) for route in WITH_BODY for name in _loadable(route.request())]


@pytest.mark.parametrize("route, name", FIELD_CASES,
                         ids=[f"{_id(r)}:{n}" for r, n in FIELD_CASES])
def test_a_field_of_the_wrong_type_is_422_naming_it(api: StackApi, actor: str, route: Route,
                                                    name: str) -> None:
    schema = route.request()
    body = {**_required_body(schema), name: _wrong_value(schema.fields[name])}
    error = assert_error(_send(api, route, actor, json=body), 422, "invalid_argument")
    assert error["field"] == name
    assert name in error["message"]


REQUIRED_CASES = [(route, name) for route in WITH_BODY
                  for name, f in _loadable(route.request()).items() if f.required]


@pytest.mark.parametrize("route, name", REQUIRED_CASES,
                         ids=[f"{_id(r)}:{n}" for r, n in REQUIRED_CASES])
def test_a_missing_required_field_is_422_naming_it(api: StackApi, actor: str, route: Route,
                                                   name: str) -> None:
    body = _required_body(route.request())
    del body[name]
    error = assert_error(_send(api, route, actor, json=body), 422, "invalid_argument")
    assert error["field"] == name


MALFORMED = {
    "not json": (b"{nope", {}),
    "a json array": (b"[1, 2]", {}),
    "a json string": (b'"text"', {}),
    "not utf-8": (b'{"a": "\xff\xfe"}', {}),
    "an unknown charset": (b"{}", {"Content-Type": "application/json; charset=no-such"}),
}


@pytest.mark.parametrize("malformed", list(MALFORMED))
@pytest.mark.parametrize("route", WITH_BODY, ids=_id)
def test_a_malformed_body_is_400_never_500(api: StackApi, actor: str, route: Route,
                                           malformed: str) -> None:
    data, headers = MALFORMED[malformed]
    answer = _send(api, route, actor, data=data,
                   headers={"Content-Type": "application/json", **headers})
    if malformed == "an unknown charset" and answer.status_code != 400:
        # ``{}`` is a fine body once the charset is ignored: then it is judged as such
        assert answer.status_code < 500, answer.text
        return
    error = assert_error(answer, 400, "invalid_argument")
    assert error["field"] == "body"


def test_an_oversized_body_is_refused_cleanly(api: StackApi, actor: str) -> None:
    answer = api.request("POST", f"{API}/calls", bearer=actor,
                         data=b'{"x": "' + b"a" * (2 << 20) + b'"}',
                         headers={"Content-Type": "application/json"})
    assert_error(answer, 413)


@pytest.mark.parametrize("method, path", [("GET", f"{API}/nothing-here"),
                                          ("DELETE", f"{API}/calls"),
                                          ("PUT", f"{API}/token")])
def test_unknown_routes_and_methods_are_json_errors(api: StackApi, method: str,
                                                    path: str) -> None:
    assert_error(api.request(method, path), (404, 405))


# ----------------------------------------------------------------------------- webhooks


def _signed(stack: LocalStack, body: str, *, secret: str | None = None) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = (lk_api.AccessToken(stack.livekit.api_key, secret or stack.livekit.api_secret)
             .with_sha256(digest).to_jwt())
    return {"Authorization": token, "Content-Type": "application/webhook+json"}


def _participant_left(room: str, identity: str, event: str = "participant_left",
                      reason: str | None = None, event_id: str | None = None) -> str:
    participant: dict[str, str] = {"identity": identity, "sid": unique("PA")}
    if reason is not None:
        participant["disconnectReason"] = reason
    return json.dumps({"event": event, "id": event_id or unique("evt"),
                       "room": {"name": room}, "participant": participant})


def _deliver(api: StackApi, stack: LocalStack, body: str) -> None:
    answer = api.request("POST", f"{API}/livekit/webhook", data=body,
                         headers=_signed(stack, body))
    assert answer.status_code == 200, answer.text


def _seated(api: StackApi, host: Any, index: int) -> str | None:
    occupant: str | None = api.seats(host)["seats"][index]["occupant"]
    return occupant


@pytest.mark.parametrize("event", ["participant_left", "participant_connection_aborted"])
def test_signed_leave_webhook_frees_the_seat(api: StackApi, stack: LocalStack,
                                             event: str) -> None:
    """A connection that ends before LiveKit made it active is reported as aborted, not
    left: for the room it is a leave all the same."""
    room, host = api.audio_room(seats=2)
    speaker = api.join(unique("speaker"), room, "audio_room")
    api.act(speaker, "seats/take", {"seat_index": 1})
    _deliver(api, stack, _participant_left(livekit_room_name(api.main.app_id, room),
                                        speaker.identity, event))
    # recorded at once, applied after: the seat is freed soon
    wait_until(lambda: _seated(api, host, 1) is None, "the leave applied", timeout=10)


def test_the_leave_of_a_duplicate_identity_frees_nothing(api: StackApi,
                                                         stack: LocalStack) -> None:
    """LiveKit sends the replaced connection's leave before it lists the new one: the
    reason, not a look-up, tells the engine that the identity is still there."""
    room, host = api.audio_room(seats=3)
    lk_name = livekit_room_name(api.main.app_id, room)
    speaker, other = (api.join(unique(n), room, "audio_room") for n in ("speaker", "other"))
    api.act(speaker, "seats/take", {"seat_index": 1})
    api.act(other, "seats/take", {"seat_index": 2})
    _deliver(api, stack, _participant_left(lk_name, speaker.identity,
                                        reason="DUPLICATE_IDENTITY"))
    # a room's events are applied in arrival order: once the next one is, this one was
    _deliver(api, stack, _participant_left(lk_name, other.identity))
    wait_until(lambda: _seated(api, host, 2) is None, "the later leave applied", timeout=10)
    assert _seated(api, host, 1) == speaker.identity


def test_a_replayed_webhook_changes_nothing(api: StackApi, stack: LocalStack) -> None:
    """Recorded once by its id: the same event again (LiveKit retries, a replay) is ignored,
    even after the participant came back and sat down again."""
    room, host = api.audio_room(seats=3)
    lk_name = livekit_room_name(api.main.app_id, room)
    speaker, other = (api.join(unique(n), room, "audio_room") for n in ("speaker", "other"))
    api.act(speaker, "seats/take", {"seat_index": 1})
    api.act(other, "seats/take", {"seat_index": 2})
    leave = _participant_left(lk_name, speaker.identity, event_id=unique("evt"))
    _deliver(api, stack, leave)
    wait_until(lambda: _seated(api, host, 1) is None, "the leave applied", timeout=10)
    back = api.join(speaker.identity, room, "audio_room")
    api.act(back, "seats/take", {"seat_index": 1})
    _deliver(api, stack, leave)  # the very same event, again
    _deliver(api, stack, _participant_left(lk_name, other.identity))
    wait_until(lambda: _seated(api, host, 2) is None, "the later leave applied", timeout=10)
    assert _seated(api, host, 1) == speaker.identity


@pytest.mark.parametrize("forgery", ["unsigned", "wrong secret", "tampered body", "garbage"])
def test_unverified_webhooks_are_refused(api: StackApi, stack: LocalStack,
                                         forgery: str) -> None:
    room, host = api.audio_room(seats=2)
    speaker = api.join(unique("speaker"), room, "audio_room")
    api.act(speaker, "seats/take", {"seat_index": 1})
    body = _participant_left(livekit_room_name(api.main.app_id, room), speaker.identity)
    headers = _signed(stack, body)
    data: str | bytes = body
    if forgery == "unsigned":
        headers.pop("Authorization")
    elif forgery == "wrong secret":
        headers = _signed(stack, body, secret="s" * 48)
    elif forgery == "tampered body":
        data = body.replace(speaker.identity, host.identity)
    else:
        data = b"\xff\x00 not json"
    assert_error(api.request("POST", f"{API}/livekit/webhook", data=data, headers=headers),
                 401, "unauthenticated")
    assert api.seats(host)["seats"][1]["occupant"] == speaker.identity


def test_webhook_for_an_unknown_room_is_a_no_op(api: StackApi, stack: LocalStack) -> None:
    body = _participant_left("nobody__nowhere", "ghost")
    answer = api.request("POST", f"{API}/livekit/webhook", data=body,
                         headers=_signed(stack, body))
    assert answer.status_code == 200, answer.text


# ----------------------------------------------------------------------------- secrets


def test_secrets_are_not_on_the_engine_command_line(stack: LocalStack) -> None:
    pid = stack.engine_pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        pytest.skip("no /proc on this platform")
    assert find_secrets(stack, cmdline.read_bytes().decode(errors="replace")) == []


def test_no_secret_in_any_response_or_the_engine_log(api: StackApi, stack: LocalStack) -> None:
    """Provoke every kind of answer (successes, each error class, the document), then scan
    everything the engine said to clients this session and everything it logged."""
    verified = api.app("verified")
    identity = unique("leaky")
    api.post(f"{API}/token", {"app_id": verified.app_id, "app_key": verified.app_key,
                              "identity": identity, "signature": "0" * 64,
                              "room_name": unique("r"), "stream_type": "audio_room"})
    api.post(f"{API}/auth", {"app_id": verified.app_id, "app_key": "wrong",
                             "identity": identity})
    room, host = api.audio_room()
    api.post(api.room(room, "seats/take"), {"seat_index": "x"}, bearer=host.bearer)
    api.post(api.room(room, "seats/take"), {"seat_index": 99}, bearer=host.bearer)
    api.request("POST", f"{API}/livekit/webhook", data="{}", headers={"Authorization": "x"})
    api.get(f"{API}/openapi.json")
    api.get("/healthz")
    caller = api.bearer(unique("caller"))
    api.create_call(caller, unique("callee"), "video_call")
    assert len(secrets_of(stack)) >= 3
    for body in api.bodies:
        assert find_secrets(stack, body) == [], body[:200]
    log = stack.log_path.read_text(errors="replace")
    assert log, "the engine log is empty: nothing was checked"
    assert find_secrets(stack, log) == []
