"""Call setup as an app does it, SDK vs raw, with the milestones of every kept trial.

The callee waits in ``next_incoming_call`` (its long-poll open at the engine, checked on
the engine's ``/metrics`` before the clock starts); the caller ``start()``s; the callee
accepts what the long-poll delivers; until both are subscribed to each other's microphone.
The raw floor: two ``rtc`` rooms connecting and publishing at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests
from livekit import rtc

from bench.paired import Paired, quartiles, run_pairs, spread
from bench.rig import (
    TIMEOUT, Clients, Endpoints, Plan, Raw, event, ms, room_options, subscribed,
    subscribed_to,
)
from stream_core import UTDSession, UTDStreamType
from stream_devstack.stack import LocalStack

__all__ = ["Milestones", "call_pairs", "milestone_rows"]


def _long_polls_open(metrics_url: str) -> int:
    for line in requests.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith("utd_engine_long_polls_open"):
            return int(float(line.split()[-1]))
    raise RuntimeError("the engine's /metrics has no utd_engine_long_polls_open")


async def _callee_waiting(metrics_url: str) -> None:
    """Until the callee's long-poll is open at the engine (bounded; before the clock)."""
    deadline = time.monotonic() + TIMEOUT
    while await asyncio.to_thread(_long_polls_open, metrics_url) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError("the callee's long-poll never reached the engine")
        await asyncio.sleep(0.005)


Milestones = dict[str, list[float]]


async def call_pairs(stack: LocalStack, ends: Endpoints, clients: Clients, plan: Plan
                     ) -> tuple[Paired, Milestones, Milestones]:
    """Call setup pairs, and the milestones of every kept trial (ms from its start)."""
    raw = Raw(stack, ends.livekit)
    sdk_marks: list[dict[str, float]] = []
    raw_marks: list[dict[str, float]] = []

    async def sdk() -> float:
        tag = uuid.uuid4().hex[:8]
        a, b = clients(), clients()
        await a.authenticate(f"a-{tag}")
        await b.authenticate(f"b-{tag}")
        caller = a.call_session(UTDStreamType.AUDIO_CALL)
        callee = b.call_session(UTDStreamType.AUDIO_CALL)
        incoming = asyncio.ensure_future(b.next_incoming_call(timeout=TIMEOUT))
        await _callee_waiting(ends.metrics)
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        def at(name: str) -> Callable[[Any], None]:
            def mark(value: Any) -> None:
                if value:
                    marks.setdefault(name, ms(t0))
            return mark

        def sees(name: str, session: UTDSession, other: str, subscribed: bool) -> None:
            session.remote_participants.listen(lambda ps: at(name)(any(
                p.identity == other and any(t.source == "microphone"
                                            and (t.subscribed or not subscribed)
                                            for t in p.tracks) for p in ps)))

        caller.call_id.listen(at("1 caller: call created (engine answer)"))
        incoming.add_done_callback(lambda _: at("2 callee: call delivered (long-poll)")(True))
        callee.call_id.listen(at("3 callee: accepted (engine answer)"))
        caller.connected.listen(at("4 caller: connected"))
        callee.connected.listen(at("5 callee: connected"))
        sees("6 callee sees the caller's mic published", callee, f"a-{tag}", False)
        sees("7 caller sees the callee's mic published", caller, f"b-{tag}", False)
        sees("8 callee subscribed to the caller", callee, f"a-{tag}", True)
        sees("9 caller subscribed to the callee", caller, f"b-{tag}", True)

        async def answer() -> None:
            call = await incoming
            assert call is not None, "no incoming call"
            await callee.accept(call.call_id)

        await asyncio.gather(caller.start(f"b-{tag}"), answer(),
                             subscribed_to(caller, f"b-{tag}", "microphone"),
                             subscribed_to(callee, f"a-{tag}", "microphone"))
        took = ms(t0)
        sdk_marks.append(marks)
        await caller.end()
        await callee.dispose()
        await caller.dispose()
        return took

    async def floor() -> float:
        room = f"raw-call-{uuid.uuid4().hex[:8]}"
        tokens = {who: raw.token(room, who, publish=True, sources=["microphone"])
                  for who in ("a", "b")}
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        async def party(who: str, other: str) -> rtc.Room:
            r = rtc.Room()
            got = event(r, "track_subscribed",
                         subscribed(other, rtc.TrackSource.SOURCE_MICROPHONE))
            await r.connect(ends.livekit, tokens[who], room_options())
            marks.setdefault(f"{who}: connected", ms(t0))
            await raw.publish(r, "microphone")
            marks.setdefault(f"{who}: published", ms(t0))
            await asyncio.wait_for(got.wait(), TIMEOUT)
            marks.setdefault(f"{who}: subscribed to {other}", ms(t0))
            return r

        rooms = await asyncio.gather(party("a", "b"), party("b", "a"))
        took = ms(t0)
        raw_marks.append(marks)
        await asyncio.gather(*(r.disconnect() for r in rooms))
        return took

    paired = await run_pairs("call setup: start + long-poll + accept -> both subscribed vs "
                             "two rtc connects + publish", sdk, floor, pairs=plan.call,
                             warmup=plan.warmup)
    return paired, _kept(sdk_marks, plan.warmup), _kept(raw_marks, plan.warmup)


def _kept(marks: list[dict[str, float]], warmup: int) -> Milestones:
    out: Milestones = {}
    for trial in marks[warmup:]:
        for name, value in trial.items():
            out.setdefault(name, []).append(value)
    return out


def milestone_rows(side: str, marks: Milestones) -> list[dict[str, Any]]:
    return [{"call setup milestone": f"{side}: {name}",
             "median ms from start": round(quartiles(values)[1], 1),
             "IQR": spread(values, 0), "trials": len(values)}
            for name, values in sorted(marks.items(), key=lambda kv: quartiles(kv[1])[1])]
