"""The narrated demo: all four products, headless participants, every state change shown.

``run_fake_demo`` runs on the in-memory fakes (one process, deterministic); the real-stack
demo (engine + livekit-server) builds on the same narration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TextIO

from stream_core import (
    UTDAudioRoomSession, UTDCallSession, UTDLiveStreamSession, UTDSeatGrid, UTDStreamClient,
    UTDStreamType,
)

__all__ = ["Narrator", "run_fake_demo", "run_real_demo", "run_scenario"]

TIMEOUT = 10.0


class Narrator:
    """Prints a timeline: milliseconds since start, who, what changed."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._t0 = time.perf_counter()
        self._unsubscribers: list[Callable[[], None]] = []
        self.lines = 0
        self.latencies: list[tuple[str, float]] = []

    def say(self, who: str, text: str) -> None:
        ms = (time.perf_counter() - self._t0) * 1000
        self._out.write(f"[{ms:9.1f} ms] {who:<8} {text}\n")
        self._out.flush()
        self.lines += 1

    def step(self, title: str) -> None:
        self._out.write(f"\n== {title}\n")

    def measure(self, label: str, started: float) -> None:
        """Record (and say) how long ``label`` took since ``started`` (perf_counter)."""
        ms = (time.perf_counter() - started) * 1000
        self.latencies.append((label, ms))
        self.say("measure", f"{label}: {ms:.1f} ms")

    def summary(self) -> None:
        if not self.latencies:
            return
        width = max(len(label) for label, _ in self.latencies)
        self._out.write("\nmeasured latencies\n")
        for label, ms in self.latencies:
            self._out.write(f"  {label:<{width}}  {ms:9.1f} ms\n")

    def follow(self, who: str, name: str, observable: Any,
               show: Callable[[Any], str] = repr) -> None:
        self._unsubscribers.append(
            observable.listen(lambda v: self.say(who, f"{name} -> {show(v)}")))

    def close(self) -> None:
        for unsubscribe in self._unsubscribers:
            unsubscribe()


def _grid(g: UTDSeatGrid | None) -> str:
    if g is None:
        return "-"
    seats = " ".join(f"[{s.index}:{'#' if s.locked else (s.occupant or '.')}]" for s in g.seats)
    reqs = f" requests={[r.identity for r in g.requests]}" if g.requests else ""
    return f"{g.mode.value} {seats}{reqs}"


def _names(ps: Any) -> str:
    return ", ".join(f"{p.identity}{'(' + '+'.join(t.source[:3] for t in p.tracks) + ')' if p.tracks else ''}"
                     for p in ps) or "nobody"


async def run_scenario(make_client: Callable[[], UTDStreamClient], n: Narrator) -> None:
    """The scenario itself, on whatever backends ``make_client`` wires."""
    # -- audio room ---------------------------------------------------------------------
    n.step("Audio room: a host seeds 8 seats, listeners join, one takes a seat")
    t0 = time.perf_counter()
    host = await make_client().join_audio_room("host", "lobby", as_host=True, seat_count=8)
    n.measure("join audio room (token + connect + seat grid)", t0)
    n.follow("host", "seats", host.seats, _grid)
    alice: UTDAudioRoomSession = await make_client().join_audio_room("alice", "lobby")
    bob: UTDAudioRoomSession = await make_client().join_audio_room("bob", "lobby")
    n.follow("bob", "hears", bob.remote_participants, _names)
    t0 = time.perf_counter()
    await alice.take_seat(0)
    n.say("alice", "took seat 0; microphone on")
    await bob.remote_participants.wait_for(
        lambda ps: any(p.identity == "alice" and p.has_track("microphone") for p in ps), TIMEOUT)
    n.measure("seat grant: take_seat() -> listener has the mic track", t0)
    await _hear(n, bob, "alice")
    n.step("Audio room, request mode: bob asks, the host approves")
    await host.setup_seats(seat_mode="request")
    request = await bob.request_to_speak()
    await host.approve_speaker(request.request_id)
    await bob.my_seat.wait_for(lambda s: s is not None, TIMEOUT)
    n.say("bob", f"seated at {bob.my_seat.value} by the host's approval")
    await alice.leave_seat()
    n.say("alice", "left her seat; microphone off")
    for room_session in (alice, bob, host):
        await room_session.dispose()

    # -- live stream --------------------------------------------------------------------
    n.step("Live stream: host goes live, a viewer raises a hand and is promoted")
    star: UTDLiveStreamSession = await make_client().join_live_stream("star", "show", as_host=True)
    fan: UTDLiveStreamSession = await make_client().join_live_stream("fan", "show")
    n.follow("star", "hands", star.hands)
    n.follow("fan", "on_stage", fan.on_stage)
    await star.go_live()
    await fan.request_stage()
    await star.hands.wait_for(lambda h: "fan" in h, TIMEOUT)
    t0 = time.perf_counter()
    await star.invite_to_stage("fan")
    await star.remote_participants.wait_for(
        lambda ps: any(p.identity == "fan" and p.has_track("camera") for p in ps), TIMEOUT)
    n.measure("stage promotion: invite_to_stage() -> host has the camera", t0)
    n.say("star", f"sees {_names(star.remote_participants.value)}")
    await fan.leave_stage()
    n.say("fan", "stepped down")
    for live_session in (fan, star):
        await live_session.dispose()

    # -- calls --------------------------------------------------------------------------
    for kind in (UTDStreamType.AUDIO_CALL, UTDStreamType.VIDEO_CALL):
        n.step(f"{kind.value.replace('_', ' ').capitalize()}: start, ring, accept, talk, hang up")
        caller_client, callee_client = make_client(), make_client()
        await caller_client.authenticate("ann")
        await callee_client.authenticate("ben")
        caller: UTDCallSession = caller_client.call_session(kind)
        callee: UTDCallSession = callee_client.call_session(kind)
        n.follow("ann", "call", caller.status, lambda s: s.value if s else "-")
        t0 = time.perf_counter()
        call = await caller.start("ben")
        incoming = await callee_client.next_incoming_call(timeout=TIMEOUT)
        assert incoming is not None
        n.say("ben", f"incoming {incoming.type.value} from {incoming.caller_identity}")
        await callee.ringing(call.call_id)
        await callee.accept(call.call_id)
        await caller.remote_participants.wait_for(
            lambda ps: any(p.identity == "ben" and p.has_track("microphone") for p in ps), TIMEOUT)
        await callee.remote_participants.wait_for(
            lambda ps: any(p.identity == "ann" and p.has_track("microphone") for p in ps), TIMEOUT)
        n.measure(f"{kind.value} setup: start -> both receive", t0)
        n.say("ann", f"receives {_names(caller.remote_participants.value)}")
        await _hear(n, caller, "ben")
        await callee.end()
        await caller.status.wait_for(lambda s: s is not None and s.is_terminal, TIMEOUT)
        for call_session in (caller, callee):
            await call_session.dispose()


