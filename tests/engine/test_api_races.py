"""Concurrency and crash recovery of the engine, on SQLite and (when it can run) PostgreSQL.

Races are real: N threads, each with its own HTTP connection and bearer, released together
by a ``threading.Barrier``. Crash recovery is real too: the engine process is killed with
SIGKILL and started again on the same database; what it acknowledged before must be there.
Two engine processes on one database show that the database, not the in-process room lock,
is what serializes. At the end, in-process tests of the engine service force interleavings
no HTTP client can (a call created between a reader's look and its wait).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from stream_engine.config import AppConfig, EngineConfig
from stream_core import operations as ops
from stream_core.engine.service import Caller, EngineService
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.ports import MediaParticipant, RoomSetup
from stream_engine.bearers import JwtBearers
from stream_devstack.stack import LocalStack, free_port
from stream_engine.store import Store
from stream_core.models import UTDStreamType
from stream_core.wire import TokenRequestSchema, load
from tests.engine.stack_fixtures import (
    API, Member, StackApi, assert_no_secrets_leaked, find_secrets, start_stack, store_of,
    unique, wait_until,
)

pytestmark = [pytest.mark.engine]
#: Tests that run a whole stack (the in-process service tests at the end need no LiveKit).
stack_test = pytest.mark.livekit

TAKERS = 12
#: Short enough to wait out after a crash, long enough to answer a call in the race tests.
RING_TIMEOUT = 3.0
BARRIER_TIMEOUT = 20.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_stack(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_cluster").create_database()
    with start_stack(database_url=url, ring_timeout=RING_TIMEOUT) as stack:
        yield stack


@pytest.fixture(scope="module")
def db_api(db_stack: LocalStack) -> Iterator[StackApi]:
    client = StackApi(db_stack)
    yield client
    assert_no_secrets_leaked(db_stack, client)


def all_at_once(count: int, task: Callable[[int], requests.Response]) -> list[requests.Response]:
    """Run ``task(i)`` for ``i < count`` in ``count`` threads released by one barrier."""
    barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)

    def run(i: int) -> requests.Response:
        barrier.wait()
        return task(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count), timeout=BARRIER_TIMEOUT + 30))


def error_code(response: requests.Response) -> str | None:
    if response.status_code < 400:
        return None
    code: str = response.json()["error"]["code"]
    return code


# ----------------------------------------------------------------------------- seats


@stack_test
def test_one_seat_many_takers_exactly_one_wins(db_api: StackApi) -> None:
    room, host = db_api.audio_room(seats=4)
    takers = [db_api.join(unique(f"taker{i}"), room, "audio_room") for i in range(TAKERS)]
    base = db_api.seats(host)["version"]
    for seat in (1, 2, 3):  # three rounds, each on a fresh seat, the losers try again
        contenders = [t for t in takers if t.identity not in _seated(db_api, host)]
        answers = all_at_once(len(contenders), lambda i: db_api.post(
            db_api.room(room, "seats/take"), {"seat_index": seat}, bearer=contenders[i].bearer))
        statuses = Counter(a.status_code for a in answers)
        assert statuses == {200: 1, 409: len(contenders) - 1}, [a.text for a in answers]
        assert {error_code(a) for a in answers if a.status_code == 409} == {"seat_taken"}
        (winner,) = [c for c, a in zip(contenders, answers) if a.status_code == 200]
        grid = db_api.seats(host)
        assert grid["seats"][seat]["occupant"] == winner.identity
    grid = db_api.seats(host)
    seated = [s["occupant"] for s in grid["seats"] if s["occupant"]]
    assert len(seated) == len(set(seated)) == 3
    assert grid["version"] == base + 3  # three takes, three versions: no write lost


def _seated(api: StackApi, host: Member) -> set[str]:
    return {s["occupant"] for s in api.seats(host)["seats"] if s["occupant"]}


@stack_test
def test_more_takers_than_seats(db_api: StackApi) -> None:
    room, host = db_api.audio_room(seats=4)
    takers = [db_api.join(unique(f"taker{i}"), room, "audio_room") for i in range(TAKERS)]
    answers = all_at_once(TAKERS, lambda i: db_api.post(
        db_api.room(room, "seats/take"), {}, bearer=takers[i].bearer))
    winners = {t.identity for t, a in zip(takers, answers) if a.status_code == 200}
    assert len(winners) == 4, [a.text for a in answers]
    assert {error_code(a) for a in answers if a.status_code != 200} == {"seat_taken"}
    assert _seated(db_api, host) == winners


@stack_test
def test_concurrent_joins_lose_no_one(db_api: StackApi) -> None:
    """Joins into one brand-new room (whoever comes first creates it) all stick."""
    room = unique("crowd")
    identities = [unique(f"fan{i}") for i in range(TAKERS)]
    answers = all_at_once(TAKERS, lambda i: db_api.mint(identities[i], room, "live_stream"))
    assert [a.status_code for a in answers] == [200] * TAKERS, [a.text for a in answers]
    bearers = [a.json()["user_token"] for a in answers]
    # presence is what lets each act: every fan can raise a hand, all at once
    raised = all_at_once(TAKERS, lambda i: db_api.post(
        db_api.room(room, "stage/request"), bearer=bearers[i]))
    assert [a.status_code for a in raised] == [200] * TAKERS, [a.text for a in raised]
    stage = db_api.get(db_api.room(room, "stage"), bearer=bearers[0]).json()
    assert sorted(stage["hands"]) == sorted(identities)


@stack_test
def test_concurrent_takes_of_distinct_seats_all_succeed(db_api: StackApi) -> None:
    room, host = db_api.audio_room(seats=TAKERS)
    members = all_at_once(TAKERS, lambda i: db_api.mint(unique(f"m{i}"), room, "audio_room"))
    assert [m.status_code for m in members] == [200] * TAKERS
    bearers = [m.json()["user_token"] for m in members]
    base = db_api.seats(host)["version"]
    answers = all_at_once(TAKERS, lambda i: db_api.post(
        db_api.room(room, "seats/take"), {"seat_index": i}, bearer=bearers[i]))
    assert [a.status_code for a in answers] == [200] * TAKERS, [a.text for a in answers]
    grid = db_api.seats(host)
    assert all(s["occupant"] for s in grid["seats"])
    assert grid["version"] == base + TAKERS


@stack_test
def test_accept_and_reject_race_has_one_winner(db_api: StackApi) -> None:
    caller, callee = unique("caller"), unique("callee")
    caller_bearer, callee_bearer = db_api.bearer(caller), db_api.bearer(callee)
    call = db_api.create_call(caller_bearer, callee)
    actions = ["accept", "reject"] * 4
    answers = all_at_once(len(actions), lambda i: db_api.call_action(
        callee_bearer, call["call_id"], actions[i]))
    winners = [(act, a) for act, a in zip(actions, answers) if a.status_code == 200]
    assert len(winners) == 1, [a.text for a in answers]
    assert {error_code(a) for a in answers if a.status_code != 200} == {"illegal_transition"}
    final = db_api.get_call(caller_bearer, call["call_id"])["status"]
    assert final == {"accept": "active", "reject": "rejected"}[winners[0][0]]


# ----------------------------------------------------------------------------- two engines


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def second_engine(stack: LocalStack) -> Iterator[str]:
    """Another engine process on the stack's database and secrets; its base URL."""
    port = free_port()
    args, env = stack.engine_invocation(port)
    log_path = stack.state_dir / "engine-2.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: proc.poll() is not None or _healthy(base),
                       "the second engine to answer", timeout=30)
            assert proc.poll() is None, log_path.read_text(errors="replace")[-2000:]
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert find_secrets(stack, log_path.read_text(errors="replace")) == []


