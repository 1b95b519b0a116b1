"""``Recovery``: the supervisor a session owns so that it comes back on its own.

Rules of this file:

* **Resume.** When the media server's own resume or reconnect succeeds (the connection
  goes RECONNECTING then CONNECTED), the session rereads the engine's state over REST and
  makes its media follow it again: it republishes what it is granted and nothing else
  (:class:`~stream_core.events.SessionResynced`). Pushes sent while it was away may be lost.
  While the engine is unreachable or busy (a retryable error) the resync is tried again
  after the policy's delays, for as long as the connection stays up.
* **Loss.** When the connection is lost for good (DISCONNECTED for any reason but the
  final ones below), the session's loss hook runs, retried after the delays of a
  :class:`RejoinPolicy` (exponential, capped, with jitter) until it succeeds, the engine
  refuses for good (401, 403, 404, 422: ``RejoinAbandoned``), or the app calls ``leave()``
  or ``dispose()``. A room session rejoins with a fresh token and resyncs (``Rejoined``);
  a call session ends its call instead, so both sides see it end.
* **Final reasons** are not losses: the app left (``client_initiated``), the server removed
  the participant (``removed``: a ban), a newer connection of the same identity replaced it
  (``duplicate_identity``), or the room was closed (``room_deleted``: the engine ended it).
* A loss while a resync (or a rejoin's resync) is still under way cancels that work and
  starts the recovery over: the work was bound to the connection that is gone.
* A member the engine no longer knows (a 404 on the state read after a reconnect: the
  leave of its old connection reached the engine late) is a loss too: it joins again.
* Only the owner's connection state drives it; it is armed when the session connects and
  disarmed by ``leave()``, before the media is left. Its one task is cancelled on disarm.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream_core.errors import UTDStreamException
from stream_core.events import (
    ConnectionState, RecoveryEvent, RejoinAbandoned, Rejoined, RejoinScheduled,
    SessionResynced,
)

if TYPE_CHECKING:
    from stream_core.sessions.base import UTDSession

__all__ = ["Recovery", "RejoinPolicy", "FINAL_REASONS"]

_log = logging.getLogger(__name__)

#: Disconnect reasons after which a session does not come back by itself.
FINAL_REASONS = frozenset({"client_initiated", "removed", "duplicate_identity", "room_deleted"})
#: Engine answers that no retry can change.
_PERMANENT_STATUSES = frozenset({401, 403, 404, 422})


@dataclass(frozen=True, slots=True)
class RejoinPolicy:
    """When to try again after a loss: attempt ``n`` (from 1) waits
    ``min(max_delay, first_delay * factor ** (n - 1))``, minus up to ``jitter`` of it
    (drawn uniformly), so that a whole room that lost its server does not come back in step.
    """

    first_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.5

    def delay(self, attempt: int, draw: float) -> float:
        """The wait before ``attempt``, given a uniform ``draw`` in [0, 1)."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        ceiling = min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))
        return ceiling * (1.0 - self.jitter * draw)


class Recovery:
    """Watches one session's connection; resyncs after a resume, recovers after a loss."""

    def __init__(self, session: UTDSession, policy: RejoinPolicy | None = None,
                 rng: random.Random | None = None) -> None:
        self.policy = policy or RejoinPolicy()
        self._session = session
        self._rng = rng or random.Random()
        self._armed = False
        self._previous = session.room.connection_state.value
        self._task: asyncio.Task[None] | None = None
        self._unlisten = session.room.connection_state.listen(self._on_state)

    @property
    def recovering(self) -> bool:
        """True while a resync or a rejoin is under way."""
        return self._task is not None and not self._task.done()

    async def disarm(self) -> None:
        """Stop recovering (``leave``/``dispose``): no further attempt is made, and the one
        under way is cancelled and waited for (unless it is the caller itself)."""
        self._armed = False
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def close(self) -> None:
        """Stop following the connection (after :meth:`disarm`)."""
        self._unlisten()

    # -- the connection's changes ---------------------------------------------------
    def _on_state(self, state: ConnectionState) -> None:
        previous, self._previous = self._previous, state
        if state is ConnectionState.CONNECTED:
            if previous is ConnectionState.RECONNECTING and self._armed:
                self._start(self._resync(), "resync")
            self._armed = True
        elif state is ConnectionState.DISCONNECTED and self._armed:
            reason = self._session.room.disconnect_reason
            if self.recovering:
                if reason in FINAL_REASONS or previous is ConnectionState.CONNECTING:
                    return  # the work's own disconnect, or its connect attempt failing
                # The connection the running resync (or a rejoin's resync) works on is
                # lost as well: that work may wait forever on the dead connection (rtc's
                # publish never answers; the walk found a host stuck so), and no later
                # change would start a recovery. Start over from the loss.
                self._restart(self._recover(reason), "recover")
                return
            if reason in FINAL_REASONS:
                self._armed = False
                return
            self._start(self._recover(reason), "recover")

    def _start(self, work: Any, what: str) -> None:
        if self.recovering:
            work.close()  # one recovery at a time: the running one rereads the state anyway
            return
        task = asyncio.get_running_loop().create_task(work, name=f"utd:{what}")
        self._task = task
        task.add_done_callback(self._done)

    def _restart(self, work: Any, what: str) -> None:
        """Cancel the running work (not waited for: it only awaits) and start ``work``."""
        running, self._task = self._task, None
        if running is not None:
            running.cancel()
        self._start(work, what)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            _log.warning("%s failed: %s", task.get_name(), task.exception())

    # -- the work -------------------------------------------------------------------
    async def _resync(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                publishing = await self._session._resync()
                break
            except UTDStreamException as exc:
                if exc.status_code == 404 and self._session._rejoin is not None:
                    # the engine let this member go while it was away (the leave of the old
                    # connection came late): it is in LiveKit's room but not the engine's
                    _log.info("%r is no longer a member after a reconnect: rejoining",
                              self._session)
                    await self._session.room.disconnect()
                    await self._recover("forgotten_by_engine")
                    return
                if not exc.is_retryable or not self._session.room.connected.value:
                    _log.warning("resync of %r after a reconnect failed: %s", self._session,
                                 exc)
                    return
                # the engine is briefly away (restarting, its database busy): the pushes
                # missed meanwhile are only had by reading again, so try again
                delay = self.policy.delay(attempt, self._rng.random())
                _log.info("resync of %r failed (%s); again in %.2f s", self._session, exc,
                          delay)
                await asyncio.sleep(delay)
        self._emit(SessionResynced(tuple(sorted(publishing))))

    async def _recover(self, reason: str | None) -> None:
        lost_at = time.monotonic()
        attempt = 0
        while self._armed:
            attempt += 1
            delay = self.policy.delay(attempt, self._rng.random())
            self._emit(RejoinScheduled(attempt, delay, reason))
            await asyncio.sleep(delay)
            try:
                back = await self._session._recover_from_loss()
            except UTDStreamException as exc:
                if exc.status_code in _PERMANENT_STATUSES:
                    self._armed = False
                    self._emit(RejoinAbandoned(attempt, exc.code, exc.message))
                    return
                _log.info("recovery attempt %d of %r failed: %s", attempt, self._session, exc)
                continue
            if back:
                self._emit(Rejoined(attempt, time.monotonic() - lost_at))
            return

    def _emit(self, event: RecoveryEvent) -> None:
        self._session.room.events.emit(event)

    def __repr__(self) -> str:
        return f"<Recovery armed={self._armed} recovering={self.recovering}>"
