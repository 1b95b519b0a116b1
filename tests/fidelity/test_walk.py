"""A stateful random walk on the real stack: livekit-server, the engine process, SQLite.

Four SDK participants (p0 hosts) share an audio room and a live stream and call each
other; Hypothesis picks operations (every seat, stage and call operation, leave and
rejoin) and faults (LiveKit restarted softly or killed, the engine killed with SIGKILL and
restarted, the database locked, a connection dropped). After every step the world must
converge (:meth:`tests.fidelity.world.World.converge`) within a bounded wait; a divergence
fails with Hypothesis's shrunk sequence of steps.

``UTD_WALK_STEPS`` sets the total number of steps (default 100, ``make soak``: 1,000);
the summary line (steps, faults, divergences, worst time-to-converge) is printed at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from stream_core import UTDStreamException
from stream_core.engine.settings import AppConfig
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import LiveKitControl
from tests.fidelity.world import Member, Stats, World, call_type_of
from tests.support import require_livekit_binary

pytestmark = [pytest.mark.livekit, pytest.mark.engine, pytest.mark.slow]

STEPS = int(os.environ.get("UTD_WALK_STEPS", "100"))
STEPS_PER_EXAMPLE = 25
PARTICIPANTS = 4
#: What the engine may answer an operation the walk tried at random: a refusal that
#: leaves the state unchanged (409, 403, 404, 422) or a fault's "try again".
_REFUSALS = frozenset({400, 403, 404, 409, 422})

AUDIO_OPS = ("take", "leave", "move", "request", "cancel", "approve", "deny", "invite",
             "decline", "kick", "lock", "unlock", "mute", "unmute")
STAGE_OPS = ("invite", "remove", "request", "lower", "leave")
CALL_OPS = ("ringing", "accept", "reject", "busy", "end")
FAULTS = ("livekit_restart", "livekit_kill", "engine_kill", "database_lock", "drop")


class _Run:
    """The stack, loop and statistics shared by every example of one walk."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.stack = LocalStack(apps=[AppConfig("walk-app", "walk-key")]).start()
        self.control: LiveKitControl = self.run(self._control())
        self.stats = Stats()

    async def _control(self) -> LiveKitControl:  # its HTTP session lives on our loop
        lk = self.stack.livekit
        return LiveKitControl(lk.url, lk.api_key, lk.api_secret)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.control.aclose())
        self.stack.stop()
        self.loop.close()


RUN: _Run | None = None


