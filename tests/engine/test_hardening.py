"""The engine against an attacker's input, in process (the real app over SQLite, a LiveKit
that accepts everything): names that cannot collide or look alike, no 500 from any body or
path, bounded state, reads that are rate limited, memory no client can grow, pushes that
are retried. Every probe here failed before the hardening."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_core import operations as ops
from stream_core.engine.settings import AppConfig, RateLimit
from stream_core.errors import UTDStreamException
from stream_core.limits import (
    MAX_CALL_METADATA_BYTES, MAX_RAISED_HANDS, MAX_SEAT_INVITES, MAX_SPEAK_REQUESTS,
    MAX_STAGE_MEMBERS,
)
from stream_core.names import livekit_call_name, livekit_room_name, parse_livekit_name
from stream_engine.config import EngineConfig
from stream_engine.http import SERVICE, create_app
from stream_engine.store import Store
from tests.engine.test_api_races import NullLiveKit

pytestmark = [pytest.mark.engine]

API = "/api/v1"
APP, KEY = "app-h", "k" * 32
_ROOM_TEXT = st.text(alphabet="abcXYZ019_.:-", min_size=1, max_size=20).filter(
    lambda t: t.strip("."))
_APP_TEXT = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=20)


class Engine:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def post(self, path: str, body: Any = None, bearer: str | None = None,
                   raw: bytes | None = None) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if raw is not None:
            return await self.client.post(API + path, data=raw, headers={
                **headers, "Content-Type": "application/json"})
        return await self.client.post(API + path, json=body, headers=headers)

    async def get(self, path: str, bearer: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return await self.client.get(API + path, headers=headers)

    async def join(self, identity: str, room: str = "r", kind: str = "audio_room",
                   **extra: Any) -> str:
        answer = await self.post("/token", {"app_id": APP, "app_key": KEY,
                                            "identity": identity, "room_name": room,
                                            "stream_type": kind, **extra})
        assert answer.status == 200, await answer.text()
        return str((await answer.json())["user_token"])


@pytest.fixture
async def engine(tmp_path: Any) -> AsyncIterator[Engine]:
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig(APP, KEY)],
                          signing_secret="s" * 32, token_limit=RateLimit(0, 0),
                          mutate_limit=RateLimit(0, 0), read_limit=RateLimit(0, 0))
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store, control_factory=NullLiveKit)))
    await client.start_server()
    try:
        yield Engine(client)
    finally:
        await client.close()
        store.close()


async def status(response: Any) -> tuple[int, str | None]:
    body = await response.json() if response.content_type == "application/json" else {}
    return response.status, (body.get("error") or {}).get("field")


# ----------------------------------------------------------------------------- names


def test_a_room_name_can_never_reach_a_call_room() -> None:
    call_id = "0123456789abcdef"
    assert livekit_room_name("X", f"call-{call_id}") != livekit_call_name("X", call_id)
    assert parse_livekit_name(livekit_room_name("X", f"call-{call_id}"))[1] == "room"


def test_two_apps_never_share_a_media_room() -> None:
    assert livekit_room_name("X", "b__c") != livekit_room_name("X__b", "c")
    with pytest.raises(UTDStreamException):
        livekit_room_name("X~room", "c")  # the separator is not an app id character


@given(app=_APP_TEXT, kind=st.sampled_from(["room", "call"]), name=_ROOM_TEXT)
def test_media_names_are_injective(app: str, kind: str, name: str) -> None:
    build = livekit_room_name if kind == "room" else livekit_call_name
    if kind == "call":
        name = name.replace(".", "_").replace(":", "-")
    assert parse_livekit_name(build(app, name)) == (app, kind, name)


async def test_an_audio_room_named_like_a_call_does_not_enter_the_call(
        engine: Engine) -> None:
    caller = await engine.join("ann")
    call = await (await engine.post("/calls", {"callee_identity": "ben", "type": "audio_call"},
                                    caller)).json()
    answer = await engine.post("/token", {"app_id": APP, "app_key": KEY, "identity": "eve",
                                          "room_name": call["room_name"],
                                          "stream_type": "audio_room"})
    assert answer.status == 200  # a room of its own, nothing to do with the call
    service = engine.client.server.app[SERVICE]
    assert livekit_room_name(APP, call["room_name"]) != livekit_call_name(APP, call["call_id"])
    stored = await service._store(service.store.read_call, APP, call["call_id"])
    assert stored.status.value == "initiating"


@pytest.mark.parametrize("name", ["room\n", "..", ".", "room ", " room", "ro/om", "x" * 97,
                                  "r\u200boom"])
async def test_look_alike_room_names_are_422(engine: Engine, name: str) -> None:
    answer = await engine.post("/token", {"app_id": APP, "app_key": KEY, "identity": "u",
                                          "room_name": name, "stream_type": "audio_room"})
    assert await status(answer) == (422, "room_name")


@pytest.mark.parametrize("identity", ["a\x00b", "a\nb", "bob ", "\u202eevil", "\ud800",
                                      "x" * 129])
@pytest.mark.parametrize("path", ["/auth", "/token"])
async def test_bad_identities_are_refused_on_every_mint(engine: Engine, identity: str,
                                                        path: str) -> None:
    raw = json.dumps({"app_id": APP, "app_key": KEY, "identity": identity, "room_name": "r",
                      "stream_type": "audio_room"}).encode()
    answer = await engine.post(path, raw=raw)
    assert (await status(answer))[0] in (400, 422)


async def test_a_lone_surrogate_callee_is_refused_not_500(engine: Engine) -> None:
    bearer = await engine.join("ann")
    raw = b'{"callee_identity": "\\ud800", "type": "audio_call"}'
    assert (await status(await engine.post("/calls", bearer=bearer, raw=raw)))[0] in (400, 422)


@pytest.mark.parametrize("path", ["/token", "/calls", "/rooms/r/seats/take"])
async def test_deeply_nested_bodies_are_400(engine: Engine, path: str) -> None:
    bearer = await engine.join("ann")
    raw = b"[" * 20_000 + b"]" * 20_000  # under the size cap, far past the recursion limit
    assert await status(await engine.post(path, bearer=bearer, raw=raw)) == (400, "body")


async def test_oversized_bodies_are_refused(engine: Engine) -> None:
    raw = json.dumps({"callee_identity": "b", "type": "audio_call",
                      "metadata": {"x": "y" * 100_000}}).encode()
    assert (await engine.post("/calls", bearer=await engine.join("ann"), raw=raw)).status == 413


# ----------------------------------------------------------------------------- no 500

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
_FIELDS = st.sampled_from(["identity", "room_name", "stream_type", "seat_index", "seat_count",
                           "seat_mode", "callee_identity", "type", "metadata", "request_id",
                           "locked", "muted", "mode_id", "app_id", "app_key", "role", "name"])
_BODIES = st.dictionaries(_FIELDS, _JSON | st.text(), max_size=6) | _JSON
_SEGMENTS = st.text(min_size=1, max_size=30) | st.sampled_from(["r", "lobby", "0123456789abcdef"])


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_no_input_makes_a_500(tmp_path: Any, data: st.DataObject) -> None:
    """Arbitrary JSON and Unicode at every route, with and without a valid bearer."""
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig(APP, KEY)],
                          signing_secret="s" * 32)
    store = Store(f"sqlite:///{tmp_path / 'fuzz.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store, control_factory=NullLiveKit)))
    await client.start_server()
    try:
        engine = Engine(client)
        bearer = await engine.join("host", role="host", seat_count=4)
        for _ in range(6):
            op = data.draw(st.sampled_from(ops.OPERATIONS))
            params = {p: data.draw(_SEGMENTS) for p in op.path_params}
            path = op.url.format_map({k: _quote(v) for k, v in params.items()})
            body = data.draw(_BODIES)
            if op.credentials is ops.Credentials.APP and isinstance(body, dict) \
                    and data.draw(st.booleans()):
                body.update(app_id=APP, app_key=KEY)
            headers = {"Authorization": f"Bearer {bearer}"} if data.draw(st.booleans()) else {}
            raw = json.dumps(body).encode() if data.draw(st.booleans()) else \
                json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
            answer = await client.request(op.http, path, data=raw, headers={
                **headers, "Content-Type": "application/json"},
                params={"timeout": "0"} if op.query else None)
            assert answer.status < 500, (op.name, path, raw[:200], await answer.text())
    finally:
        await client.close()
        store.close()


def _quote(segment: str) -> str:
    from urllib.parse import quote
    return quote(segment.encode("utf-8", "surrogatepass"), safe="")


# ----------------------------------------------------------------------------- caps


async def test_every_list_stops_at_its_cap_with_409(engine: Engine) -> None:
    host = await engine.join("host", "grid", role="host", seat_count=2, seat_mode="request")
    for i in range(MAX_SPEAK_REQUESTS):
        bearer = await engine.join(f"req{i}", "grid")
        assert (await engine.post("/rooms/grid/seats/request", {}, bearer)).status == 200
    late = await engine.join("late", "grid")
    answer = await engine.post("/rooms/grid/seats/request", {}, late)
    assert answer.status == 409 and (await answer.json())["error"]["code"] == "limit_reached"
    for i in range(MAX_SEAT_INVITES):
        await engine.join(f"inv{i}", "grid")
        ok = await engine.post("/rooms/grid/seats/invite", {"identity": f"inv{i}"}, host)
        assert ok.status == 200, await ok.text()
    await engine.join("one-more", "grid")
    answer = await engine.post("/rooms/grid/seats/invite", {"identity": "one-more"}, host)
    assert answer.status == 409

    stage_host = await engine.join("star", "show", "live_stream", role="host")
    for i in range(MAX_RAISED_HANDS):
        bearer = await engine.join(f"hand{i}", "show", "live_stream")
        assert (await engine.post("/rooms/show/stage/request", {}, bearer)).status == 200
    answer = await engine.post("/rooms/show/stage/request", {},
                               await engine.join("hand-late", "show", "live_stream"))
    assert answer.status == 409
    for i in range(MAX_STAGE_MEMBERS):
        ok = await engine.post("/rooms/show/stage/invite", {"identity": f"hand{i}"}, stage_host)
        assert ok.status == 200, await ok.text()
    answer = await engine.post("/rooms/show/stage/invite", {"identity": "hand-late"},
                               stage_host)
    assert answer.status == 409


async def test_call_metadata_is_capped(engine: Engine) -> None:
    bearer = await engine.join("ann")
    big = {"blob": "x" * MAX_CALL_METADATA_BYTES}
    answer = await engine.post("/calls", {"callee_identity": "ben", "type": "audio_call",
                                          "metadata": big}, bearer)
    assert await status(answer) == (422, "metadata")


# ----------------------------------------------------------------------------- memory, reads


async def test_reads_of_invented_rooms_leave_no_memory_behind(engine: Engine) -> None:
    """4,000 reads of invented room names (the probe grew the engine by 26 MiB, a lock per
    name): the engine keeps nothing. Measured in this process with the answers released at
    once (the test client would keep every response), after a warm-up of every code path."""
    bearer = await engine.join("prober")
    service = engine.client.server.app[SERVICE]
    headers = {"Authorization": f"Bearer {bearer}"}

    async def probe(session: aiohttp.ClientSession, names: range, tag: str) -> None:
        for i in names:
            url = engine.client.make_url(f"{API}/rooms/{tag * 80}-{i}/seats")
            async with session.get(url, headers=headers) as answer:
                assert answer.status == 404

    async with aiohttp.ClientSession() as session:
        await probe(session, range(500), "w")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await probe(session, range(4000), "n")
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert len(service._locks) == 0
    # a lock (or any entry) per name would keep several MiB; a few hundred KiB of buffers
    # and caches in flight is what any 4,000 requests leave until the next collection
    assert grown < 1024 * 1024, f"{grown} bytes kept after 4,000 reads of invented rooms"


async def test_reads_are_rate_limited(tmp_path: Any) -> None:
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig(APP, KEY)],
                          signing_secret="s" * 32, read_limit=RateLimit(1.0, 3))
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store, control_factory=NullLiveKit)))
    await client.start_server()
    try:
        engine = Engine(client)
        bearer = await engine.join("reader")
        answers = [(await engine.get("/rooms/r/seats", bearer)).status for _ in range(5)]
        assert answers[:3] == [200, 200, 200] and answers[-1] == 429
    finally:
        await client.close()
        store.close()


# ----------------------------------------------------------------------------- pushes


class RefusingLiveKit(NullLiveKit):
    """Refuses the first ``n`` state pushes the way LiveKit refuses (not 'not found')."""

    def __init__(self, refusals: int = 2) -> None:
        self.refusals = refusals
        self.pushed: list[str] = []
        self.landed = asyncio.Event()

    async def push_state(self, room: str, state: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise UTDStreamException("LiveKit refused", status_code=502,
                                     code="livekit_internal")
        self.pushed.append(state)
        self.landed.set()


async def test_a_refused_push_is_kept_and_retried_until_it_lands(tmp_path: Any,
                                                                 caplog: Any) -> None:
    """The push stays in the outbox (committed with the change) and the outbox's own loop
    retries it with backoff: the request that made the change is not held up by it."""
    control = RefusingLiveKit()
    config = EngineConfig(state_dir=tmp_path, apps=[AppConfig(APP, KEY)],
                          signing_secret="s" * 32)
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = TestClient(TestServer(create_app(config, store=store,
                                              control_factory=lambda: control)))
    await client.start_server()
    try:
        engine = Engine(client)
        host = await engine.join("host", role="host", seat_count=2)
        answer = await engine.post("/rooms/r/seats/take", {"seat_index": 0}, host)
        assert answer.status == 200
        await asyncio.wait_for(control.landed.wait(), 10)
        # the applier that pushed settles its queue under the room's lock: wait our turn
        await client.server.app[SERVICE].outbox.drain(livekit_room_name(APP, "r"))
        assert control.refusals == 0
        assert json.loads(control.pushed[-1])["seats"]["seats"][0]["occupant"] == "host"
        assert "kept for a retry" in caplog.text
        assert store.rooms_with_due_effects(float("inf"), 10) == []  # nothing left behind
    finally:
        await client.close()
        store.close()
