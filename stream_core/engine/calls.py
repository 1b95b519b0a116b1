"""The engine service's 1:1 calls: create, move along the call table, ring out, long-poll.

Every move of a call is :func:`~stream_core.rooms.calls.apply_call` inside the store's
transaction: a pure function of the stored call, so concurrent requests share nothing but
the database. The timer and the long-poll are wake-ups only; what they act on is re-read.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from stream_core.effects import Effect
from stream_core.engine.base import Caller, ServiceBase, call_state_json, livekit_room_name
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.models import UTDCall, UTDStreamType
from stream_core.rooms import call_publish_sources
from stream_core.rooms.calls import apply_call, open_call

__all__ = ["CallService"]

_log = logging.getLogger("utd_stream.engine")
_CALL_ROOM_EMPTY_TIMEOUT = 60  # seconds a call room waits for its first party


class CallService(ServiceBase):
    """1:1 calls between two identities of one app."""

    def __init__(self, *args: Any,
                 on_missed: Callable[[UTDCall], None] | None = None, **kwargs: Any) -> None:
        """``on_missed``: told of each call that rang out (the server counts them)."""
        super().__init__(*args, **kwargs)
        self._on_missed = on_missed
        self._incoming = asyncio.Condition()
        self._incoming_serial = 0  # bumped under ``_incoming`` whenever a call is created
        self._handed_out: dict[tuple[str, str], set[str]] = {}
        self._timer_wake = asyncio.Event()

    async def create_call(self, who: Caller, *, callee_identity: str, type: UTDStreamType,
                          callee_name: str | None = None,
                          metadata: dict[str, Any] | None = None) -> UTDCall:
        self._limit("mutate", who.app_id, who.identity)
        call = open_call(call_id=secrets.token_hex(8), caller=who.identity,
                         callee=callee_identity, type=type, now=self._clock(),
                         ring_timeout=self.settings.ring_timeout, callee_name=callee_name,
                         metadata=metadata)
        lk_name = self._call_room(who.app_id, call)
        await self._store(self.store.insert_call, who.app_id, lk_name, call)
        await self._media("create call room", self.control.create_room(
            lk_name, max_participants=2, metadata=call_state_json(call, 1),
            empty_timeout=_CALL_ROOM_EMPTY_TIMEOUT))
        async with self._incoming:
            self._incoming_serial += 1
            self._incoming.notify_all()
        self._timer_wake.set()
        return await self._with_token(who, call)

    async def call_op(self, who: Caller, call_id: str, trigger: str) -> UTDCall:
        """``who`` fires ``trigger`` on the call; an accepted call comes with a token."""
        self._limit("mutate", who.app_id, who.identity)
        await self.expire_due()
        call = await self._move(who.app_id, call_id, trigger, who.identity)
        return await self._with_token(who, call) if trigger == "accept" else call

    async def get_call(self, who: Caller, *, call_id: str) -> UTDCall:
        await self.expire_due()
        call = await self._store(self.store.read_call, who.app_id, call_id)
        if who.identity not in (call.caller_identity, call.callee_identity):
            raise UTDStreamException.forbidden("only the two parties of a call may see it")
        return call

    async def incoming_calls(self, who: Caller) -> list[UTDCall]:
        await self.expire_due()
        return await self._store(self.store.incoming_calls, who.app_id, who.identity)

    async def wait_incoming_call(self, who: Caller, *, timeout: float) -> UTDCall | None:
        """Long-poll: the oldest ringing call not yet handed to this identity this way."""
        timeout = max(0.0, min(timeout, self.settings.long_poll_max))
        key = (who.app_id, who.identity)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            serial = self._incoming_serial  # a call created after this is looked for again
            ringing = await self.incoming_calls(who)
            seen = self._handed_out.pop(key, set()) & {c.call_id for c in ringing}
            fresh = [c for c in ringing if c.call_id not in seen]
            if fresh:
                seen.add(fresh[0].call_id)
            if seen:  # remember only calls that still ring: the map holds no dead keys
                self._handed_out[key] = seen
            if fresh:
                return fresh[0]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            async with self._incoming:
                if self._incoming_serial != serial:
                    continue  # created (and announced) while we were reading: read again
                try:
                    await asyncio.wait_for(self._incoming.wait(), remaining)
                except TimeoutError:
                    return None

    async def expire_due(self) -> list[UTDCall]:
        """Mark every call whose ring deadline passed missed (the timer and requests call it)."""
        missed = []
        for app_id, call_id in await self._store(self.store.due_calls, self._clock()):
            call = await self._move(app_id, call_id, "miss", None)
            if call.status.value == "missed":
                missed.append(call)
                if self._on_missed is not None:
                    self._on_missed(call)
        return missed

    async def run_ring_timer(self, *, retry_after: float = 1.0) -> None:
        """Arm a timer at the next ring deadline; re-arm when a call is created.

        The wake-up flag is cleared *before* the deadline is read, so a call created while
        it is being read still wakes the timer. A store that is unavailable is logged and
        retried ``retry_after`` seconds later: the timer never dies with it.
        """
        while True:
            self._timer_wake.clear()
            try:
                deadline = await self._store(self.store.next_ring_deadline)
                delay = None if deadline is None else max(0.0, deadline - self._clock())
                try:
                    await asyncio.wait_for(self._timer_wake.wait(), delay)
                except TimeoutError:
                    await self.expire_due()
            except UTDStreamException as exc:
                if exc.code != ErrorCode.UNAVAILABLE:
                    raise
                _log.warning("ring timer: %s; retrying in %.1f s", exc.message, retry_after)
                await asyncio.sleep(retry_after)

    async def drop_call(self, app_id: str, call_id: str) -> None:
        """A party left the call's room, or the room closed: the call ends."""
        await self._move(app_id, call_id, "drop", None)

    # -- internals ------------------------------------------------------------------
    async def _move(self, app_id: str, call_id: str, trigger: str,
                    actor: str | None) -> UTDCall:
        def change(call: UTDCall) -> tuple[UTDCall, tuple[list[Effect], bool]]:
            moved, effects = apply_call(call, trigger, actor)
            return moved, (effects, moved != call)

        call, (effects, changed), version = await self._store(self.store.mutate_call, app_id,
                                                              call_id, change)
        if changed:  # the table's documented no-ops change nothing and tell nobody
            lk_name = self._call_room(app_id, call)
            await self._push(lk_name, call_state_json(call, version))
            await self._tell(lk_name, effects)
        return call

    async def _with_token(self, who: Caller, call: UTDCall) -> UTDCall:
        sources = call_publish_sources(call.type, call.status)
        token = await self.control.mint_token(identity=who.identity,
                                              room=self._call_room(who.app_id, call),
                                              name=None, sources=sources,
                                              ttl=self.settings.token_ttl)
        return replace(call, token=token, url=self.control.client_url)

    @staticmethod
    def _call_room(app_id: str, call: UTDCall) -> str:
        return livekit_room_name(app_id, call.room_name or f"call-{call.call_id}")