@stack_test
def test_two_engines_on_one_database_still_have_one_winner(db_api: StackApi,
                                                          db_stack: LocalStack) -> None:
    """The in-process room lock cannot help here: only the database serializes the takers."""
    with second_engine(db_stack) as other:
        room, host = db_api.audio_room(seats=4)
        takers = [db_api.join(unique(f"taker{i}"), room, "audio_room") for i in range(TAKERS)]
        bases = [db_stack.base_url, other]

        def take(who: list[Member], i: int, body: dict[str, Any]) -> requests.Response:
            return db_api.post(f"{bases[i % 2]}{db_api.room(room, 'seats/take')}", body,
                               bearer=who[i].bearer)

        answers = all_at_once(TAKERS, lambda i: take(takers, i, {"seat_index": 0}))
        assert Counter(a.status_code for a in answers) == {200: 1, 409: TAKERS - 1}, [
            a.text for a in answers]
        assert {error_code(a) for a in answers if a.status_code == 409} == {"seat_taken"}
        losers = [t for t, a in zip(takers, answers) if a.status_code != 200]
        answers = all_at_once(len(losers), lambda i: take(losers, i, {}))
        winners = {t.identity for t, a in zip(losers, answers) if a.status_code == 200}
        assert len(winners) == 3, [a.text for a in answers]  # seats 1-3 were left
        assert {error_code(a) for a in answers if a.status_code != 200} == {"seat_taken"}
        assert len(_seated(db_api, host)) == 4
        # both engines read the same truth
        mine = db_api.get(db_api.room(room, "seats"), bearer=host.bearer).json()
        theirs = db_api.get(f"{other}{db_api.room(room, 'seats')}", bearer=host.bearer).json()
        assert mine == theirs


