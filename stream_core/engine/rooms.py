"""The engine service's rooms: tokens, bearers, and every room operation of the table.

A room operation (a ``Target.ROOM`` row of :mod:`stream_core.operations`) runs the room
method of the same name with the acting identity first; every such method returns the
effects of the change, and the answer is the room's new snapshot (or what the row's
``answer`` picks from it). Reads answer from the committed snapshot without a lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stream_core.effects import Effect
from stream_core.engine.base import Caller, ServiceBase, state_json
from stream_core.engine.identity import check_signature
from stream_core.engine.settings import AppConfig
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.models import UTDSeatMode, UTDStreamType, UTDTokenResponse
from stream_core.operations import Operation
from stream_core.engine.outbox import create_effect, effects_of
from stream_core.ports import MediaEffect, RoomSetup, RoomView
from stream_core.names import check_identity, check_room_name, livekit_room_name
from stream_core.rooms import Room, admit, new_room, room_type
from stream_core.rooms.hosting import join_audience, room_class, snapshot_type
from stream_core.rooms.presence import require_present

__all__ = ["RoomService"]


class RoomService(ServiceBase):
    """Joining rooms and changing them."""

    async def run_audience(self, *, interval: float = 2.0) -> None:
        """Push each changed room's audience count, at most once per ``interval``: however
        many join at once, the room's participants get one update."""
        while True:
            await asyncio.sleep(interval)  # the refresh period, not a synchronization
            dirty, self._audience_dirty = self._audience_dirty, {}
            for lk_name, (app_id, room_name) in dirty.items():
                try:
                    await self.push_audience(app_id, room_name, lk_name)
                except UTDStreamException as exc:
                    if exc.code != ErrorCode.UNAVAILABLE:
                        raise
                    self._audience_dirty.setdefault(lk_name, (app_id, room_name))

    async def push_audience(self, app_id: str, room_name: str, lk_name: str) -> None:
        """Push the room's state with its audience count now (in order with its changes)."""
        count = await self._store(self.store.audience_size, app_id, room_name)

        def change(room: Room | None) -> tuple[Room, str]:
            if room is None:
                raise UTDStreamException.not_found(f"no room {room_name!r}")
            return room, state_json(room, count)

        await self._store(self.store.mutate_room, app_id, room_name, lk_name, change,
                          lambda state: [MediaEffect(lk_name, "push", data=state)])
        await self.outbox.drain(lk_name)

    async def authenticate(self, *, app_id: str, app_key: str, identity: str,
                           name: str | None = None, device_id: str | None = None,
                           signature: str | None = None) -> str:
        """A room-less bearer (for calls)."""
        app = self._vouched(app_id, app_key, identity, signature)
        return self.bearers.issue(app.app_id, identity)

    async def mint_token(self, *, app_id: str, app_key: str, identity: str,
                         room_name: str | None = None,
                         stream_type: UTDStreamType | None = None, role: str = "audience",
                         name: str | None = None, device_id: str | None = None,
                         seat_count: int | None = None, seat_mode: UTDSeatMode | None = None,
                         signature: str | None = None) -> UTDTokenResponse:
        """Admit ``identity`` to a room (creating it) and mint its media token and bearer."""
        app = self._vouched(app_id, app_key, identity, signature)
        if room_name is None or stream_type is None:
            raise UTDStreamException.invalid(
                "room_name and stream_type are required for a room token (use /auth for a "
                "bearer only)", field="room_name" if room_name is None else "stream_type")
        lk_name = livekit_room_name(app.app_id, room_name)
        kind = stream_type
        opening = self.outbox.draining(lk_name)
        if role != "host" and seat_count is None and seat_mode is None and not opening \
                and self.store.knows_room(app.app_id, room_name):
            # a plain viewer or listener: its own presence row, the room untouched (a room
            # this process has not seen, new most likely, goes through its own change)
            def decide(room_kind: UTDStreamType, banned: bool) -> None:
                join_audience(room_kind, kind, banned)

            version = await self._store(self.store.join_audience, app.app_id, room_name,
                                        identity, name, decide)
            if version is not None:
                self.audience_changed(app.app_id, room_name, lk_name)
                return await self._grant(app.app_id, identity, room_name, lk_name, name,
                                         frozenset(), version)

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], frozenset[str], str,
                                                          bool, bool, int]]:
            fresh = room is None
            room = room or new_room(kind, room_name)
            before = room.version
            effects = admit(room, identity, stream_type=kind, as_host=role == "host",
                            name=name, seat_count=seat_count, seat_mode=seat_mode)
            room.presence.minted(identity, self._clock())  # older leaves are stale
            return room, (effects, room.publish_sources(identity), state_json(room), fresh,
                          room.version != before, room.version)

        def outbox(result: tuple[list[Effect], frozenset[str], str, bool, bool, int]
                   ) -> list[MediaEffect]:
            effects, _, state, fresh, changed, _ = result
            # A plain listener's join changes no state: nothing to tell the media server.
            opened = [create_effect(lk_name, metadata=state)] if fresh else []
            return opened + effects_of(lk_name, effects, state if changed and not fresh
                                       else None)

        _, sources, state, fresh, _, version = await self._store(
            self.store.mutate_room, app.app_id, room_name, lk_name, change, outbox, [identity])
        # A new room is created on the media server off the join's critical path: until
        # that is done, every token this process mints for it can create it as the engine
        # would (the room's state as metadata), so whichever joiner connects first finds
        # the engine's state. The outbox's create and state pushes follow, in order.
        if fresh:
            self.outbox.drain_soon(lk_name)
        setup = RoomSetup(metadata=state) if fresh or opening else None
        return await self._grant(app.app_id, identity, room_name, lk_name, name, sources,
                                 version, setup=setup)

    async def _grant(self, app_id: str, identity: str, room_name: str, lk_name: str,
                     name: str | None, sources: frozenset[str], version: int | None,
                     setup: RoomSetup | None = None) -> UTDTokenResponse:
        # hidden until the engine admits the connection (participant_joined): a banned
        # identity with an old token is removed before anyone sees it arrive
        token = await self.control.mint_token(identity=identity, room=lk_name, name=name,
                                              sources=sources, ttl=self.settings.token_ttl,
                                              hidden=True, setup=setup)
        return UTDTokenResponse(token=token, url=self.control.client_url, room_name=room_name,
                                user_token=self.bearers.issue(app_id, identity),
                                ws_url=self.control.client_url, state_version=version)

    def _vouched(self, app_id: str, app_key: str, identity: str,
                 signature: str | None) -> AppConfig:
        """The app whose credentials these are, if it vouches for ``identity`` (its backend's
        signature, where it verifies identities) and the identity is within its mint rate."""
        app = self._app(app_id, app_key)
        check_identity(identity)
        check_signature(app.server_secret, identity, signature)
        self._limit("token", app.app_id, identity)
        return app

    async def room_op(self, op: Operation[Any], who: Caller, room_name: str,
                      **args: Any) -> Any:
        """Run the room operation ``op`` as ``who``; its answer."""
        lk_name = livekit_room_name(who.app_id, room_name)  # checks the name (422)
        if op.reads:
            self._limit("read", who.app_id, who.identity)
            view = await self._store(self.store.read_room, who.app_id, room_name,
                                     who.identity)
            snapshot = self._readable(op, room_name, view, who.identity)
            return snapshot if op.answer is None else op.answer(snapshot, who.identity)
        self._limit("mutate", who.app_id, who.identity)
        return await self._change_room(op, who.app_id, room_name, who.identity, args)

    async def _change_room(self, op: Operation[Any], app_id: str, room_name: str,
                           actor: str | None, args: dict[str, Any]) -> Any:
        """Run the room method of ``op`` as ``actor``, who must be present; ``None`` is an
        operator, who acts as the room's host would (the host need not be present)."""

        def change(room: Room | None) -> tuple[Room, tuple[list[Effect], Any, str]]:
            if room is None:
                raise UTDStreamException.not_found(f"no room {room_name!r}")
            _check_kind(op, room_name, room)
            who = actor
            if who is None:
                who = room.host
                if who is None:
                    raise UTDStreamException.illegal(f"room {room_name!r} has no host")
            else:
                room.presence.require_present(who)
                room.presence.acted(who, self._clock())  # a viewer stepping in is admitted
            effects: list[Effect] = getattr(room, op.name)(who, **args)
            snapshot = room.snapshot()
            answer = snapshot if op.answer is None else op.answer(snapshot, who)
            return room, (effects, answer, state_json(room))

        lk_name = livekit_room_name(app_id, room_name)
        involved = [i for i in (actor, args.get("identity")) if isinstance(i, str)]
        answer = await self._store(self.store.mutate_room, app_id, room_name, lk_name, change,
                                   lambda r: effects_of(lk_name, r[0], r[2]), involved)
        await self.outbox.drain(lk_name)
        return answer[1]

    @staticmethod
    def _readable(op: Operation[Any], room_name: str, view: RoomView | None,
                  identity: str) -> Any:
        if view is None:
            raise UTDStreamException.not_found(f"no room {room_name!r}")
        kind = snapshot_type(view.snapshot)
        if op.room is not None and room_class(kind) is not op.room:
            raise UTDStreamException.conflict(f"room {room_name!r} is a {kind.value}")
        require_present(view.present, identity, room_name)
        return view.snapshot


def _check_kind(op: Operation[Any], room_name: str, room: Room) -> None:
    if op.room is not None and not isinstance(room, op.room):
        raise UTDStreamException.conflict(f"room {room_name!r} is a {room_type(room).value}")
