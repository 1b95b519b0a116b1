"""Who is in a room, who owns it and who is banned: the part every room type shares.

It also remembers, for each present member, when it was last admitted (``since``, the
engine's clock) and which of its media connections the engine last saw join
(``connection``), so that a leave can be judged by the connection that left: a leave of
an older connection, or one made before the member's latest admission, frees nothing
(:meth:`Presence.stale_leave`). Times are inputs, never read here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_core.errors import UTDStreamException
from stream_core.machines.table import Actor
from stream_core.names import MAX_IDENTITY_LENGTH, check_identity

__all__ = ["Presence", "check_identity", "require_present", "MAX_IDENTITY_LENGTH",
           "LEAVE_CLOCK_MARGIN"]

#: A media server's event time is in whole seconds (LiveKit truncates ``createdAt``): a
#: leave is judged older than an admission only if it is older by at least this much, so
#: a leave in the same second as a mint still frees the seat. The engine's and the media
#: server's clocks are assumed synchronized (NTP) to well within it.
LEAVE_CLOCK_MARGIN = 1.0

def require_present(present: Mapping[str, str | None], identity: str, room_name: str) -> None:
    """Only a participant who joined (and was not banned since) may act on or read a room."""
    check_identity(identity)
    if identity not in present:
        raise UTDStreamException.not_found(f"{identity!r} is not in room {room_name!r}")


@dataclass
class Presence:
    """Host, present participants (with display names) and bans of one room; for each
    present member, when it was last admitted and its latest connection seen."""

    room_name: str
    host: str | None = None
    present: dict[str, str | None] = field(default_factory=dict)
    banned: set[str] = field(default_factory=set)
    #: engine time of each member's latest admission (a mint, or a viewer stepping in)
    since: dict[str, float] = field(default_factory=dict)
    #: the media-server sid of each member's latest connection the engine saw join
    connection: dict[str, str] = field(default_factory=dict)

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
        self.forget(identity)

    def forget(self, identity: str) -> None:
        """``identity`` is no longer present (it left, or was banned): nothing of it kept."""
        self.present.pop(identity, None)
        self.since.pop(identity, None)
        self.connection.pop(identity, None)

    # -- which leave is stale --------------------------------------------------------
    def minted(self, identity: str, now: float) -> None:
        """``identity`` was given a token to this room at engine time ``now``: a leave made
        before it belongs to an earlier connection."""
        self.since[identity] = now

    def acted(self, identity: str, now: float) -> None:
        """``identity`` changed the room at ``now``. A viewer has no admission time here (its
        mint touched only its own audience row); if this change makes it a member (a seat,
        a request, a hand), now is its admission. A member keeps its own (one kept before
        admissions were, with none, gets its first)."""
        self.since.setdefault(identity, now)

    def connected(self, identity: str, sid: str) -> None:
        """The media server reported connection ``sid`` of ``identity`` joining."""
        if sid:
            self.connection[identity] = sid

    def stale_leave(self, identity: str, sid: str, created_at: float) -> str | None:
        """Why the leave of connection ``sid`` (made at ``created_at``, media-server time in
        whole seconds, 0 if unknown) must free nothing of ``identity``, or ``None``.

        Stale: a newer connection of it joined since (a late or reordered leave), or the
        leave certainly predates its latest admission (a late leave of the connection it
        had before it came back). What is unknown (no sid, no time, no record) never makes
        a leave stale: such a leave frees as it always did.
        """
        latest = self.connection.get(identity)
        if sid and latest and latest != sid:
            return f"connection {sid} left, {latest} is newer"
        since = self.since.get(identity, 0.0)
        if created_at > 0 and created_at + LEAVE_CLOCK_MARGIN <= since:
            return f"left at {created_at:.0f}, before its admission at {since:.0f}"
        return None

    # -- kept with the room ------------------------------------------------------------
    def keep_seen(self, members: Collection[str]) -> None:
        """Keep admission times and connections of present ``members`` only (the room's
        document holds its members; a viewer is one row of its own, holding nothing)."""
        for marks in (self.since, self.connection):
            for identity in [i for i in marks if i not in self.present or i not in members]:
                del marks[identity]

    def seen(self) -> dict[str, list[Any]]:
        """What :meth:`restore_seen` takes back: ``{identity: [since, connection]}`` (0 and
        "" where unknown), sorted so that an unchanged room serializes the same."""
        return {i: [self.since.get(i, 0.0), self.connection.get(i, "")]
                for i in sorted(self.since.keys() | self.connection.keys())}

    def restore_seen(self, seen: Mapping[str, Sequence[Any]] | None) -> None:
        """Take back what :meth:`seen` gave (``None``: a room stored before it was kept)."""
        for identity, (since, connection) in (seen or {}).items():
            if identity in self.present:
                if since:
                    self.since[identity] = float(since)
                if connection:
                    self.connection[identity] = str(connection)
