"""Server-side state of the fake SFU: rooms, their participants, and who hears what.

Rules of this file (LiveKit's, as far as utd-stream depends on them):

* Everything here runs under ``FakeSFU``'s lock. Nothing here calls a participant's code:
  a fact for a participant is a :class:`Delivery` handed to its own event loop by
  :meth:`SfuParticipant.post`, so every participant sees its facts in the order they are
  produced here, on its own loop.
* Track and participant events are only ever about *other* participants. A participant
  hears about itself through ``PermissionsChanged`` (carrying the sids the server took
  down) and ``ConnectionStateChanged``.
* Media frames a participant pushes on a published track go to every other participant
  that subscribes, on the same ordered path as the facts (so a frame pushed before an
  unpublish is received before the ``TrackUnsubscribed``).
* Leaving takes the leaver's tracks down first (``TrackUnsubscribed`` where subscribed,
  then ``TrackUnpublished``) and then announces ``ParticipantDisconnected``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import (
    ConnectionState, ConnectionStateChanged, DataReceived, MediaEvent, ParticipantConnected,
    ParticipantDisconnected, PermissionsChanged, RoomMetadataChanged, TrackPublished,
    TrackSubscribed, TrackUnpublished, TrackUnsubscribed,
)
from stream_core.models import UTDPermissions, UTDRemoteParticipant, UTDTrack

__all__ = ["Delivery", "DeliverySink", "FrameSink", "SfuParticipant", "SfuRoom", "NOT_CONNECTED",
           "not_connected"]

logger = logging.getLogger(__name__)

#: Error code for acting on a connection the server no longer has (never connected, left,
#: kicked). There is no HTTP status: the request never reached an engine.
NOT_CONNECTED = ErrorCode.NOT_CONNECTED


def not_connected(what: str) -> UTDStreamException:
    return UTDStreamException(f"cannot {what}: not connected to a media room",
                              code=NOT_CONNECTED)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One fact for one participant.

    ``event`` is what its listeners get (``None`` for a view-only update, e.g. a remote
    participant's ``can_publish`` changing, which has no event of its own).
    ``participant`` is a fresh snapshot of a remote participant to store before the event
    is emitted; ``unpublished`` are sids of the receiver's *own* tracks the server took
    down, so a stale fact can never remove a track published after it.
    """

    event: MediaEvent | None
    participant: UTDRemoteParticipant | None = None
    unpublished: tuple[str, ...] = ()


#: Called on the participant's loop with the connection a fact belongs to and the fact.
DeliverySink = Callable[["SfuParticipant", Delivery], None]
#: Called on the receiver's loop with its connection, the sender, the source and the frame.
FrameSink = Callable[["SfuParticipant", str, str, object], None]


class SfuParticipant:
    """One connection of one participant as the server sees it.

    It is also the connection's identity token: a ``FakeMedia`` keeps the object it joined
    with and ignores facts addressed to any other, and the server compares objects (not
    identities) so a replaced connection can never act on its successor.
    """

    __slots__ = ("room", "identity", "name", "permissions", "tracks", "auto_subscribe",
                 "sid", "_loop", "_sink", "_frame_sink")

    def __init__(self, *, room: str, identity: str, name: str | None,
                 permissions: UTDPermissions, auto_subscribe: bool,
                 loop: asyncio.AbstractEventLoop, sink: DeliverySink, sid: str = "",
                 frame_sink: FrameSink | None = None) -> None:
        self.sid = sid  # the connection's id, as LiveKit's participant sid
        self.room = room
        self.identity = identity
        self.name = name
        self.permissions = permissions
        self.tracks: dict[str, UTDTrack] = {}  # by source; stored with subscribed=False
        self.auto_subscribe = auto_subscribe
        self._loop = loop
        self._sink = sink
        self._frame_sink = frame_sink

    @property
    def subscribes(self) -> bool:
        """Whether this participant receives (is subscribed to) the others' tracks."""
        return self.auto_subscribe and self.permissions.can_subscribe

    def post(self, delivery: Delivery) -> None:
        """Queue ``delivery`` on this participant's loop (safe from any thread).

        A closed loop means the participant's process is gone; like a real server writing
        to a dead socket, the fact is dropped (and logged at debug level).
        """
        try:
            self._loop.call_soon_threadsafe(self._sink, self, delivery)
        except RuntimeError:
            logger.debug("dropping %r for %s: its event loop is closed", delivery, self.identity)

    def post_frame(self, sender: str, source: str, frame: object) -> None:
        """Queue a media frame from ``sender``'s ``source`` on this participant's loop."""
        if self._frame_sink is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._frame_sink, self, sender, source, frame)
        except RuntimeError:
            pass  # the receiver's loop is closed: like a dead socket, the frame is lost

    def seen_by(self, viewer: SfuParticipant | None) -> UTDRemoteParticipant:
        """This participant as ``viewer`` sees it (``None``: as the server's API lists it)."""
        subscribed = viewer is not None and viewer.subscribes
        return UTDRemoteParticipant(
            identity=self.identity,
            name=self.name,
            tracks=tuple(replace(t, subscribed=subscribed) for t in self.tracks.values()),
            can_publish=self.permissions.can_publish,
        )

    def __repr__(self) -> str:
        return (f"SfuParticipant(room={self.room!r}, identity={self.identity!r}, "
                f"tracks={sorted(self.tracks)!r})")


