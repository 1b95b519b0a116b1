"""Who is in a room, who owns it and who is banned: the part every room type shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stream_core.errors import UTDStreamException
from stream_core.machines.table import Actor
from stream_core.names import MAX_IDENTITY_LENGTH, check_identity

__all__ = ["Presence", "check_identity", "require_present", "MAX_IDENTITY_LENGTH"]

def require_present(present: Mapping[str, str | None], identity: str, room_name: str) -> None:
    """Only a participant who joined (and was not banned since) may act on or read a room."""
    check_identity(identity)
    if identity not in present:
        raise UTDStreamException.not_found(f"{identity!r} is not in room {room_name!r}")


@dataclass
class Presence:
    """Host, present participants (with display names) and bans of one room."""

    room_name: str
    host: str | None = None
    present: dict[str, str | None] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)

    def join(self, identity: str, *, as_host: bool = False, name: str | None = None) -> None:
        check_identity(identity)
        if identity in self.banned:
            raise UTDStreamException.banned()
        if as_host:
            if self.host is not None and self.host != identity:
                raise UTDStreamException.forbidden(
                    f"room {self.room_name!r} already has a host"
                )
            self.host = identity
        self.present[identity] = name

    def require_present(self, identity: str) -> None:
        require_present(self.present, identity, self.room_name)

    def require_host(self, actor: str) -> None:
        if actor != self.host:
            raise UTDStreamException.forbidden("only the host may do this")

    def actors(self, actor: str | None, subject: str) -> set[Actor]:
        """The roles ``actor`` holds towards ``subject`` (``None`` is the engine itself)."""
        if actor is None:
            return {Actor.SYSTEM, Actor.HOST, Actor.SELF}
        held = set()
        if actor == subject:
            held.add(Actor.SELF)
        if actor == self.host:
            held.add(Actor.HOST)
        return held

    def ban(self, actor: str, identity: str) -> None:
        self.require_host(actor)
        check_identity(identity)
        if identity == self.host:
            raise UTDStreamException.illegal("the host cannot ban itself")
        self.banned.add(identity)
        self.present.pop(identity, None)
