"""Many workers, one truth, on the real cluster: PostgreSQL, Redis, two LiveKit nodes sharing
that Redis, Toxiproxy before LiveKit's API and the webhook ingress, three engine workers.

What is checked is always the end state as LiveKit reports it (read straight from both
nodes, never through the proxy) against the grid the engines committed: an HTTP 200 proves
nothing about who may publish. Worker ``i`` tells its clients to use node ``i % 2``; a room
lives on one node and LiveKit bridges a client that signalled the other one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
import requests
from livekit import rtc

from adapters.livekit.media import LiveKitMedia
from stream_core import UTDSession, UTDStreamClient
from stream_core.names import livekit_room_name
from stream_devstack.cluster import ClusterStack
from stream_engine.livekit_control import LiveKitControl, ParticipantSummary
from tests.cluster.conftest import RECONCILE_INTERVAL_S
from tests.engine.stack_fixtures import (
    EVENT_TIMEOUT, EventLog, Member, StackApi, connected, unique,
)

pytestmark = [pytest.mark.livekit, pytest.mark.engine, pytest.mark.cluster]

TAKERS = 12
BARRIER_TIMEOUT = 20.0
#: A committed change reaches LiveKit "within seconds", whichever worker committed it.
CONVERGE_TIMEOUT = 10.0
#: A drift nobody reports (a lost webhook) is healed by the timer's reconcile pass.
RECONCILE_TIMEOUT = 10 * RECONCILE_INTERVAL_S
#: Real media across two nodes: allow for LiveKit's participant-update batching.
MEDIA_TIMEOUT = 20.0


# ----------------------------------------------------------------------------- helpers


def all_at_once(count: int, task: Callable[[int], requests.Response]) -> list[requests.Response]:
    """Run ``task(i)`` for ``i < count`` in ``count`` threads released by one barrier."""
    barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)

    def run(i: int) -> requests.Response:
        barrier.wait()
        return task(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count), timeout=BARRIER_TIMEOUT + 30))


def seated(api: StackApi, member: Member) -> dict[str, int]:
    """The committed grid as one worker reads it: occupant -> seat index."""
    grid = api.seats(member)
    return {s["occupant"]: i for i, s in enumerate(grid["seats"]) if s["occupant"]}


async def livekit_views(cluster: ClusterStack, room: str) -> list[dict[str, ParticipantSummary]]:
    """Each node's answer to ListParticipants for ``room`` (straight to the node)."""
    views = []
    for node in cluster.nodes:
        async with LiveKitControl(node.url, cluster.api_key, cluster.api_secret) as control:
            listed = await control.list_participants(livekit_room_name(cluster.app.app_id, room))
        views.append({p.identity: p for p in listed})
    return views


