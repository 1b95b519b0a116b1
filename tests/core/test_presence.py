"""What a room remembers of its members to judge a leave: their latest admission (engine
time) and latest connection seen joining. Driven directly: times are inputs."""

from __future__ import annotations

import pytest

from stream_core.models import UTDSeatMode
from stream_core.rooms import SeatRoom, restore_room
from stream_core.rooms.presence import Presence


def _member(since: float | None = None, connection: str | None = None) -> Presence:
    presence = Presence("r")
    presence.join("g")
    if since is not None:
        presence.minted("g", since)
    if connection is not None:
        presence.connected("g", connection)
    return presence


@pytest.mark.parametrize("since,connection,sid,created_at,stale", [
    (None, None, "PA_X", 1000.0, False),     # nothing known: taken at its word
    (None, "PA_X", "PA_X", 1000.0, False),   # the current connection's leave
    (None, "PA_Y", "PA_X", 1000.0, True),    # an older connection's, after PA_Y joined
    (None, "PA_Y", "", 1000.0, False),       # no sid: only the time could tell
    (1010.6, "PA_X", "PA_X", 1009.0, True),  # made before the latest mint
    (1010.6, "PA_X", "PA_X", 1010.0, False),  # the same second (1010 may be 1010.9)
    (1010.0, "PA_X", "PA_X", 1009.0, True),  # a whole second before: certainly older
    (1010.6, "PA_X", "PA_X", 0.0, False),    # no time sent
    (1010.6, None, "PA_X", 1020.0, False),   # after the mint
])
def test_a_leave_is_stale_only_when_something_known_says_so(
        since: float | None, connection: str | None, sid: str, created_at: float,
        stale: bool) -> None:
    assert (_member(since, connection).stale_leave("g", sid, created_at) is not None) is stale


def test_acting_admits_a_viewer_once_and_minting_again_moves_the_admission() -> None:
    presence = _member()
    presence.acted("g", 1005.0)
    presence.acted("g", 1008.0)  # a member keeps its admission
    assert presence.since["g"] == 1005.0
    presence.minted("g", 1010.0)
    assert presence.since["g"] == 1010.0


def test_leaving_or_a_ban_forgets_the_member() -> None:
    room = SeatRoom("r", mode=UTDSeatMode.FREE)
    room.join("h", as_host=True)
    room.setup_seats("h", seat_count=2)
    for who in ("g", "troll"):
        room.join(who)
        room.take_seat(who, 0 if who == "g" else 1)
        room.presence.minted(who, 1000.0)
        room.presence.connected(who, f"PA_{who}")
    room.leave("g")
    room.ban("h", "troll")
    assert room.presence.seen() == {}


def test_what_is_seen_round_trips_for_members_only() -> None:
    room = SeatRoom("r", mode=UTDSeatMode.FREE)
    room.join("h", as_host=True)
    room.setup_seats("h", seat_count=2)
    room.join("g")
    room.join("viewer")
    room.take_seat("g", 0)
    for who in ("h", "g", "viewer"):
        room.presence.minted(who, 1000.0)
        room.presence.connected(who, f"PA_{who}")
    room.presence.keep_seen({"h", "g"})  # the members, as the room's state names them
    seen = room.presence.seen()
    assert seen == {"g": [1000.0, "PA_g"], "h": [1000.0, "PA_h"]}
    copy = restore_room(room.snapshot(), dict(room.presence.present),
                        set(room.presence.banned), seen)
    assert copy.presence.stale_leave("g", "PA_old", 1020.0) is not None
    assert copy.presence.seen() == seen


def test_a_room_kept_without_what_was_seen_restores_knowing_nothing() -> None:
    room = SeatRoom("r", mode=UTDSeatMode.FREE)
    room.join("h", as_host=True)
    room.setup_seats("h", seat_count=1)
    room.join("g")
    room.take_seat("g", 0)
    copy = restore_room(room.snapshot(), dict(room.presence.present), set())
    assert copy.presence.seen() == {}
    assert copy.presence.stale_leave("g", "PA_X", 1.0) is None
    assert copy.leave("g") and copy.snapshot().seats[0].occupant is None