class Walk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert RUN is not None
        self.run = RUN
        self.world = World(RUN.stack, RUN.control, f"w{uuid.uuid4().hex[:6]}")
        self.run.run(self.world.open(PARTICIPANTS))
        self.last = "open"
        self.steps: list[str] = []

    def teardown(self) -> None:
        self.run.run(self.world.close())

    def _member(self, n: int) -> Member:
        return self.world.members[n % len(self.world.members)]

    def _try(self, what: str, coro: Coroutine[Any, Any, Any]) -> None:
        self.last = what
        self.steps.append(what)
        self.run.stats.steps += 1
        try:
            self.run.run(asyncio.wait_for(coro, 30))
        except UTDStreamException as exc:
            if exc.status_code not in _REFUSALS and not exc.is_retryable \
                    and exc.code not in ("not_connected", "unavailable", "timeout"):
                raise

    # -- operations ---------------------------------------------------------------
    @rule(op=st.sampled_from(AUDIO_OPS), who=st.integers(0, PARTICIPANTS - 1),
          seat=st.integers(0, 3))
    def audio(self, op: str, who: int, seat: int) -> None:
        me, host = self._member(who), self.world.host.audio
        target = self._member(seat).identity
        grid = host.seats.value
        request = grid.requests[0].request_id if grid and grid.requests else 0
        calls = {
            "take": lambda: me.audio.take_seat(seat), "leave": me.audio.leave_seat,
            "move": lambda: me.audio.move_seat(seat), "request": me.audio.request_to_speak,
            "cancel": me.audio.cancel_speak_request,
            "approve": lambda: host.approve_speaker(request),
            "deny": lambda: host.deny_speaker(request),
            "invite": lambda: host.invite_to_speak(target),
            "decline": me.audio.decline_invite,
            "kick": lambda: host.kick_from_seat(target),
            "lock": lambda: host.lock_seat(seat, True),
            "unlock": lambda: host.lock_seat(seat, False),
            "mute": lambda: host.mute_seat(seat, True),
            "unmute": lambda: host.mute_seat(seat, False),
        }
        self._try(f"audio {op} by {me.identity} (seat/target {seat})", calls[op]())

    @rule(op=st.sampled_from(STAGE_OPS), who=st.integers(1, PARTICIPANTS - 1))
    def stage(self, op: str, who: int) -> None:
        me, host = self._member(who), self.world.host.live
        calls = {"invite": lambda: host.invite_to_stage(me.identity),
                 "remove": lambda: host.remove_from_stage(me.identity),
                 "request": me.live.request_stage, "lower": me.live.lower_hand,
                 "leave": me.live.leave_stage}
        self._try(f"stage {op} for {me.identity}", calls[op]())

    @rule(caller=st.integers(0, PARTICIPANTS - 1), callee=st.integers(0, PARTICIPANTS - 1),
          video=st.booleans())
    def start_call(self, caller: int, callee: int, video: bool) -> None:
        a, b = self._member(caller), self._member(callee)
        if a is b or a.call is not None:
            return

        async def start() -> None:
            a.call = a.client.call_session(call_type_of(video))
            await a.call.start(b.identity)
        self._try(f"call start {a.identity}->{b.identity} video={video}", start())

    @rule(op=st.sampled_from(CALL_OPS), who=st.integers(0, PARTICIPANTS - 1))
    def call(self, op: str, who: int) -> None:
        me = self._member(who)

        async def act() -> None:
            if op == "end":
                if me.call is not None:
                    await me.call.end()
                    await me.call.dispose()
                    me.call = None
                return
            ringing = await me.client.incoming_calls()
            if not ringing:
                return
            incoming = ringing[0]
            if op == "accept":
                if me.call is not None:
                    await me.call.dispose()
                me.call = me.client.call_session(incoming.type)
                await me.call.accept(incoming.call_id)
                return
            session = me.client.call_session(incoming.type)
            try:
                await {"ringing": session.ringing, "reject": session.reject,
                       "busy": session.busy}[op](incoming.call_id)
            finally:
                await session.dispose()
        self._try(f"call {op} by {me.identity}", act())

    @rule(who=st.integers(1, PARTICIPANTS - 1), live=st.booleans())
    def leave_and_rejoin(self, who: int, live: bool) -> None:
        me = self._member(who)
        session = me.live if live else me.audio

        async def cycle() -> None:
            await session.leave()
            await session.rejoin()
        self._try(f"leave+rejoin {'live' if live else 'audio'} by {me.identity}", cycle())

    # -- faults -------------------------------------------------------------------
    @rule(fault=st.sampled_from(FAULTS), who=st.integers(1, PARTICIPANTS - 1))
    def fault(self, fault: str, who: int) -> None:
        world, me = self.world, self._member(who)
        self.run.stats.fault(fault)
        actions = {
            "livekit_restart": lambda: world.restart_livekit(hard=False),
            "livekit_kill": lambda: world.restart_livekit(hard=True),
            "engine_kill": world.kill_engine,
            "database_lock": lambda: world.lock_database(1.0, me.audio.take_seat()),
            "drop": lambda: world.drop(me),
        }
        self._try(f"fault {fault} ({me.identity})", actions[fault]())
        if fault == "drop":  # a dropped connection stays down until the app rejoins
            self._try(f"rejoin after drop ({me.identity})", self._rejoin_when_down(me))

    async def _rejoin_when_down(self, me: Member) -> None:
        try:
            await me.audio.connected.wait_for(lambda c: not c, 10)
        except UTDStreamException:  # not a refusal to tolerate: the session missed its loss
            raise AssertionError(f"{me.identity} still says connected 10 s after its "
                                 "connection was dropped") from None
        await me.audio.rejoin()

    # -- the invariant ------------------------------------------------------------
    @invariant()
    def every_view_equals_the_engine(self) -> None:
        stats = self.run.stats
        try:
            took = self.run.run(self.world.converge())
        except AssertionError as exc:
            steps = "\n    ".join(self.steps)
            stats.divergences.append(f"after {self.last}: {exc}\n  steps:\n    {steps}")
            raise AssertionError(f"{exc}\nsteps of this example:\n    {steps}") from None
        if took > stats.worst_converge:
            stats.worst_converge, stats.worst_step = took, self.last


@pytest.fixture(scope="module")
def walk_run() -> Iterator[_Run]:
    global RUN
    require_livekit_binary()
    RUN = _Run()
    try:
        yield RUN
    finally:
        RUN.close()
        RUN = None


@pytest.mark.timeout(0)  # bounded by its steps; each convergence by CONVERGE_TIMEOUT
def test_random_walk_keeps_every_view_equal_to_the_engine(walk_run: _Run) -> None:
    try:
        while walk_run.stats.steps < STEPS:  # examples may stop short of their step count
            left = STEPS - walk_run.stats.steps
            run_state_machine_as_test(Walk, settings=settings(
                max_examples=max(1, left // STEPS_PER_EXAMPLE),
                stateful_step_count=STEPS_PER_EXAMPLE, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate, Phase.shrink]))
    finally:
        print("\n" + walk_run.stats.summary())
        for divergence in walk_run.stats.divergences:
            print("DIVERGENCE " + divergence)