# ----------------------------------------------------------------------------- crashes


def _snapshot(api: StackApi, reads: list[tuple[str, str]]) -> list[Any]:
    out = []
    for path, bearer in reads:
        answer = api.get(path, bearer=bearer)
        assert answer.status_code == 200, answer.text
        out.append(answer.json())
    return out


@stack_test
def test_state_survives_kill_9(db_api: StackApi, db_stack: LocalStack) -> None:
    audio, host = db_api.audio_room(seats=4, mode="request")
    speaker = db_api.join(unique("speaker"), audio, "audio_room")
    db_api.act(host, "seats/invite", {"identity": speaker.identity, "seat_index": 2})
    db_api.act(speaker, "seats/take")
    db_api.act(host, "seats/mute", {"seat_index": 2})
    db_api.act(host, "seats/lock", {"seat_index": 3})
    asker = db_api.join(unique("asker"), audio, "audio_room")
    db_api.act(asker, "seats/request", {"seat_index": 1})
    banned = db_api.join(unique("banned"), audio, "audio_room")
    db_api.act(host, "ban", {"identity": banned.identity})
    live, stage_host = db_api.live_stream()
    guest = db_api.join(unique("guest"), live, "live_stream")
    db_api.act(stage_host, "stage/invite", {"identity": guest.identity})
    hand = db_api.join(unique("hand"), live, "live_stream")
    db_api.act(hand, "stage/request")
    caller, callee = unique("caller"), unique("callee")
    caller_bearer, callee_bearer = db_api.bearer(caller), db_api.bearer(callee)
    call = db_api.create_call(caller_bearer, callee)
    assert db_api.call_action(callee_bearer, call["call_id"], "accept").status_code == 200

    reads = [(db_api.room(audio, "seats"), host.bearer),
             (db_api.room(live, "stage"), stage_host.bearer),
             (f"{API}/calls/{call['call_id']}", caller_bearer)]
    before = _snapshot(db_api, reads)

    db_stack.kill_engine()
    db_stack.restart_engine()
    db_api.reset()

    assert _snapshot(db_api, reads) == before  # bearers from before the crash still work
    assert db_api.mint(banned.identity, audio, "audio_room").status_code == 403
    # presence survived too: the asker can act, and versions go on from where they were
    (request,) = before[0]["requests"]
    grid = db_api.act(host, "seats/approve", {"request_id": request["request_id"]})
    assert grid["seats"][1]["occupant"] == asker.identity
    assert grid["version"] == before[0]["version"] + 1
    stage = db_api.act(hand, "stage/lower")
    assert stage["version"] == before[1]["version"] + 1


@stack_test
def test_acknowledged_writes_survive_a_kill_mid_stream(db_api: StackApi,
                                                       db_stack: LocalStack) -> None:
    """A writer moves between seats as fast as it can; the engine is killed under it.
    Every move it got a 200 for is on disk; at most the one in flight is extra."""
    room, host = db_api.audio_room(seats=8)
    mover = db_api.join(unique("mover"), room, "audio_room")
    db_api.act(mover, "seats/take", {"seat_index": 0})
    acked: list[tuple[int, int]] = []  # (version, seat)
    enough = threading.Event()
    stop = threading.Event()

    def write() -> None:
        seat = 0
        while not stop.is_set():
            seat = (seat + 1) % 8
            try:
                answer = db_api.post(db_api.room(room, "seats/move"), {"seat_index": seat},
                                     bearer=mover.bearer, timeout=5)
            except requests.RequestException:
                return  # the engine died under this request
            if answer.status_code != 200:
                return
            acked.append((answer.json()["version"], seat))
            if len(acked) >= 10:
                enough.set()

    writer = threading.Thread(target=write, name="seat-mover")
    writer.start()
    try:
        assert enough.wait(timeout=20), "the writer made no progress"
        db_stack.kill_engine()
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not writer.is_alive()
    db_stack.restart_engine()
    db_api.reset()

    last_version, last_seat = acked[-1]
    grid = db_api.seats(host)
    where = [s["index"] for s in grid["seats"] if s["occupant"] == mover.identity]
    assert grid["version"] in (last_version, last_version + 1), (grid["version"], acked[-3:])
    expected_seat = last_seat if grid["version"] == last_version else (last_seat + 1) % 8
    assert where == [expected_seat]


