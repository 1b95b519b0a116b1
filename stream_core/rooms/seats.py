"""An audio room's seat grid, authoritative in the engine and mirrored by clients.

Two tables meet here: each seat's occupancy (``machines.seat``) and each participant's
role (``machines.speaker``), each on one machine shared by all its models in the room.
Every operation checks every move it will make before it makes any, so a refused
operation leaves the grid exactly as it was. Listeners are plain presence: only a
participant who is requesting, invited or seated holds a speaker model.
"""

from __future__ import annotations

from stream_core.effects import Effect, ParticipantRemoved, PublishChanged
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.limits import MAX_SEAT_INVITES, MAX_SPEAK_REQUESTS, require_room_for
from stream_core.machines.seat import SEAT_TABLE, SeatState
from stream_core.machines.speaker import (
    SPEAKER_PUBLISH, SPEAKER_TABLE, SpeakerState, mode_condition,
)
from stream_core.machines.table import Actor
from stream_core.models import MAX_SEATS, UTDSeat, UTDSeatGrid, UTDSeatMode, UTDSpeakRequest
from stream_core.rooms.presence import Presence, check_identity
from stream_core.rooms.seat_models import Seat as _Seat
from stream_core.rooms.seat_models import Speaker as _Speaker
from stream_core.rooms.seat_models import check_seat_count, parse_seat_mode
from stream_core.rooms.seat_models import seated_sources as _sources

__all__ = ["SeatRoom", "check_seat_count", "parse_seat_mode"]

_NOTHING: frozenset[str] = frozenset()
_HOST_ONLY = {Actor.HOST}


