"""The engine's service layer: authenticate, decide with the core, commit, then tell LiveKit.

Order of every mutation: (1) the acting identity comes from the bearer; (2) the core room
or call decides (raising ``UTDStreamException`` changes nothing); (3) the store commits;
(4) the effects go to LiveKit (grants, removals, room closes) and the room's new state is
pushed into its LiveKit metadata. A LiveKit failure after the commit is logged, not
returned: the database is the truth and the next change pushes the whole state again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from stream_core.effects import Effect, ParticipantRemoved, PublishChanged, RoomClosed
from stream_core.errors import UTDStreamException
from stream_core.machines.call import UNANSWERED
from stream_core.models import UTDCall, UTDStreamType, UTDTokenResponse
from stream_core.rooms import (
    ROOM_OPERATIONS, CallLedger, Room, admit, call_publish_sources, call_state, new_room,
    room_state, room_type,
)
from stream_core.wire import RoomStateSchema, dump

from stream_engine.bearer import check_signature, issue_bearer, verify_bearer
from stream_engine.config import AppConfig, EngineConfig
from stream_engine.livekit_control import LiveKitControl, LiveKitNotFound, mint_token
from stream_core.engine.ratelimit import RateLimiter
from stream_engine.store import Store

__all__ = ["EngineService", "Caller"]

_log = logging.getLogger("utd_stream.engine")
_STATE = RoomStateSchema()



class Caller:
    """Who is calling: the app and identity proven by the bearer."""

    __slots__ = ("app_id", "identity")

    def __init__(self, app_id: str, identity: str) -> None:
        self.app_id, self.identity = app_id, identity


class EngineService:
    def __init__(self, config: EngineConfig, store: Store, control: LiveKitControl, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.control = control
        self._clock = clock
        self._limiter = RateLimiter({"token": config.token_limit, "mutate": config.mutate_limit})
        self._ledger = CallLedger(ring_timeout=config.ring_timeout)
        # one call machine for every request; its models are added and removed per call,
        # from the loop and from worker threads alike, so one thread lock guards it
        self._ledger_guard = threading.Lock()
        self._room_locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._incoming = asyncio.Condition()
        self._incoming_serial = 0  # bumped under ``_incoming`` whenever a call is created
        self._handed_out: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._timer_wake = asyncio.Event()

    # -- identity and tokens --------------------------------------------------------
    def caller(self, authorization: str | None) -> Caller:
        token = None
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        app_id, identity = verify_bearer(self.config.signing_secret, token)
        if self.config.app(app_id) is None:
            raise UTDStreamException.unauthenticated("the bearer's app no longer exists")
        return Caller(app_id, identity)

    def _app(self, app_id: str, app_key: str) -> AppConfig:
        app = self.config.app(app_id)
        if app is None or not hmac.compare_digest(app.app_key.encode(), app_key.encode()):
            raise UTDStreamException.unauthenticated("unknown app_id or wrong app_key")
        return app

    def _limit(self, kind: str, app_id: str, identity: str) -> None:
        retry_after = self._limiter.check(kind, app_id, identity)
        if retry_after is not None:
            raise UTDStreamException.rate_limited(retry_after)

    async def authenticate(self, body: dict[str, Any]) -> dict[str, str]:
        app = self._app(body["app_id"], body["app_key"])
        check_signature(app.server_secret, body["identity"], body.get("signature"))
        self._limit("token", app.app_id, body["identity"])
        return {"user_token": self._bearer(app.app_id, body["identity"])}

    async def mint_token(self, body: dict[str, Any]) -> UTDTokenResponse:
        app = self._app(body["app_id"], body["app_key"])
        identity: str = body["identity"]
        check_signature(app.server_secret, identity, body.get("signature"))
        self._limit("token", app.app_id, identity)
        room_name = body.get("room_name")
        stream_type = body.get("stream_type")
        if room_name is None or stream_type is None:
            raise UTDStreamException.invalid("room_name and stream_type are required for a "
                                             "room token (use /auth for a bearer only)",
                                             field="room_name" if room_name is None else "stream_type")
        lk_name = self._lk_room(app.app_id, room_name)
        as_host = body.get("role") == "host"

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], frozenset[str], str,
                                                          bool, bool]]:
            fresh = room is None
            room = room or new_room(stream_type, room_name)
            before = room.version
            effects = admit(room, identity, stream_type=stream_type, as_host=as_host,
                            name=body.get("name"), seat_count=body.get("seat_count"),
                            seat_mode=body.get("seat_mode"))
            return room, (effects, room.publish_sources(identity), _state_json(room), fresh,
                          room.version != before)

        async with self._room_locks[(app.app_id, room_name)]:  # held: LiveKit in commit order
            effects, sources, state, fresh, changed = await asyncio.to_thread(
                self.store.mutate_room, app.app_id, room_name, lk_name, change)
            # A plain listener's join changes no state: nothing to tell LiveKit. (A room
            # LiveKit dropped while empty is re-created by the next connect; every session
            # reads the state over REST once connected, and the next change is pushed.)
            if fresh:
                await self._livekit("create room",
                                    self.control.create_room(lk_name, metadata=state))
            await self._apply(lk_name, effects)
            if fresh or changed:
                await self._push(lk_name, state)
        token = mint_token(self.config.livekit_api_key, self.config.livekit_api_secret,
                           identity=identity, room=lk_name, name=body.get("name"),
                           can_publish=bool(sources), can_publish_sources=sorted(sources),
                           ttl_seconds=int(self.config.token_ttl))
        return UTDTokenResponse(token=token, url=self.config.public_livekit_url,
                                room_name=room_name, user_token=self._bearer(app.app_id, identity),
                                ws_url=self.config.public_livekit_url)

    def _bearer(self, app_id: str, identity: str) -> str:
        return issue_bearer(self.config.signing_secret, app_id=app_id, identity=identity,
                            ttl=self.config.bearer_ttl)

    @staticmethod
    def _lk_room(app_id: str, room_name: str) -> str:
        return f"{app_id}__{room_name}"

    # -- rooms ----------------------------------------------------------------------
    async def room_op(self, who: Caller, room_name: str, op: str, *args: Any,
                      **kwargs: Any) -> Any:
        """Run ``op`` (a key of ``ROOM_OPERATIONS``) as ``who``; returns the room's new snapshot."""
        cls, method = ROOM_OPERATIONS[op]
        if method is not None:
            self._limit("mutate", who.app_id, who.identity)

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], Any, str]]:
            if room is None:
                raise UTDStreamException.not_found(f"no room {room_name!r}")
            if not isinstance(room, cls):
                raise UTDStreamException.conflict(
                    f"room {room_name!r} is a {room_type(room).value}")
            room.presence.require_present(who.identity)
            effects: list[Effect] = []
            result: Any = None
            if method is not None:
                out = getattr(room, method)(who.identity, *args, **kwargs)
                if isinstance(out, list):
                    effects = out
                else:
                    result = out  # request_to_speak returns the request
            state = _state_json(room) if method is not None else ""
            return room, (effects, result if result is not None else room.snapshot(), state)

        lock = self._room_locks[(who.app_id, room_name)]
        if method is None:
            async with lock:  # the stored object may be the one a writer is changing
                stored = await asyncio.to_thread(self.store.read_room, who.app_id, room_name)
                return change(stored.room if stored else None)[1][1]
        lk_name = self._lk_room(who.app_id, room_name)
        async with lock:  # held until LiveKit has the effects: grants land in commit order
            effects, result, state = await asyncio.to_thread(
                self.store.mutate_room, who.app_id, room_name, lk_name, change)
            await self._apply(lk_name, effects)
            await self._push(lk_name, state)
        return result

    # -- calls ----------------------------------------------------------------------
    async def create_call(self, who: Caller, body: dict[str, Any]) -> UTDCall:
        self._limit("mutate", who.app_id, who.identity)
        call_id = secrets.token_hex(8)
        lk_name = self._lk_room(who.app_id, f"call-{call_id}")
        with self._ledger_guard:  # microseconds: fine to hold on the event loop
            call = self._ledger.create(
                call_id=call_id, caller=who.identity, callee=body["callee_identity"],
                type=body["type"], now=self._clock(), room_name=f"call-{call_id}",
                callee_name=body.get("callee_name"), metadata=body.get("metadata"))
            self._ledger.discard(call_id)
        await asyncio.to_thread(self.store.insert_call, who.app_id, lk_name, call)
        state = json.dumps(dump(_STATE, call_state(call, 1)))
        await self._livekit("create call room", self.control.create_room(
            lk_name, max_participants=2, metadata=state, empty_timeout=60))
        async with self._incoming:
            self._incoming_serial += 1
            self._incoming.notify_all()
        self._timer_wake.set()
        return self._with_token(who, call)

    async def call_op(self, who: Caller, call_id: str, trigger: str) -> UTDCall:
        self._limit("mutate", who.app_id, who.identity)
        await self.expire_due()

        def change(call: UTDCall) -> tuple[UTDCall, list[Effect]]:
            return self._apply_call(call, trigger, who.identity)

        call, effects, version = await asyncio.to_thread(
            self.store.mutate_call, who.app_id, call_id, change)
        await self._after_call(who.app_id, call, effects, version)
        return self._with_token(who, call) if trigger == "accept" else call

    async def get_call(self, who: Caller, call_id: str) -> UTDCall:
        await self.expire_due()
        call = await asyncio.to_thread(self.store.read_call, who.app_id, call_id)
        if who.identity not in (call.caller_identity, call.callee_identity):
            raise UTDStreamException.forbidden("only the two parties of a call may see it")
        return call

    async def incoming_calls(self, who: Caller) -> list[UTDCall]:
        await self.expire_due()
        return await asyncio.to_thread(self.store.incoming_calls, who.app_id, who.identity)

    async def next_incoming_call(self, who: Caller, timeout: float) -> UTDCall | None:
        """Long-poll: the oldest ringing call not yet handed to this identity this way."""
        timeout = max(0.0, min(timeout, self.config.long_poll_max))
        seen = self._handed_out[(who.app_id, who.identity)]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            serial = self._incoming_serial  # a call created after this is looked for again
            ringing = await self.incoming_calls(who)
            seen.intersection_update(c.call_id for c in ringing)  # forget answered calls
            fresh = [c for c in ringing if c.call_id not in seen]
            if fresh:
                seen.add(fresh[0].call_id)
                return fresh[0]
            remaining = deadline - asyncio.get_running_loop().time()
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
        for app_id, call_id in await asyncio.to_thread(self.store.due_calls, self._clock()):
            def change(call: UTDCall) -> tuple[UTDCall, list[Effect]]:
                if call.status not in UNANSWERED:
                    return call, []
                return self._apply_call(call, "miss", None)
            try:
                call, effects, version = await asyncio.to_thread(
                    self.store.mutate_call, app_id, call_id, change)
            except UTDStreamException:
                continue
            if effects:
                missed.append(call)
                await self._after_call(app_id, call, effects, version)
        return missed

    async def run_ring_timer(self, *, retry_after: float = 1.0) -> None:
        """Arm a timer at the next ring deadline; re-arm when a call is created.

        The wake-up flag is cleared *before* the deadline is read, so a call created while
        it is being read still wakes the timer. A failure (database briefly unreachable) is
        logged and retried ``retry_after`` seconds later: the timer never dies with it.
        """
        while True:
            self._timer_wake.clear()
            try:
                deadline = await asyncio.to_thread(self.store.next_ring_deadline)
                delay = None if deadline is None else max(0.0, deadline - self._clock())
                try:
                    await asyncio.wait_for(self._timer_wake.wait(), delay)
                except TimeoutError:
                    await self.expire_due()
            except Exception as exc:  # noqa: BLE001 - keep the timer alive, say why
                _log.warning("ring timer: %s; retrying in %.1f s", type(exc).__name__,
                             retry_after)
                await asyncio.sleep(retry_after)

    def _apply_call(self, call: UTDCall, trigger: str,
                    actor: str | None) -> tuple[UTDCall, list[Effect]]:
        """Fire ``trigger`` on ``call`` with the core's call table (any thread)."""
        with self._ledger_guard:
            self._ledger.restore(call)
            try:
                return self._ledger.apply(call.call_id, trigger, actor=actor)
            finally:
                self._ledger.discard(call.call_id)

    async def _after_call(self, app_id: str, call: UTDCall, effects: list[Effect],
                          version: int) -> None:
        lk_name = self._lk_room(app_id, call.room_name or "")
        await self._push(lk_name, json.dumps(dump(_STATE, call_state(call, version))))
        await self._apply(lk_name, effects)

    def _with_token(self, who: Caller, call: UTDCall) -> UTDCall:
        sources = call_publish_sources(call.type, call.status)
        token = mint_token(self.config.livekit_api_key, self.config.livekit_api_secret,
                           identity=who.identity, room=self._lk_room(who.app_id, call.room_name or ""),
                           can_publish=bool(sources), can_publish_sources=sorted(sources),
                           ttl_seconds=int(self.config.token_ttl))
        return replace(call, token=token, url=self.config.public_livekit_url)

    # -- webhooks -------------------------------------------------------------------
    async def participant_left(self, livekit_room: str, identity: str, *,
                               sid: str = "") -> None:
        """A participant left LiveKit (or its process died): free its seat / stage slot,
        end its call."""
        if await self._replaced(livekit_room, identity, sid):
            _log.info("participant_left of a replaced session ignored (%s is still in %s)",
                      identity, livekit_room)
            return  # the leave of a session that a newer one with this identity replaced
        found_call = await asyncio.to_thread(self.store.call_by_livekit_name, livekit_room)
        if found_call is not None:
            await self._drop_call(*found_call)
            return
        found = await asyncio.to_thread(self.store.room_by_livekit_name, livekit_room)
        if found is None:
            return
        app_id, room_name = found

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], str]]:
            assert room is not None
            effects = room.leave(identity)
            return room, (effects, _state_json(room))

        async with self._room_locks[(app_id, room_name)]:
            effects, state = await asyncio.to_thread(self.store.mutate_room, app_id, room_name,
                                                     livekit_room, change)
            await self._apply(livekit_room, effects)
            await self._push(livekit_room, state)

    async def _replaced(self, livekit_room: str, identity: str, sid: str) -> bool:
        """True if LiveKit has ``identity`` in the room under another connection than the
        one that left (a reconnect or a second device replaced it). LiveKit may still list
        the leaving connection for a moment, hence the sid. If LiveKit cannot answer, the
        leave is taken at its word."""
        present = await self._livekit("list", self.control.list_participants(livekit_room))
        return present is not None and any(
            p.identity == identity and p.sid != sid for p in present)

    async def participant_joined(self, livekit_room: str, identity: str, *,
                                 can_publish: bool, sources: frozenset[str]) -> None:
        """A participant reached LiveKit with a token minted earlier (``can_publish`` /
        ``sources`` as granted): bring its grant up to what the room says now (a seat or
        stage slot won or lost since the mint, when no grant could reach it), and remove it
        if it was banned since. Nothing is sent when the token is still right."""
        found = await asyncio.to_thread(self.store.room_by_livekit_name, livekit_room)
        if found is None:
            return
        async with self._room_locks[found]:
            stored = await asyncio.to_thread(self.store.read_room, *found)
            if stored is None:
                return
            if identity in stored.room.presence.banned:
                await self._livekit("remove", self.control.remove_participant(livekit_room,
                                                                              identity))
                return
            wanted = stored.room.publish_sources(identity)
            if can_publish == bool(wanted) and (not wanted or sources == wanted):
                return
            await self._livekit("grant", self.control.update_permissions(
                livekit_room, identity, can_publish=bool(wanted), sources=sorted(wanted)))

    async def room_finished(self, livekit_room: str) -> None:
        found_call = await asyncio.to_thread(self.store.call_by_livekit_name, livekit_room)
        if found_call is not None:
            await self._drop_call(*found_call)

    async def _drop_call(self, app_id: str, call_id: str) -> None:
        def change(call: UTDCall) -> tuple[UTDCall, list[Effect]]:
            if call.status.is_terminal:
                return call, []
            return self._apply_call(call, "drop", None)

        call, effects, version = await asyncio.to_thread(
            self.store.mutate_call, app_id, call_id, change)
        if effects:
            await self._after_call(app_id, call, effects, version)

    # -- LiveKit --------------------------------------------------------------------
    async def _apply(self, lk_room: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, PublishChanged):
                await self._livekit("grant", self.control.update_permissions(
                    lk_room, effect.identity, can_publish=bool(effect.after),
                    sources=sorted(effect.after)))
            elif isinstance(effect, ParticipantRemoved):
                await self._livekit("remove", self.control.remove_participant(
                    lk_room, effect.identity))
            elif isinstance(effect, RoomClosed):
                await self._livekit("close", self.control.delete_room(lk_room))

    async def _push(self, lk_room: str, state: str) -> None:
        await self._livekit("push state", self.control.set_room_metadata(lk_room, state))

    @staticmethod
    async def _livekit(what: str, op: Any) -> Any:
        try:
            return await op
        except LiveKitNotFound:
            return None  # the participant or room is not (or no longer) there: nothing to do
        except Exception as exc:  # LiveKit down: the database stays the truth
            _log.warning("LiveKit %s failed: %s", what, type(exc).__name__)
            return None


def _state_json(room: Room) -> str:
    """The room's state document, made inside the transaction that committed it."""
    return json.dumps(dump(_STATE, room_state(room)))