async def until(probe: Callable[[], Any], what: str, timeout: float) -> Any:
    """Poll ``probe`` (sync or async) until truthy; fail with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last is True or (last and not isinstance(last, str)):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.1)  # bounded poll of server state that has no event of its own


async def http(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def grants_match(cluster: ClusterStack, api: StackApi, host: Member,
                 speakers: list[Member]) -> Callable[[], Any]:
    """A probe: True when both nodes agree with the committed grid on every speaker's
    permission, else a description of the drift (a str, so :func:`until` keeps polling)."""
    async def probe() -> Any:
        grid = await http(seated, api, host)
        views = await livekit_views(cluster, host.room)
        drift = []
        for n, view in enumerate(views):
            for speaker in speakers:
                found = view.get(speaker.identity)
                may = found is not None and found.can_publish
                if found is None or may != (speaker.identity in grid):
                    drift.append(f"node {n}: {speaker.identity} seated="
                                 f"{speaker.identity in grid} can_publish={may}")
        return True if not drift else "; ".join(drift)
    return probe


async def publish_microphone(room: rtc.Room) -> None:
    source = rtc.AudioSource(48_000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("mic", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await asyncio.wait_for(room.local_participant.publish_track(track, options), EVENT_TIMEOUT)


def permission_is(identity: str, can_publish: bool) -> Callable[..., bool]:
    def match(p: rtc.Participant, *_: Any) -> bool:
        return p.identity == identity and p.permissions.can_publish is can_publish
    return match


async def seated_publishing_speaker(cluster: ClusterStack, apis: list[StackApi], room: str,
                                    speaker: Member, rtc_room: rtc.Room) -> None:
    """``speaker`` (connected in ``rtc_room``) takes seat 1 and publishes its microphone
    until LiveKit lists the track."""
    events = EventLog(rtc_room, "participant_permissions_changed")
    await http(apis[0].act, speaker, "seats/take", {"seat_index": 1})
    await events.wait_for("participant_permissions_changed",
                          permission_is(speaker.identity, True), "the grant")
    await publish_microphone(rtc_room)

    async def on_air() -> bool:
        views = await livekit_views(cluster, room)
        return all(speaker.identity in v and v[speaker.identity].tracks for v in views)
    await until(on_air, "both nodes to list the microphone", EVENT_TIMEOUT)


# ----------------------------------------------------------------------------- (a) one winner


def test_concurrent_takers_over_all_workers_one_winner(apis: list[StackApi]) -> None:
    room, host = apis[0].audio_room(seats=4)
    takers = [apis[i % len(apis)].join(unique(f"taker{i}"), room, "audio_room")
              for i in range(TAKERS)]
    answers = all_at_once(TAKERS, lambda i: apis[i % len(apis)].post(
        apis[0].room(room, "seats/take"), {"seat_index": 1}, bearer=takers[i].bearer))
    assert Counter(a.status_code for a in answers) == {200: 1, 409: TAKERS - 1}, \
        [a.text for a in answers]
    (winner,) = [t for t, a in zip(takers, answers) if a.status_code == 200]
    for api in apis:  # every worker reads the same committed grid
        assert seated(api, host) == {winner.identity: 1}


# ----------------------------------------------------------------------------- (c) two nodes


@pytest.mark.parametrize("speaker_worker", [0, 1])
async def test_speaker_on_one_node_is_heard_on_the_other(
        cluster: ClusterStack, speaker_worker: int) -> None:
    """Speaker and listener signal different nodes (worker w sends its clients to node
    w % 2); the seat grant goes through the speaker's worker, 0 or 1."""
    listener_worker = 1 - speaker_worker
    assert cluster.node_of(speaker_worker) != cluster.node_of(listener_worker)
    name, tag = unique("cross"), unique("")[1:]
    clients = [UTDStreamClient(app_id=cluster.app.app_id, app_key=cluster.app.app_key,
                               base_url=cluster.worker_urls[w])
               for w in (speaker_worker, listener_worker)]
    sessions: list[UTDSession] = []
    try:
        speaker = await clients[0].join_audio_room(f"sp-{tag}", name, as_host=True,
                                                   seat_count=4)
        sessions.append(speaker)
        listener = await clients[1].join_audio_room(f"li-{tag}", name)
        sessions.append(listener)
        await speaker.take_seat(0)
        await listener.remote_participants.wait_for(
            lambda ps: any(p.identity == f"sp-{tag}" and p.has_track("microphone") for p in ps),
            MEDIA_TIMEOUT, what="the speaker's microphone on the other node")
        media = listener.room.media
        assert isinstance(media, LiveKitMedia)
        level = await media.remote_audio_rms(f"sp-{tag}", seconds=0.5, timeout=MEDIA_TIMEOUT)
        assert level > 0.01, f"the speaker reached the other node silent (rms={level})"
    finally:
        for session in reversed(sessions):
            await session.dispose()
        for client in clients:
            client.dispose()


# ----------------------------------------------------------------------------- (b) commit order


async def test_rapid_seat_changes_alternating_workers_leave_livekit_equal_to_the_grid(
        cluster: ClusterStack, apis: list[StackApi]) -> None:
    room, host = await http(apis[0].audio_room, seats=4)
    speakers = [await http(apis[k % len(apis)].join, unique(f"sp{k}"), room, "audio_room")
                for k in range(3)]
    async with connected(cluster.node_urls[0], speakers[0].token), \
            connected(cluster.node_urls[1], speakers[1].token), \
            connected(cluster.node_urls[0], speakers[2].token):

        def churn(k: int) -> None:
            for step in range(12):  # take and leave alternate, and so do the workers
                api = apis[(k + step) % len(apis)]
                if step % 2 == 0:
                    api.post(api.room(room, "seats/take"), {"seat_index": (k + step) % 4},
                             bearer=speakers[k].bearer)
                else:
                    api.post(api.room(room, "seats/leave"), bearer=speakers[k].bearer)

        def run() -> None:
            with ThreadPoolExecutor(3) as pool:
                list(pool.map(churn, range(3), timeout=60))
            # end on takes, once the churn is over (a take during it may find its seat held
            # by another churner for a moment), so the final grid has someone to grant
            for k, speaker in enumerate(speakers):
                api = apis[k % len(apis)]
                answer = api.post(api.room(room, "seats/take"), {"seat_index": k},
                                  bearer=speaker.bearer)
                assert answer.status_code == 200, answer.text

        await asyncio.to_thread(run)
        assert await http(seated, apis[1], host) == {s.identity: k for k, s in enumerate(speakers)}
        await until(grants_match(cluster, apis[2], host, speakers),
                    "LiveKit's permissions to equal the grid", CONVERGE_TIMEOUT)


# ----------------------------------------------------------------------------- (d) kill -9