class SeatRoom:
    """Seat occupancy and speaking roles of one audio room."""

    def __init__(self, room_name: str, *, mode: UTDSeatMode = UTDSeatMode.FREE) -> None:
        self.presence = Presence(room_name)
        self.mode = mode
        self.mode_id: str | None = None
        self.version = 0
        self._seat_machine = SEAT_TABLE.new_machine()
        self._speaker_machine = SPEAKER_TABLE.new_machine()
        self._seats: list[_Seat] = []
        self._speakers: dict[str, _Speaker] = {}

    @property
    def room_name(self) -> str:
        return self.presence.room_name

    @property
    def host(self) -> str | None:
        return self.presence.host

    # -- presence -------------------------------------------------------------------
    def join(self, identity: str, *, as_host: bool = False, name: str | None = None) -> list[Effect]:
        self.presence.join(identity, as_host=as_host, name=name)
        return []

    def leave(self, identity: str) -> list[Effect]:
        """A participant left the media room: it loses its seat, request and invitation."""
        check_identity(identity)
        self.presence.forget(identity)
        if identity not in self._speakers:
            return []
        before = self.publish_sources(identity)
        self._drop_speaker(identity)
        self._bump()
        return self._publish_change(identity, before)

    def ban(self, actor: str, identity: str) -> list[Effect]:
        self.presence.ban(actor, identity)
        return self.leave(identity) + [ParticipantRemoved(self.room_name, identity, "banned")]

    # -- host set-up ----------------------------------------------------------------
    def setup_seats(self, actor: str, *, seat_count: object = None, seat_mode: object = None,
                    mode_id: str | None = None) -> list[Effect]:
        """Host (re)configures the grid. Shrinking below an occupied seat is refused.

        ``mode_id`` is the app's own name for the mode (the seed's ``modeId``, e.g.
        ``"debate"``): kept and shown in the grid, never interpreted.
        """
        self.presence.require_host(actor)
        count = len(self._seats) if seat_count is None else check_seat_count(seat_count)
        new_mode = self.mode if seat_mode is None else parse_seat_mode(seat_mode)
        if count == 0:
            raise UTDStreamException.invalid("seat_count is required the first time",
                                             field="seat_count")
        for seat in self._seats[count:]:
            if seat.occupant is not None:
                raise UTDStreamException.conflict(
                    f"seat {seat.index} is occupied; cannot shrink the grid below it")
        for seat in self._seats[count:]:
            self._seat_machine.remove_model(seat)
        del self._seats[count:]
        for speaker in self._speakers.values():
            if speaker.wanted_seat is not None and speaker.wanted_seat >= count:
                speaker.wanted_seat = None
        for index in range(len(self._seats), count):
            self._add_seat(index, SeatState.EMPTY)
        self.mode = new_mode
        if mode_id is not None:
            self.mode_id = mode_id or None
        self._bump()
        return []

    # -- speaking -------------------------------------------------------------------
    def take_seat(self, actor: str, seat_index: int | None = None) -> list[Effect]:
        """``actor`` takes seat ``seat_index`` (``None``: its invited seat, else the first free)."""
        self.presence.require_present(actor)
        speaker = self._speakers.get(actor)
        state = speaker.state if speaker else SpeakerState.LISTENER
        actors = self.presence.actors(actor, actor)
        SPEAKER_TABLE.check(state, "take", actors=actors, conditions=self._conditions)
        if seat_index is None and speaker is not None and speaker.wanted_seat is not None:
            seat_index = speaker.wanted_seat
        seat = self._free_seat(seat_index)
        return self._seat(actor, seat, "take", actors)

    def leave_seat(self, actor: str) -> list[Effect]:
        return self._unseat(actor, actor, "leave")

    def kick_from_seat(self, actor: str, identity: str) -> list[Effect]:
        return self._unseat(actor, identity, "kick")

    def request_to_speak(self, actor: str, seat_index: int | None = None) -> list[Effect]:
        """Request mode: ``actor`` asks to speak; the request (its id is the room version
        it was made at) shows in the grid's ``requests``."""
        self.presence.require_present(actor)
        if seat_index is not None:
            self._seat_at(seat_index)
        SPEAKER_TABLE.check(self._state(actor), "request", actors={Actor.SELF},
                            conditions=self._conditions)
        require_room_for("requests to speak", self._count(SpeakerState.REQUESTING),
                         MAX_SPEAK_REQUESTS)
        speaker = self._speaker(actor)
        SPEAKER_TABLE.fire(speaker, "request", actors={Actor.SELF}, conditions=self._conditions)
        self._bump()
        speaker.request_id = self.version  # versions never repeat, so neither do ids
        speaker.wanted_seat = seat_index
        return []

    def cancel_speak_request(self, actor: str) -> list[Effect]:
        return self._simple(actor, actor, "cancel_request")

    def approve_speaker(self, actor: str, request_id: int) -> list[Effect]:
        """Host approves a pending request: the requester is seated at once."""
        self.presence.require_host(actor)
        requester = self._request(request_id)
        SPEAKER_TABLE.check(requester.state, "approve", actors=_HOST_ONLY,
                            conditions=self._conditions)
        seat = self._free_seat(requester.wanted_seat, fallback=True)
        return self._seat(requester.identity, seat, "approve", _HOST_ONLY)

    def deny_speaker(self, actor: str, request_id: int) -> list[Effect]:
        self.presence.require_host(actor)
        return self._simple(actor, self._request(request_id).identity, "deny")

    def invite_to_speak(self, actor: str, identity: str, seat_index: int | None = None) -> list[Effect]:
        self.presence.require_host(actor)
        self.presence.require_present(identity)
        require_room_for("invitations", self._count(SpeakerState.INVITED), MAX_SEAT_INVITES)
        if seat_index is not None:
            self._seat_at(seat_index)
        effects = self._simple(actor, identity, "invite")
        speaker = self._speakers[identity]
        speaker.wanted_seat, speaker.request_id = seat_index, None
        return effects

    def decline_invite(self, actor: str) -> list[Effect]:
        return self._simple(actor, actor, "decline")

    def move_seat(self, actor: str, seat_index: int, identity: str | None = None) -> list[Effect]:
        """Move ``identity`` (default: the actor) to empty seat ``seat_index``."""
        identity = actor if identity is None else identity
        self.presence.require_present(identity)
        speaker = self._speakers.get(identity)
        actors = self.presence.actors(actor, identity)
        SPEAKER_TABLE.check(speaker.state if speaker else SpeakerState.LISTENER, "move",
                            actors=actors, conditions=self._conditions)
        assert speaker is not None and speaker.seat is not None
        target = self._free_seat(seat_index)
        old = self._seats[speaker.seat]
        before = self.publish_sources(identity)
        SEAT_TABLE.fire(old, "vacate", actors=actors)
        old.occupant = None
        SEAT_TABLE.fire(target, "occupy", actors=actors)
        target.occupant, speaker.seat = identity, target.index
        self._bump()
        return self._publish_change(identity, before)

    # -- seats ----------------------------------------------------------------------
    def lock_seat(self, actor: str, seat_index: int, locked: bool = True) -> list[Effect]:
        """Host locks a seat (its speaker goes back to listening); ``locked=False`` unlocks.

        One operation, as the engine port offers it (``lock_seat(..., locked=False)``).
        """
        self.presence.require_host(actor)
        if not isinstance(locked, bool):
            raise UTDStreamException.invalid("locked must be true or false", field="locked")
        seat = self._seat_at(seat_index)
        if not locked:
            SEAT_TABLE.fire(seat, "unlock", actors=_HOST_ONLY)
            self._bump()
            return []
        SEAT_TABLE.check(seat.state, "lock", actors=_HOST_ONLY)
        effects: list[Effect] = []
        if seat.occupant is not None:
            effects = self._unseat(actor, seat.occupant, "kick", bump=False)
        SEAT_TABLE.fire(seat, "lock", actors=_HOST_ONLY)
        self._bump()
        return effects

    def mute_seat(self, actor: str, seat_index: int, muted: bool = True) -> list[Effect]:
        """Host mutes (or unmutes) a seat: its occupant's microphone grant follows."""
        self.presence.require_host(actor)
        if not isinstance(muted, bool):
            raise UTDStreamException.invalid("muted must be true or false", field="muted")
        seat = self._seat_at(seat_index)
        if seat.muted == muted:
            return []
        before = self.publish_sources(seat.occupant) if seat.occupant else _NOTHING
        seat.muted = muted
        self._bump()
        return self._publish_change(seat.occupant, before) if seat.occupant else []

    # -- reading --------------------------------------------------------------------
    def state_of(self, identity: str) -> SpeakerState:
        return self._state(identity)

    def publish_sources(self, identity: str) -> frozenset[str]:
        speaker = self._speakers.get(identity)
        if speaker is None or speaker.seat is None:
            return _NOTHING
        return _sources(speaker.state, self._seats[speaker.seat].muted)

    @staticmethod
    def grid_publish_sources(grid: UTDSeatGrid, identity: str) -> frozenset[str]:
        """What ``identity`` may publish per a snapshot, without rebuilding the room.

        Clients ask this on every state push; a restored 64-seat room costs milliseconds.
        """
        index = grid.seat_of(identity)
        if index is None:
            return _NOTHING
        return _sources(SpeakerState.SPEAKER, grid.seats[index].muted)

    def snapshot(self) -> UTDSeatGrid:
        seats = tuple(UTDSeat(s.index, s.occupant, s.state is SeatState.LOCKED, s.muted)
                      for s in self._seats)
        requests = tuple(
            UTDSpeakRequest(sp.request_id, sp.identity, sp.wanted_seat)
            for sp in sorted(self._speakers.values(), key=lambda sp: sp.request_id or 0)
            if sp.state is SpeakerState.REQUESTING and sp.request_id is not None
        )
        invites = {sp.identity: sp.wanted_seat for sp in self._speakers.values()
                   if sp.state is SpeakerState.INVITED}
        return UTDSeatGrid(self.room_name, self.host, self.mode, seats, requests, invites,
                           self.version, self.mode_id)

    @classmethod
    def restore(cls, grid: UTDSeatGrid, present: dict[str, str | None] | None = None,
                banned: set[str] | None = None) -> SeatRoom:
        """Rebuild from a snapshot (engine start-up, client mirror)."""
        room = cls(grid.room_name, mode=grid.mode)
        room.mode_id = grid.mode_id
        room.presence.host = grid.host
        room.presence.present = dict(present or {})
        room.presence.banned = set(banned or ())
        for seat in grid.seats:
            model = room._add_seat(seat.index, SeatState.LOCKED if seat.locked else
                                   SeatState.OCCUPIED if seat.occupant else SeatState.EMPTY)
            model.muted = seat.muted
            if seat.occupant:
                model.occupant = seat.occupant
                room._speaker(seat.occupant, SpeakerState.SPEAKER).seat = seat.index
        for req in grid.requests:
            sp = room._speaker(req.identity, SpeakerState.REQUESTING)
            sp.request_id, sp.wanted_seat = req.request_id, req.seat_index
        for identity, index in grid.invites.items():
            room._speaker(identity, SpeakerState.INVITED).wanted_seat = index
        for identity in room._speakers:
            room.presence.present.setdefault(identity, None)
        room.version = grid.version
        return room

    def __repr__(self) -> str:
        return (f"<SeatRoom {self.room_name!r} v{self.version} {self.mode.value} "
                f"seats={self._seats!r} speakers={list(self._speakers.values())!r}>")

    # -- internals ------------------------------------------------------------------
    def _state(self, identity: str) -> SpeakerState:
        sp = self._speakers.get(identity)
        return sp.state if sp is not None else SpeakerState.LISTENER

    @property
    def _conditions(self) -> frozenset[str]:
        """What holds in this room for rows with a ``when`` (its seat mode)."""
        return frozenset({mode_condition(self.mode)})

    def _count(self, state: SpeakerState) -> int:
        return sum(1 for sp in self._speakers.values() if sp.state is state)

    def _seat_at(self, index: object) -> _Seat:
        if isinstance(index, bool) or not isinstance(index, int):
            raise UTDStreamException.invalid("seat_index must be an integer", field="seat_index")
        if not 0 <= index < len(self._seats):
            raise UTDStreamException.invalid(
                f"seat_index {index} is out of range (room has {len(self._seats)} seats)",
                field="seat_index")
        return self._seats[index]

    def _free_seat(self, index: int | None, *, fallback: bool = False) -> _Seat:
        if index is not None:
            seat = self._seat_at(index)
            if seat.state is SeatState.EMPTY or not fallback:
                self._check_free(seat)
                return seat
        for seat in self._seats:
            if seat.state is SeatState.EMPTY:
                return seat
        if not self._seats:
            raise UTDStreamException.illegal("the host has not set up any seats yet")
        raise UTDStreamException.conflict("every seat is taken or locked",
                                          code=ErrorCode.SEAT_TAKEN)

    @staticmethod
    def _check_free(seat: _Seat) -> None:
        if seat.state is SeatState.OCCUPIED:
            raise UTDStreamException.conflict(f"seat {seat.index} is taken",
                                              code=ErrorCode.SEAT_TAKEN)
        if seat.state is SeatState.LOCKED:
            raise UTDStreamException.illegal(f"seat {seat.index} is locked")

    def _seat(self, identity: str, seat: _Seat, trigger: str, actors: set[Actor]) -> list[Effect]:
        """Seat ``identity`` (checks done) by firing ``trigger`` on its speaker model."""
        speaker = self._speaker(identity)
        SEAT_TABLE.fire(seat, "occupy", actors=actors)
        SPEAKER_TABLE.fire(speaker, trigger, actors=actors, conditions=self._conditions)
        seat.occupant, speaker.seat = identity, seat.index
        speaker.request_id = speaker.wanted_seat = None
        self._bump()
        return self._publish_change(identity, _NOTHING)

    def _unseat(self, actor: str, identity: str, trigger: str, *, bump: bool = True) -> list[Effect]:
        check_identity(actor, "actor")
        check_identity(identity)
        if trigger == "kick":
            self.presence.require_host(actor)
        speaker = self._speakers.get(identity)
        SPEAKER_TABLE.check(speaker.state if speaker else SpeakerState.LISTENER, trigger,
                            actors=self.presence.actors(actor, identity),
                            conditions=self._conditions)
        assert speaker is not None and speaker.seat is not None
        before = self.publish_sources(identity)
        seat = self._seats[speaker.seat]
        SEAT_TABLE.fire(seat, "vacate", actors={Actor.ANY})
        seat.occupant = None
        self._drop_speaker(identity)
        if bump:
            self._bump()
        return self._publish_change(identity, before)

    def _simple(self, actor: str, identity: str, trigger: str) -> list[Effect]:
        """A role move that touches no seat (request, invite, decline, deny...)."""
        check_identity(actor, "actor")
        actors = self.presence.actors(actor, identity)
        SPEAKER_TABLE.check(self._state(identity), trigger, actors=actors,
                            conditions=self._conditions)
        speaker = self._speaker(identity)
        SPEAKER_TABLE.fire(speaker, trigger, actors=actors, conditions=self._conditions)
        if speaker.state is SpeakerState.LISTENER:
            self._drop_speaker(identity)
        self._bump()
        return []

    def _request(self, request_id: object) -> _Speaker:
        if isinstance(request_id, bool) or not isinstance(request_id, int):
            raise UTDStreamException.invalid("request_id must be an integer", field="request_id")
        for sp in self._speakers.values():
            if sp.request_id == request_id and sp.state is SpeakerState.REQUESTING:
                return sp
        raise UTDStreamException.not_found(f"no pending speak request {request_id}")

    def _speaker(self, identity: str, state: SpeakerState = SpeakerState.LISTENER) -> _Speaker:
        speaker = self._speakers.get(identity)
        if speaker is None:
            speaker = _Speaker(identity)
            self._speaker_machine.add_model(speaker, initial=state)
            self._speakers[identity] = speaker
        return speaker

    def _drop_speaker(self, identity: str) -> None:
        speaker = self._speakers.pop(identity)
        if speaker.seat is not None and self._seats[speaker.seat].occupant == identity:
            seat = self._seats[speaker.seat]
            SEAT_TABLE.fire(seat, "vacate", actors={Actor.ANY})
            seat.occupant = None
        self._speaker_machine.remove_model(speaker)

    def _add_seat(self, index: int, state: SeatState) -> _Seat:
        seat = _Seat(index)
        self._seat_machine.add_model(seat, initial=state)
        self._seats.append(seat)
        return seat

    def _publish_change(self, identity: str, before: frozenset[str]) -> list[Effect]:
        after = self.publish_sources(identity)
        return [] if before == after else [PublishChanged(self.room_name, identity, before, after)]

    def _bump(self) -> None:
        self.version += 1
