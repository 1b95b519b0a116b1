"""The ports of both runtimes, speaking only core types.

Client side:

* :class:`EnginePort` — the engine's API, **synchronous** (sessions run it off the event
  loop): one generic ``run`` over the rows of :mod:`stream_core.operations`. Privileged
  operations take the engine bearer (``user_token``); the engine derives the acting
  identity from it, never from arguments.
* :class:`MediaPort` — one participant's connection to the media server, **asynchronous**,
  reporting through sync callbacks (as ``livekit.rtc`` does) that must not block.

Engine side (the service in :mod:`stream_core.engine` runs over these):

* :class:`StorePort` — where rooms and calls are committed, **synchronous** (run in
  worker threads); SQL in the reference server, memory in the fake engine.
* :class:`ControlPort` — the engine's hand on the media server, **asynchronous**: tokens,
  grants, removals, room closes, state pushes, one-participant look-ups.
* :class:`BearerPort` — issues and verifies engine bearers, **synchronous**.

Shipped implementations: ``adapters.fakes`` (in memory), ``adapters.rest`` and
``adapters.livekit`` (client), ``stream_engine`` (server). Each pair passes one contract suite.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from stream_core.events import ConnectionState, MediaEvent
from stream_core.frames import FrameStream, UTDAudioFrame, UTDVideoFormat, UTDVideoFrame
from stream_core.models import (
    UTDStreamType, UTDCall, UTDPermissions, UTDRemoteParticipant, UTDSeatGrid, UTDStage,
)

if TYPE_CHECKING:
    from stream_core.operations import Operation
    from stream_core.rooms.hosting import Room

__all__ = ["EnginePort", "MediaPort", "ConnectOptions", "Unsubscribe", "StorePort",
           "ControlPort", "BearerPort", "RoomView", "MediaParticipant", "MediaEffect",
           "RoomSetup", "WebhookEvent"]

Unsubscribe = Callable[[], None]
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How a media connection is made. ``timeout`` bounds the whole connect."""

    auto_subscribe: bool = True
    adaptive_stream: bool = True
    dynacast: bool = True
    timeout: float = 15.0