@stack_test
def test_ring_deadline_survives_a_crash(db_api: StackApi, db_stack: LocalStack) -> None:
    """The ring timer is re-armed from the database: a call that was ringing when the
    engine died is marked missed by the new engine, with nobody asking."""
    app = db_stack.apps[0]
    caller, callee = unique("caller"), unique("callee")
    caller_bearer = db_api.bearer(caller)
    started = time.monotonic()
    call = db_api.create_call(caller_bearer, callee)
    db_stack.kill_engine()
    db_stack.restart_engine()
    db_api.reset()
    store = store_of(db_stack)
    try:
        wait_until(lambda: store.read_call(app.app_id, call["call_id"]).status.value == "missed",
                   "the restarted engine's ring timer", timeout=RING_TIMEOUT + 15)
    finally:
        store.close()
    assert time.monotonic() - started >= RING_TIMEOUT - 0.2
    assert db_api.get_call(caller_bearer, call["call_id"])["status"] == "missed"


# ----------------------------------------------------------------------------- in-process
# Interleavings an HTTP client cannot force: the engine service runs in this event loop on
# a real SQLite store and a LiveKit that does nothing; a store that runs a hook right after
# a read plays the other party at the worst possible moment.


class NullLiveKit:
    """A LiveKit that is always there and does nothing (a ControlPort the service awaits)."""

    client_url = "ws://nowhere"

    async def mint_token(self, *, identity: str, room: str, name: str | None,
                         sources: frozenset[str], ttl: float, hidden: bool = False,
                         setup: RoomSetup | None = None) -> str:
        return f"token-{identity}"

    async def create_room(self, name: str, **kwargs: Any) -> None:
        return None

    async def close_room(self, room: str) -> None:
        return None

    async def push_state(self, room: str, state: str) -> None:
        return None

    async def set_permissions(self, room: str, identity: str, sources: frozenset[str]) -> None:
        return None

    async def remove_participant(self, room: str, identity: str) -> None:
        return None

    async def get_participant(self, room: str, identity: str) -> MediaParticipant | None:
        return None

    async def aclose(self) -> None:
        return None


class RecordingLiveKit(NullLiveKit):
    """Keeps what LiveKit would hold: each identity's current grant. ``hold`` keeps the
    next grant back until set, so a later change could overtake it if the engine let it."""

    def __init__(self) -> None:
        self.grants: dict[str, tuple[bool, tuple[str, ...]]] = {}
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def set_permissions(self, room: str, identity: str, sources: frozenset[str]) -> None:
        if self.hold is not None:
            gate, self.hold = self.hold, None
            self.holding.set()
            await gate.wait()
        self.grants[identity] = (bool(sources), tuple(sorted(sources)))


