"""The random walk's world: a real stack, 4 SDK participants in an audio room, a live
stream and 1:1 calls, the faults it can suffer, and the one invariant it must keep.

The invariant (:meth:`World.divergences`): for every session that is connected and not
recovering, its mirror (seat grid, stage and hands, call status) equals what the engine
answers now; and for every participant LiveKit has in a room, its permission equals the
engine's grant and its published tracks equal what its session should publish (the grant;
for a live-stream host, the grant it put live). :meth:`World.converge` waits (bounded)
for it and returns how long that took, or raises with the divergences.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from stream_core import (
    UTDAudioRoomSession, UTDCallSession, UTDLiveStreamSession, UTDStreamClient,
    UTDStreamException, UTDStreamType, operations as ops,
)
from stream_core.events import ConnectionState
from stream_core.names import livekit_call_name, livekit_room_name
from stream_core.rooms.calls import call_publish_sources
from stream_core.rooms.seats import SeatRoom
from stream_core.rooms.stage import LiveStage
from stream_core.sessions.recovery import RejoinPolicy
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import LiveKitControl

__all__ = ["World", "Member", "Stats", "CONVERGE_TIMEOUT"]

#: How long a step may take to converge before it counts as a divergence.
CONVERGE_TIMEOUT = 20.0
_POLL = 0.2
#: How much of the sessions' recent events and the engine's log a divergence report shows.
_TRACE_LINES = 60
WALK_POLICY = RejoinPolicy(first_delay=0.2, max_delay=2.0)


@dataclass
class Member:
    identity: str
    client: UTDStreamClient
    audio: UTDAudioRoomSession
    live: UTDLiveStreamSession
    call: UTDCallSession | None = None


@dataclass
class Stats:
    steps: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    divergences: list[str] = field(default_factory=list)
    worst_converge: float = 0.0
    worst_step: str = ""

    def fault(self, name: str) -> None:
        self.faults[name] = self.faults.get(name, 0) + 1

    def summary(self) -> str:
        faults = sum(self.faults.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (f"walk: {self.steps} steps, {faults} faults injected ({detail or 'none'}), "
                f"{len(self.divergences)} divergences, worst time-to-converge "
                f"{self.worst_converge:.2f} s (after {self.worst_step or '-'})")


class World:
    """One example's world on a shared stack: fresh rooms, fresh sessions."""

    def __init__(self, stack: LocalStack, control: LiveKitControl, tag: str) -> None:
        self.stack = stack
        self.control = control
        self.audio_room = f"{tag}-audio"
        self.live_room = f"{tag}-live"
        self.members: list[Member] = []
        self.calls: list[str] = []
        #: the sessions' recent events (connection changes, recovery), for a divergence report
        self.trace: collections.deque[str] = collections.deque(maxlen=_TRACE_LINES)
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def host(self) -> Member:
        return self.members[0]

    async def open(self, count: int) -> None:
        for n in range(count):
            identity = f"p{n}"
            client = UTDStreamClient(app_id=self.stack.app.app_id,
                                     app_key=self.stack.app.app_key,
                                     base_url=self.stack.base_url, rejoin_policy=WALK_POLICY)
            await client.authenticate(identity)
            audio = await client.join_audio_room(identity, self.audio_room, as_host=n == 0,
                                                 seat_count=4 if n == 0 else None)
            live = await client.join_live_stream(identity, self.live_room, as_host=n == 0)
            self.members.append(Member(identity, client, audio, live))
            self.watch(f"{identity} audio", audio)
            self.watch(f"{identity} live", live)
        await self.host.live.go_live(with_video=False)

    def watch(self, who: str, session: Any) -> None:
        """Keep ``session``'s raw events (connection changes, recovery) in :attr:`trace`."""
        def note(what: object) -> None:
            self.trace.append(f"{time.strftime('%H:%M:%S')} {who}: {what}")

        async def follow() -> None:
            async for event in session.events:
                if type(event).__name__ not in _QUIET_EVENTS:
                    note(event)

        self._watchers.append(asyncio.get_running_loop().create_task(follow()))

    def report(self) -> str:
        """Each session's connection now, the recent trace, and the engine's recent log."""
        lines = []
        for m in self.members:
            for kind, session in (("audio", m.audio), ("live", m.live), ("call", m.call)):
                if session is not None:
                    room = session.room
                    lines.append(f"{m.identity} {kind}: {room.connection_state.value.name} "
                                 f"reason={room.disconnect_reason} "
                                 f"recovering={session.recovering}")
        engine_log = self.stack.log_path.read_text(errors="replace").splitlines()
        return "\n  ".join(["sessions:", *lines, "recent events:", *self.trace,
                            "engine log:", *engine_log[-_TRACE_LINES:]])

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for member in self.members:
            for session in (member.call, member.live, member.audio):
                if session is not None:
                    await session.dispose()
            member.client.dispose()

    # -- faults -------------------------------------------------------------------
    async def restart_livekit(self, hard: bool) -> None:
        await asyncio.to_thread(self.stack.livekit.restart, hard=hard)

    async def kill_engine(self) -> None:
        await asyncio.to_thread(self.stack.kill_engine)
        await asyncio.to_thread(self.stack.restart_engine)

    async def lock_database(self, seconds: float, during: Any) -> None:
        """Hold an exclusive lock on the engine's SQLite file for ``seconds`` while
        ``during`` (a coroutine) runs: the engine waits or answers 503."""
        path = self.stack.state_dir / "engine.db"
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            db = sqlite3.connect(path, timeout=10)
            try:
                db.execute("BEGIN EXCLUSIVE")
                held.set()
                release.wait(seconds)
                db.rollback()
            finally:
                db.close()

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        await asyncio.to_thread(held.wait, 10)
        try:
            await during
        finally:
            release.set()
            await asyncio.to_thread(thread.join, 15)

    async def drop(self, member: Member) -> None:
        """The member's audio-room connection goes away behind the SDK's back (its rtc
        room is closed directly): LiveKit reports the leave, the engine frees the seat."""
        media: Any = member.audio.room.media
        if media.rtc_room is not None:
            await media.rtc_room.disconnect()

    # -- the invariant --------------------------------------------------------------
    async def converge(self, timeout: float = CONVERGE_TIMEOUT) -> float:
        started = time.monotonic()
        found: list[str] = []
        while time.monotonic() - started < timeout:
            found = await self.divergences()
            if not found:
                return time.monotonic() - started
            await asyncio.sleep(_POLL)
        raise AssertionError("diverged for %.0f s:\n  %s\n  %s" % (
            timeout, "\n  ".join(found), self.report()))

    async def divergences(self) -> list[str]:
        try:
            return await self._divergences()
        except UTDStreamException as exc:  # the engine or LiveKit is not back yet
            return [f"cannot read the truth: {exc}"]

    async def _divergences(self) -> list[str]:
        out: list[str] = []
        engine = self.host.client.engine
        bearer = self.host.audio._bearer
        grid = await asyncio.to_thread(engine.run, ops.GET_SEATS, bearer,
                                       room_name=self.audio_room)
        stage = await asyncio.to_thread(engine.run, ops.GET_STAGE, bearer,
                                        room_name=self.live_room)
        app = self.stack.app.app_id
        grants: dict[str, dict[str, frozenset[str]]] = {
            livekit_room_name(app, self.audio_room): {},
            livekit_room_name(app, self.live_room): {}}
        should: dict[tuple[str, str], frozenset[str]] = {}
        mirror = LiveStage.restore(stage)
        for m in self.members:
            a_lk, l_lk = livekit_room_name(app, self.audio_room), livekit_room_name(app,
                                                                                   self.live_room)
            grants[a_lk][m.identity] = SeatRoom.grid_publish_sources(grid, m.identity)
            grants[l_lk][m.identity] = mirror.publish_sources(m.identity)
            if _steady(m.audio):
                should[(a_lk, m.identity)] = grants[a_lk][m.identity]
                if m.audio.seats.value != grid:
                    out.append(f"{m.identity} audio mirror v{_v(m.audio.seats.value)} != "
                               f"engine v{grid.version}")
            if _steady(m.live):
                live = grants[l_lk][m.identity]
                should[(l_lk, m.identity)] = live & m.live._live if m is self.host else live
                if (m.live.stage.value, m.live.hands.value) != (stage.members, stage.hands):
                    out.append(f"{m.identity} stage mirror != engine v{stage.version}")
            call = m.call
            if call is not None and call.call_id.value is not None:
                truth = await asyncio.to_thread(engine.run, ops.GET_CALL, call._bearer,
                                                call_id=call.call_id.value)
                lk = livekit_call_name(app, truth.call_id)
                grants.setdefault(lk, {})[m.identity] = call_publish_sources(call.type,
                                                                             truth.status)
                if _steady(call):
                    should[(lk, m.identity)] = grants[lk][m.identity]
                if call.status.value is not truth.status and not call.recovering:
                    out.append(f"{m.identity} call {truth.call_id} mirror "
                               f"{call.status.value} != engine {truth.status}")
        for lk_room, wanted in grants.items():
            for p in await self.control.list_participants(lk_room):
                if p.identity not in wanted:
                    continue
                granted = frozenset(p.can_publish_sources) if p.can_publish else frozenset()
                if granted != wanted[p.identity]:
                    out.append(f"LiveKit grants {p.identity} {sorted(granted)} in {lk_room}, "
                               f"engine {sorted(wanted[p.identity])}")
                published = frozenset(t.source for t in p.tracks)
                expected = should.get((lk_room, p.identity))
                if not published <= wanted[p.identity]:
                    out.append(f"{p.identity} publishes {sorted(published)} in {lk_room} "
                               f"beyond its grant {sorted(wanted[p.identity])}")
                elif expected is not None and published != expected:
                    out.append(f"{p.identity} publishes {sorted(published)} in {lk_room}, "
                               f"should {sorted(expected)}")
        return out


#: Events too frequent to be worth a line of the trace.
_QUIET_EVENTS = frozenset({"ActiveSpeakersChanged", "TrackSubscribed", "TrackUnsubscribed",
                           "DataReceived", "RoomMetadataChanged"})


def _steady(session: Any) -> bool:
    return session.room.connection_state.value is ConnectionState.CONNECTED \
        and not session.recovering


def _v(grid: Any) -> Any:
    return None if grid is None else grid.version


def call_type_of(video: bool) -> UTDStreamType:
    return UTDStreamType.VIDEO_CALL if video else UTDStreamType.AUDIO_CALL