class SfuRoom:
    """A room and its participants (in join order), producing every fan-out of a change."""

    def __init__(self, name: str, *, max_participants: int = 0, metadata: str = "") -> None:
        self.name = name
        self.max_participants = max_participants
        self.metadata = metadata
        self.members: dict[str, SfuParticipant] = {}

    def __repr__(self) -> str:
        return (f"SfuRoom(name={self.name!r}, members={list(self.members)!r}, "
                f"max_participants={self.max_participants})")

    def is_member(self, participant: SfuParticipant) -> bool:
        return self.members.get(participant.identity) is participant

    def is_full_for(self, identity: str) -> bool:
        """True if ``identity`` joining would exceed the limit (a replacement does not)."""
        if self.max_participants <= 0:
            return False
        staying = len(self.members) - (identity in self.members)
        return staying >= self.max_participants

    def _others(self, participant: SfuParticipant | None) -> list[SfuParticipant]:
        return [m for m in self.members.values() if m is not participant]

    def _watchers(self, participant: SfuParticipant) -> list[SfuParticipant]:
        """Who hears of ``participant``'s comings and goings: nobody while it is hidden."""
        return [] if participant.permissions.hidden else self._others(participant)

    # -- membership -------------------------------------------------------------------
    def admit(self, joiner: SfuParticipant) -> tuple[UTDRemoteParticipant, ...]:
        """Add ``joiner``, announce it, and return everyone else as ``joiner`` sees them."""
        present = [m for m in self._others(joiner) if not m.permissions.hidden]
        self.members[joiner.identity] = joiner
        for other in self._watchers(joiner):
            other.post(Delivery(ParticipantConnected(joiner.identity), joiner.seen_by(other)))
        return tuple(other.seen_by(joiner) for other in present)

    def expel(self, leaver: SfuParticipant, reason: str | None) -> bool:
        """Remove ``leaver`` (if still the member), telling the others; False if it was not.

        ``reason`` is sent to the leaver as its disconnect reason; ``None`` when the leaver
        itself asked to leave (it already knows).
        """
        if not self.is_member(leaver):
            return False
        for track in list(leaver.tracks.values()):
            self.take_down(leaver, track)
        del self.members[leaver.identity]
        for other in self._watchers(leaver):
            other.post(Delivery(ParticipantDisconnected(leaver.identity)))
        if reason is not None:
            leaver.post(Delivery(ConnectionStateChanged(ConnectionState.DISCONNECTED, reason)))
        return True

    def close(self, reason: str) -> list[SfuParticipant]:
        """Disconnect everyone at once (no per-peer events, as on room deletion)."""
        gone = list(self.members.values())
        for member in self.members.values():
            member.post(Delivery(ConnectionStateChanged(ConnectionState.DISCONNECTED, reason)))
        self.members.clear()
        return gone

    # -- tracks -----------------------------------------------------------------------
    def publish(self, owner: SfuParticipant, track: UTDTrack) -> None:
        owner.tracks[track.source] = track
        for other in self._watchers(owner):
            other.post(Delivery(TrackPublished(owner.identity, track)))
            if other.subscribes:
                other.post(Delivery(TrackSubscribed(owner.identity,
                                                    replace(track, subscribed=True))))

    def take_down(self, owner: SfuParticipant, track: UTDTrack) -> None:
        """Unpublish ``track``; the others see it unsubscribed (if they were) and gone."""
        del owner.tracks[track.source]
        for other in self._watchers(owner):
            if other.subscribes:
                other.post(Delivery(TrackUnsubscribed(owner.identity, track)))
            other.post(Delivery(TrackUnpublished(owner.identity, track)))

    def relay(self, owner: SfuParticipant, source: str, frame: object) -> None:
        """Forward a frame of ``owner``'s published ``source`` to every subscriber."""
        for other in self._others(owner):
            if other.subscribes:
                other.post_frame(owner.identity, source, frame)

    def set_permissions(self, target: SfuParticipant, permissions: UTDPermissions) -> None:
        """Apply a new grant: take down what it no longer allows, then tell everyone."""
        was_publisher = target.permissions.can_publish
        was_subscriber = target.subscribes
        was_hidden = target.permissions.hidden
        target.permissions = permissions
        revoked = [t for source, t in target.tracks.items() if not permissions.allows(source)]
        for track in revoked:
            self.take_down(target, track)
        target.post(Delivery(PermissionsChanged(permissions),
                             unpublished=tuple(t.sid for t in revoked)))
        others = self._others(target)
        if was_hidden and not permissions.hidden:  # admitted: the others see it arrive now
            for other in others:
                other.post(Delivery(ParticipantConnected(target.identity), target.seen_by(other)))
        elif permissions.can_publish != was_publisher and not permissions.hidden:
            for other in others:
                other.post(Delivery(None, target.seen_by(other)))
        if target.subscribes != was_subscriber:
            change = TrackSubscribed if target.subscribes else TrackUnsubscribed
            for other in others:
                for track in other.tracks.values():
                    target.post(Delivery(change(other.identity,
                                                replace(track, subscribed=target.subscribes))))

    # -- room-wide --------------------------------------------------------------------
    def set_metadata(self, metadata: str) -> None:
        self.metadata = metadata
        for member in self.members.values():
            member.post(Delivery(RoomMetadataChanged(metadata)))

    def send_data(self, sender: SfuParticipant | None, data: bytes, *, topic: str | None,
                  to: Iterable[str] | None) -> None:
        """Deliver to everyone but the sender, or only to ``to`` (empty means everyone)."""
        targets = set(to or ())
        packet = DataReceived(bytes(data), sender.identity if sender else None, topic)
        for member in self._others(sender):
            if not targets or member.identity in targets:
                member.post(Delivery(packet))
