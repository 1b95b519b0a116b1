"""Fixtures and helpers for the engine's end-to-end tests: real livekit-server, real engine.

Why real: token grants, permission flips, webhooks, database races and crash recovery are
behaviours of the whole stack; a fake would only restate our assumptions. Stacks cost ~1 s
each, so there are few and they are shared: tests isolate themselves with unique room names
and identities (see :func:`unique`), never by restarting anything.

* ``stack`` / ``api`` (session): SQLite, three apps (``main``, ``other``, ``verified`` with a
  server secret), generous rate limits, the default 30 s ring timeout.
* ``quick_stack`` / ``quick_api`` (session): a 1.5 s ring timeout and tiny rate limits.
* ``pg_cluster`` (session): a throw-away PostgreSQL 15 cluster on a free loopback port, for
  the database-backend tests (skipped with a reason when it cannot run: PostgreSQL is
  optional, SQLite is not).

Policy for a missing livekit-server binary (same as ``conftest.livekit_server``): skip on a
developer machine, fail in CI. Every wait in these helpers is bounded.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from livekit import rtc

from stream_engine.bearers import identity_signature
from stream_core.engine.settings import AppConfig
from stream_engine.livekit_control import LiveKitControl
from tests.support import require_livekit_binary
from stream_devstack.postgres import PostgresCluster
from stream_devstack.stack import LocalStack
from stream_engine.store import Store

__all__ = [
    "StackApi", "Member", "EventLog", "PostgresCluster", "connected", "unique", "start_stack",
    "secrets_of", "find_secrets", "assert_no_secrets_leaked", "store_of", "wait_until",
    "require_livekit_binary", "livekit_control", "assert_error",
    "stack", "api", "quick_stack", "quick_api", "pg_cluster",
    "QUICK_RING_TIMEOUT", "QUICK_RATE", "EVENT_TIMEOUT", "WEBHOOK_TIMEOUT",
]

API = "/api/v1"
#: Ring timeout of ``quick_stack``: short enough to wait for, long enough to act within.
QUICK_RING_TIMEOUT = 1.5
#: Rate limit (per identity and kind) of ``quick_stack``: bursts of 3, then 1 per second.
QUICK_RATE = "1/3"
#: How long a test waits for one LiveKit event it caused (loopback: usually < 0.2 s).
EVENT_TIMEOUT = 10.0
#: LiveKit delivers webhooks asynchronously; a participant_left arrives well within this.
WEBHOOK_TIMEOUT = 15.0
HTTP_TIMEOUT = 20.0
#: rtc connect: per-attempt signalling timeout, the test's bound, and the grace a late
#: connect gets to settle (it is never cancelled; see :func:`connected`).
SIGNAL_CONNECT_TIMEOUT = 5.0
CONNECT_TIMEOUT = 15.0
CONNECT_GRACE = 45.0
DISCONNECT_TIMEOUT = 10.0


def unique(prefix: str) -> str:
    """A fresh room name or identity: the shared stacks are isolated by names, not restarts."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def secrets_of(stack: LocalStack) -> dict[str, str]:
    """Every secret the stack holds, by what it is: none may ever leave the engine."""
    found = {"livekit api secret": stack.livekit.api_secret,
             "engine signing secret": stack.signing_secret}
    for app in stack.apps:
        if app.server_secret:
            found[f"server secret of {app.app_id}"] = app.server_secret
    return found


def find_secrets(stack: LocalStack, text: str) -> list[str]:
    """Names of the stack's secrets that appear in ``text`` (empty: clean)."""
    return [name for name, value in secrets_of(stack).items() if value and value in text]


def store_of(stack: LocalStack) -> Store:
    """A second handle on the engine's database, to read what the engine committed
    without asking the engine (which might act on the request). Close it after use."""
    return Store(stack.database_url or f"sqlite:///{stack.state_dir / 'engine.db'}")


@contextmanager
def start_stack(**kwargs: Any) -> Iterator[LocalStack]:
    require_livekit_binary()
    stack = LocalStack(**kwargs).start()
    try:
        yield stack
    finally:
        stack.stop()


# ----------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Member:
    """An identity admitted to a room: its engine bearer and LiveKit token."""

    identity: str
    bearer: str
    token: str
    room: str


