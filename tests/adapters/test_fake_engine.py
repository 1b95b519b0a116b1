"""What only the fake engine offers: the rate-limit hook; and the one dispatch table both
engines share."""

from __future__ import annotations

import pytest

from adapters.fakes.engine import FakeEngine
from adapters.fakes.sfu import FakeSFU
from stream_core import EnginePort, UTDStreamException, UTDStreamType
from stream_core.rooms import ROOM_OPERATIONS


def test_the_rate_limit_hook_refuses_with_429_and_changes_nothing() -> None:
    refused = {("take_seat", "bob")}
    engine = FakeEngine(FakeSFU(), rate_limiter=lambda op, who: 2.0 if (op, who) in refused
                        else None)
    try:
        host = engine.mint_token(identity="h", room_name="r", stream_type=UTDStreamType.AUDIO_ROOM,
                                 as_host=True, seat_count=2).user_token
        bob = engine.mint_token(identity="bob", room_name="r",
                                stream_type=UTDStreamType.AUDIO_ROOM).user_token
        before = engine.get_seats(host, "r")
        with pytest.raises(UTDStreamException) as info:
            engine.take_seat(bob, "r", 0)
        assert info.value.is_rate_limited and info.value.retry_after == 2.0
        assert engine.get_seats(host, "r") == before
        assert engine.take_seat(host, "r", 1).seat_of("h") == 1  # others are not limited
    finally:
        engine.close()


def test_every_room_operation_is_a_port_method_and_a_room_method() -> None:
    for op, (cls, method) in ROOM_OPERATIONS.items():
        if op != "unlock_seat":  # the port unlocks through lock_seat(locked=False)
            assert hasattr(EnginePort, op), op
        if method is not None and cls is not object:
            assert callable(getattr(cls, method)), (op, method)
