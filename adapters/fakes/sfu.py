"""An in-memory SFU for tests and demos, plus :class:`FakeMedia`, the MediaPort bound to it.

One :class:`FakeSFU` is shared by every participant of a test; each participant's session
owns one :class:`FakeMedia`. The fake behaves like LiveKit wherever utd-stream depends on
it (one-shot grants, auto-created rooms, ``duplicate_identity`` kicks, unpublish on revoke,
data addressed by identity, webhooks), deterministically: track sids are sequential and
nothing depends on timing.

Delivery model: the server never runs a participant's code. Control calls may come from any
thread (the fake engine uses ``asyncio.to_thread``); each fact is handed to the receiving
participant's loop with ``call_soon_threadsafe`` while the server lock is held, so a
participant sees facts in the order the server produced them. On its loop, ``FakeMedia``
first updates its view (permissions, remote participants, metadata, state) and then calls
its listeners, so a listener always reads state that already includes its event.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from adapters.fakes.media import FakeMedia  # re-exported: the client half, kept apart
from adapters.fakes.sfu_room import (
    NOT_CONNECTED, Delivery, DeliverySink, FrameSink, SfuParticipant, SfuRoom, not_connected,
)
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.events import ConnectionState, ConnectionStateChanged
from stream_core.models import UTDPermissions, UTDRemoteParticipant, UTDTrack
from stream_core.ports import RoomSetup

__all__ = ["FakeSFU", "FakeMedia", "Webhook", "SfuWebhook", "ROOM_FULL", "NOT_CONNECTED"]

logger = logging.getLogger(__name__)

class SfuWebhook(NamedTuple):
    """One event as LiveKit's webhooks report it: ``participant_joined`` / ``participant_left``
    (with the connection's sid and permissions) or ``room_finished`` (identity ``None``)."""

    event: str
    room: str
    identity: str | None
    sid: str = ""
    permissions: UTDPermissions | None = None
    reason: str | None = None  # why a participant left (e.g. ``duplicate_identity``)


#: Called with every :class:`SfuWebhook`, on the thread that caused it.
Webhook = Callable[[SfuWebhook], None]

ROOM_FULL = ErrorCode.ROOM_FULL

_TRACK_KINDS = {"microphone": "audio", "camera": "video"}
_Hook = SfuWebhook


@dataclass(slots=True)
class _Grant:
    room: str
    identity: str
    name: str | None
    permissions: UTDPermissions
    setup: RoomSetup | None = None  # how the join creates the room, if it must
    used: bool = False


class FakeSFU:
    """The server: rooms, grants and the control API the engine (or a test) drives.

    Thread-safe: every method takes one re-entrant lock. Webhooks run after the lock is
    released, on the calling thread, before the call returns, so a webhook may call back
    into the server.
    """

    def __init__(self, url: str = "fake://sfu") -> None:
        self._url = url
        self._lock = threading.RLock()
        self._rooms: dict[str, SfuRoom] = {}
        self._grants: dict[str, _Grant] = {}
        self._webhooks: list[Webhook] = []
        self._sids = itertools.count(1)

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        with self._lock:
            rooms = {name: list(room.members) for name, room in self._rooms.items()}
        return f"FakeSFU(url={self._url!r}, rooms={rooms!r})"

    # -- control API ------------------------------------------------------------------
    def create_room(self, name: str, *, max_participants: int = 0, metadata: str = "") -> None:
        """Create ``name``; an existing room is left exactly as it is (as LiveKit does)."""
        with self._lock:
            if name not in self._rooms:
                self._rooms[name] = SfuRoom(name, max_participants=max_participants,
                                            metadata=metadata)

    def close_room(self, name: str) -> None:
        """Delete the room; everyone in it is disconnected with reason ``room_deleted``."""
        with self._lock:
            room = self._room(name)
            gone = room.close("room_deleted")
            hooks: list[_Hook] = [_left(name, member, "room_deleted") for member in gone]
            del self._rooms[name]
            hooks.append(SfuWebhook("room_finished", name, None))
        self._fire(hooks)

    def issue_token(self, *, room: str, identity: str, name: str | None = None,
                    permissions: UTDPermissions, setup: RoomSetup | None = None) -> str:
        """A one-shot opaque token granting ``identity`` these permissions in ``room``
        (which its join creates, as ``setup`` says, if it does not exist: as LiveKit does
        with a token's ``roomConfig``)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = _Grant(room, identity, name, permissions, setup)
        return token

    def update_permissions(self, room: str, identity: str, permissions: UTDPermissions) -> None:
        """Replace the grant; tracks it no longer allows are unpublished.

        Raises ``UTDStreamException.not_found`` if ``identity`` is not in ``room``.
        """
        with self._lock:
            target_room, target = self._member(room, identity)
            target_room.set_permissions(target, permissions)

    def set_room_metadata(self, room: str, metadata: str) -> None:
        with self._lock:
            self._room(room).set_metadata(metadata)

    def remove_participant(self, room: str, identity: str) -> None:
        """Kick ``identity``: it is disconnected with reason ``removed``."""
        self._kick(room, identity, "removed")

    def drop(self, room: str, identity: str) -> None:
        """Simulate the participant's process dying: the server notices and removes it.

        Its ``FakeMedia`` goes RECONNECTING, then DISCONNECTED with ``connection_lost``.
        """
        with self._lock:
            _, member = self._member(room, identity)
            member.post(Delivery(ConnectionStateChanged(ConnectionState.RECONNECTING)))
        self._kick(room, identity, "connection_lost")

    def blip(self, room: str, identity: str) -> None:
        """Simulate a network blip that LiveKit resumes: the participant's media goes
        RECONNECTING, then CONNECTED again on the same connection (nothing else changes)."""
        with self._lock:
            _, member = self._member(room, identity)
            for state in (ConnectionState.RECONNECTING, ConnectionState.CONNECTED):
                member.post(Delivery(ConnectionStateChanged(state)))

    def list_participants(self, room: str) -> list[UTDRemoteParticipant]:
        """Participants as the server sees them; an unknown room is empty (as LiveKit)."""
        with self._lock:
            found = self._rooms.get(room)
            return [m.seen_by(None) for m in found.members.values()] if found else []

    def send_data(self, room: str, data: bytes, *, topic: str | None = None,
                  to: Sequence[str] | None = None) -> None:
        """Server-originated data (``sender`` is ``None``); ``to`` empty means everyone."""
        with self._lock:
            self._room(room).send_data(None, data, topic=topic, to=to)

    def add_webhook(self, callback: Webhook) -> Callable[[], None]:
        """Register ``callback``; returns the (idempotent) function that removes it."""
        with self._lock:
            self._webhooks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._webhooks:
                    self._webhooks.remove(callback)
        return remove

    # -- test helpers -----------------------------------------------------------------
    def get_participant(self, room: str, identity: str) -> SfuWebhook | None:
        """``identity``'s connection in ``room`` (sid and permissions), or ``None``."""
        with self._lock:
            found = self._rooms.get(room)
            member = found.members.get(identity) if found else None
            if member is None:
                return None
            return SfuWebhook("participant", room, identity, member.sid, member.permissions)

    def room_metadata(self, room: str) -> str | None:
        """The room's metadata (``None``: no such room)."""
        with self._lock:
            found = self._rooms.get(room)
            return None if found is None else found.metadata

    def connections(self, room: str) -> list[SfuWebhook]:
        """Every connection in ``room`` (sid and permissions), as the server API lists them."""
        with self._lock:
            found = self._rooms.get(room)
            return [SfuWebhook("participant", room, m.identity, m.sid, m.permissions)
                    for m in (found.members.values() if found else ())]

    def participants(self, room: str) -> list[str]:
        """Identities in ``room`` in join order (empty if the room does not exist)."""
        with self._lock:
            found = self._rooms.get(room)
            return list(found.members) if found else []

    def published(self, room: str, identity: str) -> set[str]:
        """Sources ``identity`` currently publishes in ``room``."""
        with self._lock:
            return set(self._member(room, identity)[1].tracks)

    # -- used by FakeMedia ------------------------------------------------------------
    def _join(self, url: str, token: str, *, auto_subscribe: bool,
              loop: asyncio.AbstractEventLoop,
              sink: DeliverySink, frame_sink: FrameSink | None = None,
              ) -> tuple[SfuParticipant, tuple[UTDRemoteParticipant, ...], str]:
        """Admit the token's holder; returns its connection, the others, the metadata."""
        hooks: list[_Hook] = []
        with self._lock:
            if url != self._url:
                raise UTDStreamException(f"no media server at {url!r} (this is {self._url!r})",
                                         code=ErrorCode.UNAVAILABLE)
            grant = self._grants.get(token)
            if grant is None or grant.used:
                raise UTDStreamException.unauthenticated(
                    "media token is unknown or already used" if grant is None
                    else "media token was already used")
            room = self._rooms.get(grant.room)
            if room is None:
                setup = grant.setup
                room = self._rooms[grant.room] = SfuRoom(grant.room) if setup is None else \
                    SfuRoom(grant.room, max_participants=setup.max_participants,
                            metadata=setup.metadata)
            if room.is_full_for(grant.identity):
                raise UTDStreamException(f"room {room.name!r} is full", status_code=403,
                                         code=ROOM_FULL)
            grant.used = True
            joiner = SfuParticipant(room=room.name, identity=grant.identity, name=grant.name,
                                    permissions=grant.permissions, loop=loop, sink=sink,
                                    auto_subscribe=auto_subscribe, frame_sink=frame_sink,
                                    sid=f"PA_{next(self._sids):04d}")
            older = room.members.get(grant.identity)
            if older is not None and room.expel(older, "duplicate_identity"):
                hooks.append(_left(room.name, older, "duplicate_identity"))
            present = room.admit(joiner)
            hooks.append(SfuWebhook("participant_joined", room.name, joiner.identity, joiner.sid,
                                    joiner.permissions))
            metadata = room.metadata
        self._fire(hooks)
        return joiner, present, metadata

    def _leave(self, participant: SfuParticipant) -> None:
        """The participant hung up; a no-op if the server already removed it."""
        hooks: list[_Hook] = []
        with self._lock:
            room = self._rooms.get(participant.room)
            if room is not None:
                self._expel(room, participant, None, hooks)
        self._fire(hooks)

    def _publish(self, participant: SfuParticipant, source: str) -> UTDTrack:
        """Publish ``source`` (or return the track already published for it)."""
        with self._lock:
            room = self._room_of(participant, f"publish {source}")
            if not participant.permissions.allows(source):
                raise UTDStreamException(f"{participant.identity!r} may not publish {source}",
                                         status_code=403, code=ErrorCode.PUBLISH_DENIED)
            track = participant.tracks.get(source)
            if track is None:
                track = UTDTrack(sid=f"TR_{next(self._sids):04d}", kind=_TRACK_KINDS[source],
                                 source=source)
                room.publish(participant, track)
            return track

    def _unpublish(self, participant: SfuParticipant, source: str) -> None:
        with self._lock:
            room = self._rooms.get(participant.room)
            track = participant.tracks.get(source)
            if room is not None and room.is_member(participant) and track is not None:
                room.take_down(participant, track)

    def _relay(self, participant: SfuParticipant, source: str, frame: object) -> bool:
        """Forward a frame of ``participant``'s ``source``; False (dropped) when that source
        is not published by this connection (never published, revoked, left)."""
        with self._lock:
            room = self._rooms.get(participant.room)
            if room is None or not room.is_member(participant) or source not in participant.tracks:
                return False
            room.relay(participant, source, frame)
            return True

    def _send(self, participant: SfuParticipant, data: bytes, *, topic: str | None,
              to: Sequence[str] | None) -> None:
        with self._lock:
            room = self._room_of(participant, "send data")
            if not participant.permissions.can_publish_data:
                raise UTDStreamException(f"{participant.identity!r} may not publish data",
                                         status_code=403, code=ErrorCode.PUBLISH_DENIED)
            room.send_data(participant, data, topic=topic, to=to)

    # -- internals --------------------------------------------------------------------
    def _room(self, name: str) -> SfuRoom:
        room = self._rooms.get(name)
        if room is None:
            raise UTDStreamException.not_found(f"room {name!r} not found")
        return room

    def _member(self, room: str, identity: str) -> tuple[SfuRoom, SfuParticipant]:
        found = self._room(room)
        member = found.members.get(identity)
        if member is None:
            raise UTDStreamException.not_found(f"participant {identity!r} not in room {room!r}")
        return found, member

    def _room_of(self, participant: SfuParticipant, what: str) -> SfuRoom:
        room = self._rooms.get(participant.room)
        if room is None or not room.is_member(participant):
            raise not_connected(what)
        return room

    def _kick(self, room: str, identity: str, reason: str) -> None:
        hooks: list[_Hook] = []
        with self._lock:
            found, member = self._member(room, identity)
            self._expel(found, member, reason, hooks)
        self._fire(hooks)

    def _expel(self, room: SfuRoom, member: SfuParticipant, reason: str | None,
               hooks: list[_Hook]) -> None:
        if room.expel(member, reason):
            hooks.append(_left(room.name, member, reason))
            if not room.members:
                del self._rooms[room.name]
                hooks.append(SfuWebhook("room_finished", room.name, None))

    def _fire(self, hooks: list[_Hook]) -> None:
        with self._lock:
            callbacks = list(self._webhooks)
        for hook in hooks:
            for callback in callbacks:
                try:
                    callback(hook)
                except Exception:
                    logger.exception("webhook %r failed on %r", callback, hook)



def _left(room: str, member: SfuParticipant, reason: str | None = None) -> SfuWebhook:
    return SfuWebhook("participant_left", room, member.identity, member.sid, member.permissions,
                      reason)