async def _hear(n: Narrator, session: Any, identity: str) -> None:
    """On real media, measure what actually arrives (the fakes carry no audio)."""
    rms = getattr(session.room.media, "remote_audio_rms", None)
    if rms is not None:
        level = await rms(identity, seconds=0.3, timeout=TIMEOUT)
        n.say(session.identity, f"hears {identity} at RMS {level:.3f}"
              + ("" if level > 0.01 else "  (SILENT!)"))
        if level <= 0.01:
            raise RuntimeError(f"{session.identity} receives silence from {identity}")


async def run_real_demo(out: TextIO) -> int:
    """Start livekit-server and the engine on embedded defaults, then the scenario."""
    from stream_core.engine.settings import AppConfig
    from stream_devstack.stack import LocalStack

    n = Narrator(out)
    out.write("utd-stream demo: real livekit-server + engine + SQLite on loopback\n")
    n.say("setup", "starting livekit-server and the engine ...")
    stack = LocalStack(apps=[AppConfig("demo-app", "demo-key")])
    started = time.perf_counter()
    stack.start()
    n.measure("stack start (livekit-server + engine)", started)
    n.say("setup", f"engine {stack.base_url}, livekit {stack.livekit.url}")
    clients: list[UTDStreamClient] = []

    def make() -> UTDStreamClient:
        client = UTDStreamClient(app_id="demo-app", app_key="demo-key", base_url=stack.base_url)
        clients.append(client)
        return client

    try:
        await run_scenario(make, n)
    finally:
        n.close()
        for client in clients:
            client.dispose()
        stack.stop()
    n.summary()
    out.write(f"\ndemo finished: {n.lines} events narrated\n")
    return 0


async def run_fake_demo(out: TextIO) -> int:
    """The whole scenario on the in-memory fakes; returns a process exit code."""
    from adapters.fakes.engine import FakeEngine
    from adapters.fakes.media import FakeMedia
    from adapters.fakes.sfu import FakeSFU

    sfu = FakeSFU()
    engine = FakeEngine(sfu)
    narrator = Narrator(out)
    out.write("utd-stream demo (in-memory engine and SFU)\n")
    try:
        await run_scenario(lambda: UTDStreamClient(
            app_id="demo", app_key="demo", engine=engine,
            media_factory=lambda: FakeMedia(sfu)), narrator)
    finally:
        narrator.close()
        engine.close()
    narrator.summary()
    out.write(f"\ndemo finished: {narrator.lines} events narrated\n")
    return 0


def main(argv: list[str]) -> int:
    """``utd-stream demo [--fake]``: the narrated scenario on a real local stack (or fakes)."""
    import argparse
    import sys

    from adapters.entrypoints.join import quiet_media_logs

    parser = argparse.ArgumentParser(
        prog="utd-stream demo", description="run the narrated scenario through all four products")
    parser.add_argument("--fake", action="store_true", help="use the in-memory engine and SFU")
    args = parser.parse_args(argv)
    quiet_media_logs()
    return asyncio.run((run_fake_demo if args.fake else run_real_demo)(sys.stdout))
