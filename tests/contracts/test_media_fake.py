"""The MediaPort contract against the in-memory ``FakeSFU`` / ``FakeMedia``.

The control calls go through ``asyncio.to_thread``, as the fake engine makes them, so the
contract also covers the SFU's cross-thread delivery onto each participant's loop.
"""

from __future__ import annotations

import asyncio
import math
from array import array

import pytest

from adapters.fakes.sfu import FakeMedia, FakeSFU
from stream_core.frames import UTDVideoFormat, UTDVideoFrame
from stream_core.models import UTDPermissions, UTDRemoteParticipant
from stream_core.ports import MediaPort

from .media_contract import MediaBackend, MediaContract


class ThreadedFakeServer:
    """``ContractServer`` over a ``FakeSFU``, calling it from worker threads."""

    def __init__(self, sfu: FakeSFU) -> None:
        self.sfu = sfu

    @property
    def url(self) -> str:
        return self.sfu.url

    async def issue_token(self, *, room: str, identity: str, permissions: UTDPermissions,
                          name: str | None = None) -> str:
        return await asyncio.to_thread(self.sfu.issue_token, room=room, identity=identity,
                                       name=name, permissions=permissions)

    async def update_permissions(self, room: str, identity: str,
                                 permissions: UTDPermissions) -> None:
        await asyncio.to_thread(self.sfu.update_permissions, room, identity, permissions)

    async def set_room_metadata(self, room: str, metadata: str) -> None:
        await asyncio.to_thread(self.sfu.set_room_metadata, room, metadata)

    async def list_participants(self, room: str) -> list[UTDRemoteParticipant]:
        return await asyncio.to_thread(self.sfu.list_participants, room)

    async def remove_participant(self, room: str, identity: str) -> None:
        await asyncio.to_thread(self.sfu.remove_participant, room, identity)


def tone(frequency: float = 440.0, seconds: float = 0.5, rate: int = 48_000) -> list[bytes]:
    """10 ms frames of a 0.3-amplitude sine, as 16-bit PCM."""
    n = int(rate * seconds)
    samples = array("h", (int(9830 * math.sin(2 * math.pi * frequency * i / rate))
                          for i in range(n)))
    step = rate // 100
    return [samples[i:i + step].tobytes() for i in range(0, n, step)]


async def push_media(media: MediaPort) -> None:
    """Half a second of a 440 Hz tone on the microphone, a few frames on the camera."""
    assert isinstance(media, FakeMedia)
    for pcm in tone():
        media.push_audio(pcm)
    for n in range(3):
        media.push_video(UTDVideoFrame(bytes(64 * 48 * 4), 64, 48, UTDVideoFormat.RGBA,
                                       n / 15))


class TestFakeMediaContract(MediaContract):
    @pytest.fixture
    def media_backend(self) -> MediaBackend:
        sfu = FakeSFU()
        return MediaBackend(new_media=lambda: FakeMedia(sfu), server=ThreadedFakeServer(sfu),
                            feed=push_media)
