"""The MediaPort contract against ``LiveKitMedia`` and a real loopback livekit-server.

The server side of the contract is :class:`LiveKitContractServer`: tokens from
``stream_engine.livekit_control.mint_token`` and RoomService calls through ``LiveKitControl``.

Two LiveKit timings are waited for here, in the harness, not in the cases (no assertion is
changed; the fake guarantees both at once):

* livekit-server batches the join/leave updates of participants that publish nothing and
  sends them every 3 s, so a listener's join reaches the others up to ~3 s late.
  :class:`LiveKitContractRoom` returns from ``join`` only once every peer already connected
  has heard the newcomer's ``ParticipantConnected``. Without it, a case that removes or
  messages a just-joined listener races the batch (a participant that joins and leaves
  within one batch is never announced at all).
* ``publish_track`` returns when the server acknowledges the track, but the others hear
  ``TrackPublished`` only once its media arrives, ~20-40 ms later; a permission update sent
  in between overtakes it. :class:`PublishSettlingMedia` returns from ``set_microphone`` /
  ``set_camera`` only once every other connected peer has heard the new track.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from adapters.livekit.media import LiveKitMedia
from stream_engine.livekit_control import LiveKitControl, mint_token
from stream_devstack.livekit_process import LiveKitServer
from stream_core.events import ConnectionState, MediaEvent, ParticipantConnected, TrackPublished
from stream_core.models import UTDPermissions, UTDRemoteParticipant, UTDTrack
from stream_core.ports import MediaPort

from .media_contract import (
    LISTENER, ContractRoom, MediaBackend, MediaContract, Peer, Recorder,
)

pytestmark = pytest.mark.livekit

TOKEN_TTL_S = 600


class LiveKitContractServer:
    """``ContractServer`` over a real livekit-server (create inside the test's loop)."""

    def __init__(self, server: LiveKitServer) -> None:
        self._server = server
        self.control = LiveKitControl(server.url, server.api_key, server.api_secret)

    @property
    def url(self) -> str:
        return self._server.url

    async def issue_token(self, *, room: str, identity: str, permissions: UTDPermissions,
                          name: str | None = None) -> str:
        return mint_token(self._server.api_key, self._server.api_secret, identity=identity,
                          room=room, name=name, can_publish=permissions.can_publish,
                          can_publish_sources=list(permissions.sources),
                          can_subscribe=permissions.can_subscribe,
                          can_publish_data=permissions.can_publish_data,
                          ttl_seconds=TOKEN_TTL_S)

    async def update_permissions(self, room: str, identity: str,
                                 permissions: UTDPermissions) -> None:
        await self.control.update_permissions(room, identity,
                                              can_publish=permissions.can_publish,
                                              sources=list(permissions.sources))

    async def set_room_metadata(self, room: str, metadata: str) -> None:
        await self.control.set_room_metadata(room, metadata)

    async def list_participants(self, room: str) -> list[UTDRemoteParticipant]:
        return [
            UTDRemoteParticipant(
                identity=p.identity, can_publish=p.can_publish,
                tracks=tuple(UTDTrack(sid=t.sid, kind=t.kind, source=t.source, muted=t.muted)
                             for t in p.tracks))
            for p in await self.control.list_participants(room)
        ]

    async def remove_participant(self, room: str, identity: str) -> None:
        await self.control.remove_participant(room, identity)


@dataclass
class LiveKitContractRoom(ContractRoom):
    """A contract room that waits out LiveKit's propagation delays (see the module doc)."""

    def __post_init__(self) -> None:
        self.backend = replace(self.backend, new_media=lambda: PublishSettlingMedia(self))

    def others(self, identity: str | None) -> list[tuple[Peer, int]]:
        """Connected peers other than ``identity``, each with its current event mark."""
        return [(peer, peer.events.mark()) for peer in self.peers
                if peer.identity != identity
                and peer.media.connection_state is ConnectionState.CONNECTED]

    async def join(self, identity: str, permissions: UTDPermissions = LISTENER, *,
                   auto_subscribe: bool = True) -> Peer:
        others = self.others(identity)
        joined = await super().join(identity, permissions, auto_subscribe=auto_subscribe)
        for peer, since in others:
            await peer.events.wait_for(ParticipantConnected, identity=identity, since=since)
        return joined


class PublishSettlingMedia(LiveKitMedia):
    """``LiveKitMedia`` whose publishing returns once the room's other peers heard of it."""

    def __init__(self, room: LiveKitContractRoom) -> None:
        super().__init__()
        self._contract_room = room

    async def set_microphone(self, enabled: bool) -> None:
        await self._settled("microphone", enabled, super().set_microphone)

    async def set_camera(self, enabled: bool) -> None:
        await self._settled("camera", enabled, super().set_camera)

    async def _settled(self, source: str, enabled: bool,
                       action: Callable[[bool], Awaitable[None]]) -> None:
        already = self.microphone_enabled if source == "microphone" else self.camera_enabled
        others = self._contract_room.others(self.identity)
        await action(enabled)
        if enabled and not already:
            for peer, since in others:
                await _heard_track(peer.events, self.identity, source, since)


async def _heard_track(events: Recorder, identity: str | None, source: str, since: int) -> None:
    while not any(e.track.source == source
                  for e in events.of(TrackPublished, since=since, identity=identity)):
        await events.wait_for(MediaEvent, since=events.mark())


async def _default_feeds_run(media: MediaPort) -> None:
    """LiveKit's default feeds (a 440 Hz tone, a test pattern) run while published."""


class TestLiveKitMediaContract(MediaContract):
    @pytest.fixture
    async def media_backend(self, livekit_server: LiveKitServer) -> AsyncIterator[MediaBackend]:
        server = LiveKitContractServer(livekit_server)
        try:
            yield MediaBackend(new_media=LiveKitMedia, server=server, feed=_default_feeds_run)
        finally:
            await server.control.aclose()

    @pytest.fixture
    async def room(self, media_backend: MediaBackend) -> AsyncIterator[ContractRoom]:
        room = LiveKitContractRoom(media_backend)
        yield room
        await room.close()
