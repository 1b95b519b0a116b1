"""``FakeEngine``: the real engine service over in-memory parts, as a synchronous EnginePort.

It is not a second engine: it runs :class:`~stream_core.engine.service.EngineService` (the
class the reference server runs) over a :class:`~adapters.fakes.store.MemoryStore`, a
:class:`~adapters.fakes.control.FakeControl` on the in-memory SFU and in-memory bearers.
Every rule (authentication, room operations, effects and their order, webhooks with the
replaced-connection check, ban on rejoin, grant catch-up, ring-outs, long-polls) is the
service's own, so the fake and the real engine cannot drift.

Like the server, it loads every request through the operation's wire schema and dumps
every answer through the response schema. The service runs on a private event loop in a
daemon thread (as the server runs on its own); the SFU's webhooks are handled there one at
a time, in order, as LiveKit delivers one room's webhooks. Time is injected (``clock``) and
ring timeouts fire on :meth:`tick`, so call tests are deterministic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.fakes.control import FakeControl
from adapters.fakes.sfu import FakeSFU, SfuWebhook
from adapters.fakes.store import MemoryStore
from stream_core.engine.ratelimit import RateLimiter
from stream_core.engine.service import EngineService
from stream_core.engine.settings import AppConfig, RateLimit, ServiceSettings
from stream_core.errors import UTDStreamException
from stream_core.names import livekit_room_name
from stream_core.models import UTDCall
from stream_core.operations import Credentials, Operation
from stream_core.ports import BearerPort, EnginePort, WebhookEvent
from stream_core.wire import dump, load, schema_of

__all__ = ["FakeEngine", "FakeBearers", "Limiter"]

R = TypeVar("R")
_log = logging.getLogger(__name__)

#: ``(kind, app_id, identity) -> seconds to wait`` to refuse with 429, or ``None`` to allow;
#: ``kind`` is ``"token"`` (mints) or ``"mutate"`` (changes), as the service limits them.
Limiter = Callable[[str, str, str], "float | None"]
_OFF = RateLimit(0.0, 0)


class FakeBearers:
    """Engine bearers in memory: random tokens that never expire (the fake's ``BearerPort``)."""

    def __init__(self) -> None:
        self._issued: dict[str, tuple[str, str]] = {}

    def issue(self, app_id: str, identity: str) -> str:
        token = secrets.token_urlsafe(24)
        self._issued[token] = (app_id, identity)
        return token

    def verify(self, token: str | None) -> tuple[str, str]:
        found = self._issued.get(token) if isinstance(token, str) else None
        if found is None:
            raise UTDStreamException.unauthenticated("missing or unknown user token")
        return found


class _HookLimiter(RateLimiter):
    def __init__(self, hook: Limiter) -> None:
        super().__init__({})
        self._hook = hook

    def check(self, kind: str, *key: str) -> float | None:
        return self._hook(kind, *key)


class FakeEngine:
    """The engine port, in memory, bound to one app (``app_id``/``app_key``)."""

    def __init__(self, sfu: FakeSFU, *, clock: Callable[[], float] = time.monotonic,
                 ring_timeout: float = 30.0, rate_limiter: Limiter | None = None,
                 app_id: str = "fake-app", app_key: str = "fake-key") -> None:
        self.sfu = sfu
        self.app_id, self._app_key = app_id, app_key
        self.store = MemoryStore(clock)
        self._clock = clock
        self._event_ids = itertools.count(1)
        self.control = FakeControl(sfu)
        self.bearers: BearerPort = FakeBearers()
        settings = ServiceSettings(apps=(AppConfig(app_id, app_key),), ring_timeout=ring_timeout,
                                   token_limit=_OFF, mutate_limit=_OFF)
        self.service = EngineService(
            settings, self.store, self.control, self.bearers, clock=clock,
            limiter=_HookLimiter(rate_limiter) if rate_limiter is not None else None)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-engine",
                                        daemon=True)
        self._thread.start()
        self._webhooks: asyncio.Queue[tuple[SfuWebhook, float] | asyncio.Event] = \
            self._on_loop(_make_queue())
        self._worker: asyncio.Task[None] = self._on_loop(_spawn(self._handle_webhooks(),
                                                                "fake-engine-webhooks"))
        # the outbox retries what no request drained (an effect the SFU refused), as the
        # server's loop does
        self._outbox: asyncio.Task[None] = self._on_loop(_spawn(self.service.outbox.run(),
                                                                "fake-engine-outbox"))
        self._unhook = sfu.add_webhook(self._on_webhook)
        self._closed = False

    # -- the port -------------------------------------------------------------------
    def run(self, op: Operation[R], user_token: str | None, /, **args: Any) -> R:
        """Carry out ``op`` through the service, after the same wire round trip as HTTP."""
        self._require_open()
        values = {k: v for k, v in args.items() if v is not None}
        if op.credentials is Credentials.APP:
            values.update(app_id=self.app_id, app_key=self._app_key)
        loaded: dict[str, Any] = {p: str(values.pop(p)) for p in op.path_params}
        loaded.update({n: float(values.pop(n)) for n, _ in op.query if n in values})
        if op.request is not None:
            wired_in = json.loads(json.dumps(values, default=_wire))
            loaded.update(load(schema_of(op.request), wired_in))
        elif values:
            raise TypeError(f"{op.name} takes no {sorted(values)}")
        result: Any = self._on_loop(self.service.run(op, user_token, loaded), timeout=None)
        if result is None or op.response is None:
            return result  # type: ignore[no-any-return]
        wired = dump(schema_of(op.response), {op.envelope: result} if op.envelope else result)
        answer: Any = load(schema_of(op.response), json.loads(json.dumps(wired)))
        return answer[op.envelope] if op.envelope else answer  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unhook()
        self._on_loop(self._stop_worker(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # -- for tests and demos --------------------------------------------------------
    def tick(self) -> list[UTDCall]:
        """Mark calls whose ring deadline passed (by ``clock``) missed; return them."""
        return self._on_loop(self.service.expire_due())

    def drain_webhooks(self, timeout: float = 5.0) -> None:
        """Block until every webhook the SFU sent so far is handled."""
        done = self._on_loop(_make_event())
        self._loop.call_soon_threadsafe(self._webhooks.put_nowait, done)
        self._on_loop(asyncio.wait_for(done.wait(), timeout), timeout=timeout + 1)
        self._on_loop(asyncio.wait_for(self.service.settle_webhooks(), timeout),
                      timeout=timeout + 1)

    def media_room(self, room_name: str) -> str:
        """The SFU's name for this app's room ``room_name``."""
        return livekit_room_name(self.app_id, room_name)

    def __repr__(self) -> str:
        return f"<FakeEngine app_id={self.app_id!r} {self.store!r}>"

    # -- internals ------------------------------------------------------------------
    def _on_loop(self, coro: Coroutine[Any, Any, R], *, timeout: float | None = 60.0) -> R:
        future: concurrent.futures.Future[R] = asyncio.run_coroutine_threadsafe(coro,
                                                                                self._loop)
        return future.result(timeout)

    def _on_webhook(self, hook: SfuWebhook) -> None:
        """Stamped as it happens, in whole seconds, as LiveKit stamps ``createdAt`` (the
        SFU and the engine share ``clock``: synchronized clocks)."""
        if not self._closed:
            self._loop.call_soon_threadsafe(self._webhooks.put_nowait,
                                            (hook, float(int(self._clock()))))

    async def _stop_worker(self) -> None:
        for task in (self._worker, self._outbox):
            task.cancel()
        await asyncio.gather(self._worker, self._outbox, return_exceptions=True)
        await self.service.outbox.stop()
        await self.service.stop_webhooks()

    async def _handle_webhooks(self) -> None:
        """One webhook at a time, in the order the SFU sent them (as LiveKit does per room)."""
        while True:
            item = await self._webhooks.get()
            if isinstance(item, asyncio.Event):
                item.set()
                continue
            hook, created_at = item
            try:
                await self._webhook(hook, created_at)
            except UTDStreamException as exc:  # what the server would answer LiveKit with
                _log.warning("webhook %s for %s refused: %s", hook.event, hook.room, exc)

    async def _webhook(self, hook: SfuWebhook, created_at: float) -> None:
        """Hand the SFU's event to the service's inbox, as the server's endpoint does."""
        granted = hook.permissions
        await self.service.receive(WebhookEvent(
            event_id=f"EV_{next(self._event_ids)}", event=hook.event, room=hook.room,
            identity=hook.identity or "", sid=hook.sid,
            replaced=hook.reason == "duplicate_identity",
            hidden=granted.hidden if granted else False,
            can_publish=granted.can_publish if granted else False,
            sources=frozenset(granted.sources) if granted else frozenset(),
            created_at=created_at))

    def _require_open(self) -> None:
        if self._closed:
            raise UTDStreamException("this fake engine is closed", code="closed")


async def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def _make_queue() -> asyncio.Queue[tuple[SfuWebhook, float] | asyncio.Event]:
    return asyncio.Queue()


async def _make_event() -> asyncio.Event:
    return asyncio.Event()


def _wire(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not a wire value")


if TYPE_CHECKING:
    _: type[EnginePort] = FakeEngine
