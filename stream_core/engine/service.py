"""``EngineService``: the engine's one orchestration, over a store, a control port and bearers.

The reference server (``stream_engine``) runs it over SQL and LiveKit's server API; the
fake engine (``adapters.fakes``) runs the very same class over an in-memory store and the
in-memory SFU. So the two cannot drift: there is one implementation of every rule of
authentication, ordering, effects, webhooks, ring-outs and long-polls.

:meth:`EngineService.perform` carries out any row of :mod:`stream_core.operations`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from stream_core.engine.base import Caller
from stream_core.engine.operators import OperatorService
from stream_core.engine.webhooks import WebhookService
from stream_core.errors import UTDStreamException
from stream_core.operations import Credentials, Operation, Target

__all__ = ["EngineService", "Caller"]

R = TypeVar("R")


class EngineService(OperatorService, WebhookService):
    """Rooms, calls and webhooks of every configured app, and what operators may do."""

    async def run(self, op: Operation[R], bearer: str | None, args: dict[str, Any]) -> R:
        """Prove the caller (bearer or app credentials), then :meth:`perform`."""
        caller = self.caller(bearer) if op.credentials is Credentials.BEARER else None
        return await self.perform(op, caller, args)

    async def perform(self, op: Operation[R], caller: Caller | None,
                      args: dict[str, Any]) -> R:
        """Carry out ``op`` for ``caller`` (``None`` for app-credential operations) with
        its arguments by wire name (path parameters, query and body together)."""
        result: Any
        if op.credentials is Credentials.APP:
            result = await getattr(self, op.name)(**args)
        elif caller is None:
            raise UTDStreamException.unauthenticated(f"{op.name} needs a bearer")
        elif op.target is Target.ROOM:
            room_name = args.pop("room_name")
            result = await self.room_op(op, caller, room_name, **args)
        elif op.target is Target.CALL:
            assert op.trigger is not None
            result = await self.call_op(caller, args["call_id"], op.trigger)
        else:
            result = await getattr(self, op.name)(caller, **args)
        return result  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<EngineService apps={len(self.settings.apps)} locks={self._locks!r}>"