async def test_kill_9_of_a_worker_mid_burst_loses_no_committed_effect(
        cluster: ClusterStack, apis: list[StackApi]) -> None:
    victim = len(apis) - 1  # webhooks go to worker 0, which stays up
    room, host = await http(apis[0].audio_room, seats=4)
    speakers = [await http(apis[victim].join, unique(f"sp{k}"), room, "audio_room")
                for k in range(3)]
    served_after = Counter[int]()
    try:
        async with connected(cluster.node_urls[0], speakers[0].token), \
                connected(cluster.node_urls[1], speakers[1].token), \
                connected(cluster.node_urls[0], speakers[2].token):
            killed = threading.Event()

            def burst(k: int) -> None:
                for step in range(40):
                    api = apis[0] if killed.is_set() else apis[victim]
                    action = "seats/take" if step % 2 == 0 else "seats/leave"
                    body = {"seat_index": k} if step % 2 == 0 else {}
                    try:
                        answer = api.post(api.room(room, action), body, bearer=speakers[k].bearer)
                    except requests.ConnectionError:
                        continue  # the victim died under this request: its outcome is unknown
                    if killed.is_set() and api is apis[0]:
                        served_after[answer.status_code] += 1

            def killer() -> None:
                time.sleep(0.6)  # into the burst: a bounded delay, the burst lasts longer
                cluster.kill_worker(victim)
                killed.set()

            def run() -> None:
                with ThreadPoolExecutor(4) as pool:
                    futures = [pool.submit(burst, k) for k in range(3)] + [pool.submit(killer)]
                    for future in futures:
                        future.result(timeout=60)

            await asyncio.to_thread(run)
            assert not cluster.workers[victim].alive
            assert served_after and set(served_after) <= {200, 409}, served_after
            await until(grants_match(cluster, apis[1], host, speakers),
                        "LiveKit's permissions to equal the grid after the kill",
                        CONVERGE_TIMEOUT)
    finally:
        await asyncio.to_thread(cluster.restart_worker, victim)
        apis[victim].reset()


# ----------------------------------------------------------------------------- (e) API cut


@asynccontextmanager
async def acted_on_while_the_api_is_cut(cluster: ClusterStack, apis: list[StackApi],
                                        action: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """A seated, publishing speaker (connected through node 0) whom the host (through
    worker 1) hits with ``action`` (``seats/kick``, ``ban``) while the engines' path to
    LiveKit's API is cut, then restored; yields (room, host, speaker), still connected."""
    room, host = await http(apis[1].audio_room, seats=2)
    speaker = await http(apis[0].join, unique("speaker"), room, "audio_room")
    rtc_room = rtc.Room()
    async with connected(cluster.node_urls[0], speaker.token, rtc_room):
        await seated_publishing_speaker(cluster, apis, room, speaker, rtc_room)
        cluster.cut_livekit_api()
        try:
            done = await http(apis[1].post, apis[1].room(room, action),
                              {"identity": speaker.identity}, bearer=host.bearer)
            assert done.status_code == 200, done.text
        finally:
            cluster.restore_livekit_api()
        yield room, host, speaker


async def test_kick_while_livekit_api_is_cut_stops_the_speaker_once_restored(
        cluster: ClusterStack, apis: list[StackApi]) -> None:
    async with acted_on_while_the_api_is_cut(cluster, apis, "seats/kick") as (room, host,
                                                                               speaker):
        assert speaker.identity not in await http(seated, apis[0], host)

        async def silenced() -> Any:
            views = await livekit_views(cluster, room)
            still = [(n, v[speaker.identity].can_publish, len(v[speaker.identity].tracks))
                     for n, v in enumerate(views) if speaker.identity in v
                     and (v[speaker.identity].can_publish or v[speaker.identity].tracks)]
            return True if not still else f"still publishing (node, can_publish, tracks): {still}"
        await until(silenced, "the kicked speaker to stop publishing", CONVERGE_TIMEOUT)


async def test_ban_while_livekit_api_is_cut_disconnects_the_speaker_once_restored(
        cluster: ClusterStack, apis: list[StackApi]) -> None:
    async with acted_on_while_the_api_is_cut(cluster, apis, "ban") as (room, _, speaker):
        async def gone() -> Any:
            views = await livekit_views(cluster, room)
            there = [n for n, v in enumerate(views) if speaker.identity in v]
            return True if not there else f"still connected per nodes {there}"
        await until(gone, "the banned speaker to be removed", CONVERGE_TIMEOUT)
    again = await http(apis[2].mint, speaker.identity, room, "audio_room")
    assert again.status_code == 403 and again.json()["error"]["code"] == "banned"


# ----------------------------------------------------------------------------- (f) reconcile


async def test_a_dropped_participant_left_is_healed_by_the_reconcile_pass(
        cluster: ClusterStack, apis: list[StackApi]) -> None:
    room, host = await http(apis[0].audio_room, seats=2)
    speaker = await http(apis[1].join, unique("speaker"), room, "audio_room")
    rtc_room = rtc.Room()
    events = EventLog(rtc_room, "participant_permissions_changed")
    async with connected(cluster.node_urls[1], speaker.token, rtc_room):
        await http(apis[1].act, speaker, "seats/take", {"seat_index": 0})
        await events.wait_for("participant_permissions_changed",
                              permission_is(speaker.identity, True), "the grant")
        cluster.drop_webhooks()
    try:
        async def left() -> bool:
            return all(speaker.identity not in v for v in await livekit_views(cluster, room))
        await until(left, "LiveKit to see the speaker leave", EVENT_TIMEOUT)
        # the participant_left webhook went nowhere; only a reconcile pass can free the seat
        await until(lambda: speaker.identity not in seated(apis[2], host) or
                    f"still seated: {seated(apis[2], host)}",
                    "the reconcile pass to free the departed speaker's seat", RECONCILE_TIMEOUT)
    finally:
        cluster.restore_webhooks()
