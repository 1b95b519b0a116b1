"""``FakeControl``: the engine service's hand on the in-memory SFU (its ``ControlPort``).

What the reference server does through LiveKit's server API, done on a
:class:`~adapters.fakes.sfu.FakeSFU`: tokens with exact publish grants, grants and
revokes, removals, room closes, state pushes into room metadata, one-participant look-ups.
The SFU already reports a missing room or participant as ``not_found``, as LiveKit does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.fakes.sfu import FakeSFU, SfuWebhook
from stream_core.ports import ControlPort, MediaParticipant, RoomSetup
from stream_core.rooms import grant_for

__all__ = ["FakeControl"]


class FakeControl:
    def __init__(self, sfu: FakeSFU) -> None:
        self.sfu = sfu

    @property
    def client_url(self) -> str:
        return self.sfu.url

    async def mint_token(self, *, identity: str, room: str, name: str | None,
                         sources: frozenset[str], ttl: float, hidden: bool = False,
                         setup: RoomSetup | None = None) -> str:
        return self.sfu.issue_token(room=room, identity=identity, name=name,
                                    permissions=grant_for(sources, hidden=hidden),
                                    setup=setup)

    async def create_room(self, name: str, *, max_participants: int = 0,
                          empty_timeout: int | None = None, metadata: str = "") -> None:
        self.sfu.create_room(name, max_participants=max_participants, metadata=metadata)

    async def set_permissions(self, room: str, identity: str, sources: frozenset[str]) -> None:
        self.sfu.update_permissions(room, identity, grant_for(sources))

    async def remove_participant(self, room: str, identity: str) -> None:
        self.sfu.remove_participant(room, identity)

    async def close_room(self, room: str) -> None:
        self.sfu.close_room(room)

    async def push_state(self, room: str, state: str) -> None:
        self.sfu.set_room_metadata(room, state)

    async def get_participant(self, room: str, identity: str) -> MediaParticipant | None:
        found = self.sfu.get_participant(room, identity)
        return None if found is None else _participant(found)

    async def room_metadata(self, room: str) -> str | None:
        return self.sfu.room_metadata(room)

    async def participants(self, room: str) -> list[MediaParticipant]:
        return [_participant(p) for p in self.sfu.connections(room)]

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"<FakeControl {self.sfu!r}>"


def _participant(found: SfuWebhook) -> MediaParticipant:
    assert found.identity is not None and found.permissions is not None
    return MediaParticipant(found.identity, found.sid, found.permissions.can_publish,
                            frozenset(found.permissions.sources), found.permissions.hidden)


if TYPE_CHECKING:
    _: type[ControlPort] = FakeControl