@runtime_checkable
class EnginePort(Protocol):
    """The engine's operations. Every failure raises ``UTDStreamException``.

    ``run(TAKE_SEAT, bearer, room_name="lobby", seat_index=2)``: the arguments are the
    operation's path parameters, query parameters and body fields, by their wire names.
    Operations proven by app credentials (``MINT_TOKEN``, ``AUTHENTICATE``) take
    ``user_token=None``; the port adds the app id and key it was built with.
    """

    def run(self, op: Operation[R], user_token: str | None, /, **args: Any) -> R: ...

    def close(self) -> None:
        """Release pooled connections. Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class RoomView:
    """A committed room as plain values: safe to hand to any thread (never a live room)."""

    app_id: str
    name: str
    livekit_name: str
    snapshot: UTDSeatGrid | UTDStage
    present: Mapping[str, str | None] = field(default_factory=dict)
    banned: frozenset[str] = frozenset()
    size: int | None = None  # how many are present in all, where counted (members+audience)


@dataclass(frozen=True, slots=True)
class RoomSetup:
    """How the media server creates a room that a token's join finds missing.

    A new room's first token carries it, so that whichever reaches the media server first,
    the joiner's connect or the outbox's ``create``, creates the room the same way, with
    the engine's state as its metadata: the mint need not wait for the room to exist.
    """

    metadata: str
    max_participants: int = 0
    empty_timeout: int | None = None


@dataclass(frozen=True, slots=True)
class MediaEffect:
    """One thing the media server must be told, kept in the store's outbox until it is.

    Written in the transaction of the change that caused it; applied per room in ``seq``
    order (the room's commit order) and retried until the media server confirms. Every
    kind is idempotent (a grant or a state push replaces, a removal of the absent is a
    no-op), so applying one twice after a crash changes nothing.
    """

    room: str  # the media server's room name
    kind: str  # "create" | "grant" | "remove" | "close" | "push"
    identity: str = ""
    data: str = ""  # JSON: the sources (grant), the state (push), the options (create)
    seq: int = 0  # the store's order, 0 until stored
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A media-server event the engine recorded (by ``event_id``, once) to apply after."""

    event_id: str
    event: str  # participant_joined | participant_left | participant_connection_aborted | ...
    room: str
    identity: str = ""
    sid: str = ""
    replaced: bool = False  # the connection was closed because a newer one took its place
    hidden: bool = False
    can_publish: bool = False
    sources: frozenset[str] = frozenset()
    created_at: float = 0.0  # when the media server made it (Unix seconds, whole); 0 unknown
    seq: int = 0


def _no_effects(*_: Any) -> Sequence[MediaEffect]:
    return ()


class StorePort(Protocol):
    """Rooms, calls, the outbox of media effects and the inbox of media events.

    ``mutate_*`` hand ``change`` a room or call that belongs to that call alone; if
    ``change`` raises, nothing is written. What ``effects`` returns for the change's result
    is written to the outbox in the same transaction. Reads return values, never live
    objects. ``shared``: several engine processes may use this store at once (leases then
    keep each room's outbox and events to one applier).
    """

    shared: bool

    def read_room(self, app_id: str, name: str, identity: str | None = None
                  ) -> RoomView | None:
        """The room; its ``present`` holds the members and ``identity`` if present."""
        ...
    def room_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None: ...
    def knows_room(self, app_id: str, name: str) -> bool:
        """A hint from memory, no I/O: True if this process has seen the room exist. False
        only costs a join the audience's shortcut (the room's own change admits anyone)."""
        ...
    def mutate_room(self, app_id: str, name: str, livekit_name: str,
                    change: Callable[[Room | None], tuple[Room, T]],
                    effects: Callable[[T], Sequence[MediaEffect]] = _no_effects,
                    involved: Collection[str] = ()) -> T:
        """``involved``: the audience members the change may act on (actor, target)."""
        ...
    # the audience: a plain viewer's join and leave touch that viewer's presence alone
    def join_audience(self, app_id: str, name: str, identity: str, display: str | None,
                      decide: Callable[[UTDStreamType, bool], None]) -> int | None: ...
    def leave_audience(self, app_id: str, name: str, identity: str) -> bool | None: ...
    def audience_size(self, app_id: str, name: str) -> int: ...
    def clear_audience(self, app_id: str, name: str) -> None: ...
    def insert_call(self, app_id: str, livekit_name: str, call: UTDCall,
                    effects: Sequence[MediaEffect] = ()) -> None: ...
    def read_call(self, app_id: str, call_id: str) -> UTDCall: ...
    def call_by_livekit_name(self, livekit_name: str) -> tuple[str, str] | None: ...
    def mutate_call(self, app_id: str, call_id: str,
                    change: Callable[[UTDCall], tuple[UTDCall, T]],
                    effects: Callable[[UTDCall, T, int], Sequence[MediaEffect]] = _no_effects,
                    ) -> tuple[UTDCall, T, int]: ...
    def incoming_calls(self, app_id: str, callee: str) -> list[UTDCall]: ...
    def next_ring_deadline(self) -> float | None: ...
    def due_calls(self, now: float) -> list[tuple[str, str]]: ...
    # what an operator looks at: rooms with someone in them, calls not over (any app)
    def live_rooms(self, limit: int) -> list[RoomView]: ...
    def live_calls(self, limit: int) -> list[tuple[str, UTDCall]]: ...
    # the outbox: effects per media room, in order, until applied
    def pending_effects(self, room: str, now: float, limit: int) -> list[MediaEffect]: ...
    def settle_effects(self, done: Sequence[int], failed: MediaEffect | None = None,
                       retry_at: float = 0.0) -> None: ...
    def rooms_with_due_effects(self, now: float, limit: int) -> list[str]: ...
    # leases: one holder per key across every engine process (a room's outbox, its events)
    def lease(self, key: str, owner: str, now: float, seconds: float) -> bool: ...
    def release(self, key: str, owner: str) -> None: ...
    # the inbox: media events recorded once by id, applied in order after
    def record_webhook(self, event: WebhookEvent, now: float) -> bool: ...
    def pending_webhooks(self, limit: int, room: str | None = None) -> list[WebhookEvent]: ...
    def webhook_applied(self, seq: int) -> None: ...
    # rooms a reconcile pass looks at: changed since ``since`` (media names, at most limit)
    def active_rooms(self, since: float, limit: int) -> list[str]: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class MediaParticipant:
    """One connection in a media room, as the media server reports it."""

    identity: str
    sid: str
    can_publish: bool
    sources: frozenset[str]
    hidden: bool = False  # not yet admitted: the others do not see it


class ControlPort(Protocol):
    """The engine's control of the media server (LiveKit's server API, or the fake SFU).

    Failures raise ``UTDStreamException``: ``not_found`` (404) when the room or participant
    is not there, ``unavailable`` (503) when the media server cannot be reached; any other
    code is unexpected and the service logs it with its cause.
    """

    @property
    def client_url(self) -> str:
        """Where clients connect (the URL handed out with every token)."""
        ...

    async def mint_token(self, *, identity: str, room: str, name: str | None,
                         sources: frozenset[str], ttl: float, hidden: bool = False,
                         setup: RoomSetup | None = None) -> str:
        """A token to join ``room`` publishing exactly ``sources``; a ``hidden`` joiner is
        invisible to the others until :meth:`set_permissions` admits it; ``setup``: how its
        join creates the room if the room does not exist yet."""
        ...
    async def create_room(self, name: str, *, max_participants: int = 0,
                          empty_timeout: int | None = None, metadata: str = "") -> object: ...
    async def set_permissions(self, room: str, identity: str, sources: frozenset[str]) -> None:
        """``identity`` is visible and may publish exactly ``sources`` (none: nothing)."""
        ...
    async def remove_participant(self, room: str, identity: str) -> None: ...
    async def close_room(self, room: str) -> None: ...
    async def push_state(self, room: str, state: str) -> None: ...
    async def get_participant(self, room: str, identity: str) -> MediaParticipant | None: ...
    async def participants(self, room: str) -> list[MediaParticipant]:
        """Everyone connected to ``room`` now (the reconcile pass; never per participant)."""
        ...
    async def room_metadata(self, room: str) -> str | None:
        """The state the media server holds for ``room`` (``None``: no such room)."""
        ...
    async def aclose(self) -> None: ...


class BearerPort(Protocol):
    """Engine bearers: who is calling, proven by a token the engine issued."""

    def issue(self, app_id: str, identity: str) -> str: ...

    def verify(self, token: str | None) -> tuple[str, str]:
        """``(app_id, identity)``; 401 for a missing, forged or expired bearer."""
        ...


@runtime_checkable
class MediaPort(Protocol):
    """One participant's media connection (one instance per session).

    State properties are always current on the event loop that connected; listeners are
    called on that loop, synchronously, after the state they describe is visible.
    """

    async def connect(self, url: str, token: str, options: ConnectOptions) -> None: ...
    async def disconnect(self) -> None: ...
    async def set_microphone(self, enabled: bool) -> None: ...
    async def set_camera(self, enabled: bool) -> None: ...
    async def send_data(self, data: bytes, *, reliable: bool = True,
                        to: Sequence[str] | None = None, topic: str | None = None) -> None: ...

    @property
    def identity(self) -> str | None: ...
    @property
    def connection_state(self) -> ConnectionState: ...
    @property
    def permissions(self) -> UTDPermissions: ...
    @property
    def remote_participants(self) -> tuple[UTDRemoteParticipant, ...]: ...
    @property
    def room_metadata(self) -> str: ...
    @property
    def microphone_enabled(self) -> bool: ...
    @property
    def camera_enabled(self) -> bool: ...

    def add_listener(self, callback: Callable[[MediaEvent], None]) -> Unsubscribe:
        """Call ``callback`` for every event; returns the function that stops it."""
        ...

    # -- received media (see stream_core.frames) ---------------------------------------
    def audio_frames(self, identity: str, *, sample_rate: int = 48_000,
                     channels: int = 1) -> FrameStream[UTDAudioFrame]:
        """What ``identity``'s microphone says, resampled to this format. The stream waits
        for the track to be subscribed, and ends when the participant leaves, its
        microphone is unpublished (a revoked grant included) or this connection goes down.
        Raises ``not_connected`` when not connected, 422 for a format out of range."""
        ...

    def video_frames(self, identity: str, *, format: UTDVideoFormat = UTDVideoFormat.RGBA,
                     max_fps: float | None = None) -> FrameStream[UTDVideoFrame]:
        """What ``identity``'s camera shows, at most ``max_fps`` frames a second; starts and
        ends as :meth:`audio_frames` does."""
        ...

    def mixed_audio(self, *, sample_rate: int = 48_000,
                    channels: int = 1) -> FrameStream[UTDAudioFrame]:
        """Every remote microphone this participant hears, mixed (what a listener hears);
        speakers join and leave the mix as they publish and stop. Ends when this connection
        goes down."""
        ...