class StackApi:
    """requests against one stack's engine; every answer is recorded for the secret scan.

    Sessions are per thread (race tests use many threads); :meth:`reset` drops pooled
    connections after an engine restart.
    """

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.base_url = stack.base_url
        self.bodies: list[str] = []
        self._local = threading.local()

    @property
    def main(self) -> AppConfig:
        return self.stack.apps[0]

    def app(self, prefix: str) -> AppConfig:
        return next(a for a in self.stack.apps if a.app_id.startswith(prefix))

    def reset(self) -> None:
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def request(self, method: str, path: str, *, bearer: str | None = None,
                json: Any = None, data: str | bytes | None = None,
                headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                timeout: float = HTTP_TIMEOUT) -> requests.Response:
        sent = dict(headers or {})
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        response = self._session().request(method, url, json=json, data=data, headers=sent,
                                           params=params, timeout=timeout)
        self.bodies.append(response.text)
        return response

    def post(self, path: str, body: Any = None, *, bearer: str | None = None,
             **kwargs: Any) -> requests.Response:
        return self.request("POST", path, bearer=bearer, json=body if body is not None else {},
                            **kwargs)

    def get(self, path: str, *, bearer: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, bearer=bearer, **kwargs)

    # -- credentials ------------------------------------------------------------------
    def credentials(self, identity: str, app: AppConfig | None = None) -> dict[str, Any]:
        app = app or self.main
        body: dict[str, Any] = {"app_id": app.app_id, "app_key": app.app_key,
                                "identity": identity}
        if app.server_secret:
            body["signature"] = identity_signature(app.server_secret, identity)
        return body

    def mint(self, identity: str, room: str, stream_type: str, *, app: AppConfig | None = None,
             role: str = "audience", **extra: Any) -> requests.Response:
        body = {**self.credentials(identity, app), "room_name": room,
                "stream_type": stream_type, "role": role, **extra}
        return self.post(f"{API}/token", body)

    def join(self, identity: str, room: str, stream_type: str, **kwargs: Any) -> Member:
        """Mint a room token (asserting 200): ``identity`` is now present in ``room``."""
        response = self.mint(identity, room, stream_type, **kwargs)
        assert response.status_code == 200, response.text
        answer = response.json()
        return Member(identity, answer["user_token"], answer["token"], room)

    def bearer(self, identity: str, app: AppConfig | None = None) -> str:
        response = self.post(f"{API}/auth", self.credentials(identity, app))
        assert response.status_code == 200, response.text
        token: str = response.json()["user_token"]
        return token

    # -- rooms and calls --------------------------------------------------------------
    def room(self, room: str, action: str) -> str:
        return f"{API}/rooms/{room}/{action}"

    def seats(self, member: Member) -> dict[str, Any]:
        response = self.get(self.room(member.room, "seats"), bearer=member.bearer)
        assert response.status_code == 200, response.text
        grid: dict[str, Any] = response.json()
        return grid

    def act(self, member: Member, action: str, body: Any = None) -> dict[str, Any]:
        """POST a room action as ``member``, asserting 200; the room's new snapshot."""
        response = self.post(self.room(member.room, action), body, bearer=member.bearer)
        assert response.status_code == 200, f"{action}: {response.status_code} {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    def audio_room(self, host: str | None = None, *, seats: int = 4, mode: str = "free",
                   **kwargs: Any) -> tuple[str, Member]:
        room = unique("audio")
        member = self.join(host or unique("host"), room, "audio_room", role="host",
                           seat_count=seats, seat_mode=mode, **kwargs)
        return room, member

    def live_stream(self, host: str | None = None, **kwargs: Any) -> tuple[str, Member]:
        room = unique("live")
        return room, self.join(host or unique("host"), room, "live_stream", role="host",
                               **kwargs)

    def create_call(self, caller_bearer: str, callee: str,
                    call_type: str = "audio_call") -> dict[str, Any]:
        response = self.post(f"{API}/calls", {"callee_identity": callee, "type": call_type},
                             bearer=caller_bearer)
        assert response.status_code == 200, response.text
        call: dict[str, Any] = response.json()
        return call

    def call_action(self, bearer: str, call_id: str, action: str) -> requests.Response:
        return self.post(f"{API}/calls/{call_id}/{action}", bearer=bearer)

    def get_call(self, bearer: str, call_id: str) -> dict[str, Any]:
        response = self.get(f"{API}/calls/{call_id}", bearer=bearer)
        assert response.status_code == 200, response.text
        call: dict[str, Any] = response.json()
        return call