class HookedStore(Store):
    """A real store; ``after[name]`` runs once in the worker thread right after that read,
    before its (now stale) answer reaches the service."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.after: dict[str, Callable[[], None]] = {}
        self.failures: dict[str, int] = {}

    def _then(self, name: str, answer: Any) -> Any:
        hook = self.after.pop(name, None)
        if hook is not None:
            hook()
        if self.failures.get(name):
            self.failures[name] -= 1
            raise UTDStreamException(f"{name}: the database is unreachable (simulated)",
                                     status_code=503, code=ErrorCode.UNAVAILABLE)
        return answer

    def incoming_calls(self, app_id: str, callee: str) -> Any:
        return self._then("incoming_calls", super().incoming_calls(app_id, callee))

    def next_ring_deadline(self) -> Any:
        return self._then("next_ring_deadline", super().next_ring_deadline())

    def due_calls(self, now: float) -> Any:
        return self._then("due_calls", super().due_calls(now))


APP = AppConfig("app-inproc", "k" * 32)


@pytest.fixture
def livekit() -> RecordingLiveKit:
    return RecordingLiveKit()


@pytest.fixture
def service(tmp_path: Any, livekit: RecordingLiveKit) -> Iterator[EngineService]:
    config = EngineConfig(state_dir=tmp_path, apps=[APP], signing_secret="s" * 32,
                          livekit_api_secret="l" * 32, ring_timeout=0.5)
    store = HookedStore(f"sqlite:///{tmp_path / 'engine.db'}")
    yield EngineService(config.service_settings(), store, livekit,
                        JwtBearers(config.signing_secret, ttl=config.bearer_ttl))
    store.close()


async def _admit(service: EngineService, identity: str, room: str, **extra: Any) -> Caller:
    body = load(TokenRequestSchema(), {"app_id": APP.app_id, "app_key": APP.app_key,
                                       "identity": identity, "room_name": room,
                                       "stream_type": "audio_room", **extra})
    await service.mint_token(**body)
    return Caller(APP.app_id, identity)


def _call_from(service: EngineService, loop: Any, caller: str, callee: str) -> Callable[[], None]:
    """Create a call from a worker thread, waiting until the service has fully handled it."""
    def create() -> None:
        asyncio.run_coroutine_threadsafe(service.create_call(
            Caller(APP.app_id, caller), callee_identity=callee,
            type=UTDStreamType.AUDIO_CALL), loop).result(10)
    return create


async def _missed(store: Store, call_id: str, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        call = await asyncio.to_thread(store.read_call, APP.app_id, call_id)
        if call.status.value == "missed":
            return True
        await asyncio.sleep(0.05)  # bounded poll of the database
    return False


async def test_long_poll_sees_a_call_created_while_it_was_looking(
        service: EngineService) -> None:
    """The call is created (and announced) between the poller's read and its wait."""
    store = service.store
    assert isinstance(store, HookedStore)
    store.after["incoming_calls"] = _call_from(service, asyncio.get_running_loop(),
                                               "alice", "bob")
    call = await asyncio.wait_for(
        service.wait_incoming_call(Caller(APP.app_id, "bob"), timeout=3.0), 10)
    assert call is not None and call.caller_identity == "alice"


async def test_ring_timer_sees_a_call_created_while_it_was_arming(
        service: EngineService) -> None:
    """The call is created (and the timer woken) between the timer's read of the next
    deadline and its wait: the timer must still mark it missed."""
    store = service.store
    assert isinstance(store, HookedStore)
    loop = asyncio.get_running_loop()
    created = asyncio.Event()
    ids: list[str] = []

    def create() -> None:
        _call_from(service, loop, "carol", "dave")()
        ids.extend(c.call_id for c in store.incoming_calls(APP.app_id, "dave"))
        loop.call_soon_threadsafe(created.set)

    store.after["next_ring_deadline"] = create
    timer = asyncio.create_task(service.run_ring_timer())
    try:
        await asyncio.wait_for(created.wait(), 10)
        assert await _missed(store, ids[0], within=5.0), "the timer slept through it"
    finally:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)


async def test_ring_timer_survives_a_database_error(service: EngineService) -> None:
    store = service.store
    assert isinstance(store, HookedStore)
    timer = asyncio.create_task(service.run_ring_timer())
    try:
        call = await service.create_call(Caller(APP.app_id, "erin"), callee_identity="frank",
                                         type=UTDStreamType.AUDIO_CALL)
        store.failures["due_calls"] = 1  # the timer's first look at due calls fails
        assert await _missed(store, call.call_id, within=8.0), "the timer died"
        assert not timer.done()
    finally:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)



async def test_grants_reach_livekit_in_commit_order(service: EngineService,
                                                   livekit: RecordingLiveKit) -> None:
    """Mute then unmute: while the mute's revoke is still on its way to LiveKit, the unmute
    commits. LiveKit must end up with what the database says (unmuted: the microphone)."""
    host = await _admit(service, "hank", "grid", role="host", seat_count=2)
    sam = await _admit(service, "sam", "grid")
    await service.room_op(ops.TAKE_SEAT, sam, "grid", seat_index=1)
    assert livekit.grants["sam"] == (True, ("microphone",))
    gate = livekit.hold = asyncio.Event()
    mute = asyncio.create_task(service.room_op(ops.MUTE_SEAT, host, "grid", seat_index=1,
                                               muted=True))
    await asyncio.wait_for(livekit.holding.wait(), 10)  # the revoke is in flight
    unmute = asyncio.create_task(service.room_op(ops.MUTE_SEAT, host, "grid", seat_index=1,
                                                 muted=False))
    await asyncio.wait({unmute}, timeout=0.5)  # time for the unmute to overtake, if it can
    gate.set()
    await asyncio.wait_for(asyncio.gather(mute, unmute), 10)
    grid = await service.room_op(ops.GET_SEATS, sam, "grid")
    assert grid.seats[1].muted is False
    assert livekit.grants["sam"] == (True, ("microphone",))
