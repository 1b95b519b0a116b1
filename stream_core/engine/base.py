"""What every part of the engine service shares: its ports, who is calling, and LiveKit.

The order of every change, in every part: (1) the acting identity comes from the bearer
(or the app's credentials); (2) the core decides (a ``UTDStreamException`` changes
nothing); (3) the store commits the change together with its media effects and the room's
new state (the outbox); (4) the outbox applies them to the media server through the
:class:`~stream_core.ports.ControlPort`, per room in commit order, retried until confirmed
(:mod:`stream_core.engine.outbox`).

A media-server failure after the commit does not undo it: the database is the truth and
the effect stays pending until it lands. Only the failures a control port is expected to
report are tolerated quietly (``not_found``: the participant or room is already gone;
``unavailable``: logged as a warning); anything else is logged with its
cause.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from stream_core.engine.locks import KeyedLocks
from stream_core.engine.outbox import Outbox
from stream_core.engine.ratelimit import RateLimiter
from stream_core.engine.settings import AppConfig, ServiceSettings
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.limits import check_state_size
from stream_core.models import UTDCall
from stream_core.ports import BearerPort, ControlPort, StorePort
from stream_core.rooms import Room, call_state, room_state
from stream_core.wire import RoomStateSchema, dump

__all__ = ["Caller", "ServiceBase", "state_json", "call_state_json"]

_log = logging.getLogger("utd_stream.engine")
_STATE = RoomStateSchema()
T = TypeVar("T")


class Caller:
    """Who is calling: the app and identity proven by the bearer."""

    __slots__ = ("app_id", "identity")

    def __init__(self, app_id: str, identity: str) -> None:
        self.app_id, self.identity = app_id, identity

    def __repr__(self) -> str:
        return f"<Caller {self.app_id}/{self.identity}>"


def state_json(room: Room, audience: int | None = None) -> str:
    """The room's state document, made inside the transaction that commits it: a change
    whose document would not fit one push is refused there (409), before anything is
    written. UTF-8, not ASCII escapes: the limit LiveKit enforces is in bytes."""
    return check_state_size(json.dumps(dump(_STATE, room_state(room, audience)),
                                       ensure_ascii=False))


def call_state_json(call: UTDCall, version: int) -> str:
    return json.dumps(dump(_STATE, call_state(call, version)), ensure_ascii=False)


class ServiceBase:
    """The ports, settings, limits and room locks every part of the service uses."""

    def __init__(self, settings: ServiceSettings, store: StorePort, control: ControlPort,
                 bearers: BearerPort, *, clock: Callable[[], float] = time.time,
                 limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.store = store
        self.control = control
        self.bearers = bearers
        self._clock = clock
        self._limiter = limiter or RateLimiter(
            {"token": settings.token_limit, "mutate": settings.mutate_limit,
             "read": settings.read_limit})
        self._locks = KeyedLocks()
        self.outbox = Outbox(store, control, clock, leases=store.shared)
        self._audience_dirty: dict[str, tuple[str, str]] = {}  # media room -> (app, room)

    def audience_changed(self, app_id: str, room_name: str, lk_name: str) -> None:
        """A viewer came or went: the room's count is pushed at the next refresh (the
        dirty set is a wake-up, not a truth: lost in a crash, the next change pushes)."""
        self._audience_dirty[lk_name] = (app_id, room_name)

    # -- who is calling -------------------------------------------------------------
    def caller(self, bearer: str | None) -> Caller:
        """The caller a bearer proves (401 if it proves nothing, or its app is gone)."""
        app_id, identity = self.bearers.verify(bearer)
        if self.settings.app(app_id) is None:
            raise UTDStreamException.unauthenticated("the bearer's app no longer exists")
        return Caller(app_id, identity)

    def _app(self, app_id: str, app_key: str) -> AppConfig:
        app = self.settings.app(app_id)
        if app is None or not hmac.compare_digest(app.app_key.encode(), app_key.encode()):
            raise UTDStreamException.unauthenticated("unknown app_id or wrong app_key")
        return app

    def _limit(self, kind: str, app_id: str, identity: str) -> None:
        retry_after = self._limiter.check(kind, app_id, identity)
        if retry_after is not None:
            raise UTDStreamException.rate_limited(retry_after)

    # -- the store, off the event loop ------------------------------------------------
    async def _store(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    # -- the media server -----------------------------------------------------------
    async def _media(self, what: str, op: Awaitable[T]) -> T | None:
        """Await one control call; tolerate exactly what a control port may report."""
        try:
            return await op
        except UTDStreamException as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return None  # the participant or room is not (or no longer) there
            if exc.code == ErrorCode.UNAVAILABLE:
                _log.warning("media server unavailable for %s: %s", what, exc.message)
                return None
            _log.error("media server refused %s: %s (%s)", what, exc.message, exc.code,
                       exc_info=exc)
            return None