def assert_error(response: requests.Response, status: int | tuple[int, ...],
                 code: str | None = None) -> dict[str, Any]:
    """The status is one of ``status`` and the body is the engine's error shape."""
    allowed = (status,) if isinstance(status, int) else status
    assert response.status_code in allowed, (
        f"{response.request.method} {response.request.path_url}: expected {allowed}, got "
        f"{response.status_code} {response.text}")
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "field"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def wait_until(probe: Callable[[], Any], what: str, *, timeout: float,
               interval: float = 0.05) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds.

    For state that has no event to wait on (a database row, a REST resource): the deadline
    bounds the wait and the answer is checked, never assumed after a sleep.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ----------------------------------------------------------------------------- stacks


def _apps() -> list[AppConfig]:
    tag = secrets.token_hex(3)
    return [AppConfig(f"main-{tag}", secrets.token_hex(16)),
            AppConfig(f"other-{tag}", secrets.token_hex(16)),
            AppConfig(f"verified-{tag}", secrets.token_hex(16), secrets.token_urlsafe(24))]


def assert_no_secrets_leaked(stack: LocalStack, api: StackApi) -> None:
    """No secret of ``stack`` in its engine log or in any answer ``api`` has recorded."""
    leaks = find_secrets(stack, stack.log_path.read_text(errors="replace"))
    for body in api.bodies:
        leaks += find_secrets(stack, body)
    if leaks:
        pytest.fail(f"secrets leaked by the engine (responses or log): {sorted(set(leaks))}")


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The shared stack: SQLite, apps ``main``/``other``/``verified``, roomy limits."""
    with start_stack(apps=_apps()) as s:
        yield s


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[StackApi]:
    client = StackApi(stack)
    yield client
    assert_no_secrets_leaked(stack, client)


@pytest.fixture(scope="session")
def quick_stack() -> Iterator[LocalStack]:
    """A short ring timeout and tiny per-identity rate limits (burst 3, then 1 per second)."""
    with start_stack(apps=_apps(), ring_timeout=QUICK_RING_TIMEOUT, token_rate=QUICK_RATE,
                     mutate_rate=QUICK_RATE) as s:
        yield s


@pytest.fixture(scope="session")
def quick_api(quick_stack: LocalStack) -> Iterator[StackApi]:
    client = StackApi(quick_stack)
    yield client
    assert_no_secrets_leaked(quick_stack, client)


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """PostgreSQL for the database-backend tests; a clear skip when it cannot run here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg (3) is not installed: PostgreSQL tests skipped")
    try:
        cluster = PostgresCluster()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


# ----------------------------------------------------------------------------- livekit.rtc


@asynccontextmanager
async def connected(url: str, token: str, room: rtc.Room | None = None
                    ) -> AsyncIterator[rtc.Room]:
    """Connect a ``livekit.rtc`` room (register handlers before) and always disconnect.

    The connect runs as a task that is waited on with a timeout but never cancelled:
    cancelling it mid-handshake leaves the FFI side in a bad state. If it overruns it gets
    a grace period to settle so it can be disconnected cleanly.
    """
    room = room or rtc.Room()
    task = asyncio.ensure_future(
        room.connect(url, token, rtc.RoomOptions(connect_timeout=SIGNAL_CONNECT_TIMEOUT)))
    try:
        done, _ = await asyncio.wait({task}, timeout=CONNECT_TIMEOUT)
        if not done:
            raise AssertionError(f"Room.connect did not finish within {CONNECT_TIMEOUT}s")
        task.result()
        yield room
    finally:
        if not task.done():
            await asyncio.wait({task}, timeout=CONNECT_GRACE)
        if task.done() and not task.cancelled() and task.exception() is None:
            await asyncio.wait_for(room.disconnect(), DISCONNECT_TIMEOUT)


class EventLog:
    """Records a room's events (sync callbacks, as ``livekit.rtc`` requires) so a test can
    await the first one matching a predicate, with a deadline."""

    def __init__(self, room: rtc.Room, *names: str) -> None:
        self.items: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()
        for name in names:
            room.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.items.append((name, args))
            self._changed.set()
        return record

    async def wait_for(self, name: str, predicate: Callable[..., bool], what: str,
                       timeout: float = EVENT_TIMEOUT, *, since: int = 0) -> tuple[Any, ...]:
        """The first event named ``name`` matching ``predicate``, from the ``since``-th
        recorded on (an index into :attr:`items`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            for seen, args in self.items[since:]:
                if seen == name and predicate(*args):
                    return args
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; saw "
                                     f"{[n for n, _ in self.items]}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass


@asynccontextmanager
async def livekit_control(stack: LocalStack) -> AsyncIterator[LiveKitControl]:
    async with LiveKitControl(stack.livekit.url, stack.livekit.api_key,
                              stack.livekit.api_secret) as control:
        yield control
