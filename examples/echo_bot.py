"""Echo bot: takes a seat in an audio room and repeats what it hears, a moment later.

    python -m examples.echo_bot --base-url http://127.0.0.1:7800 \
        --app-id ID --app-key KEY lobby --seat 1 --delay 0.5

It hears the room as one mixed stream (``session.mixed_audio()``: every speaker but
itself) and speaks through a ``PushedAudio`` microphone, holding each frame back ``delay``
seconds. It runs until Ctrl-C (or until its task is cancelled, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os

from adapters.livekit.media import LiveKitMedia
from adapters.livekit.sources import PushedAudio
from stream_core import UTDStreamClient
from stream_core.client import DEFAULT_BASE_URL
from examples.server import Server

__all__ = ["Server", "echo", "main"]


async def echo(server: Server, room_name: str, *, identity: str = "echo-bot",
               seat: int = 1, delay: float = 0.5) -> None:
    """Join ``room_name``, take ``seat`` and echo the room until cancelled or removed."""
    voice = PushedAudio(sample_rate=48_000, num_channels=1)
    client = UTDStreamClient(server.app_id, server.app_key, server.base_url,
                             media_factory=lambda: LiveKitMedia(audio_source=lambda: voice))
    try:
        room = await client.join_audio_room(identity, room_name)
        try:
            await room.take_seat(seat)
            held: collections.deque[bytes] = collections.deque()
            async with room.mixed_audio(sample_rate=48_000, channels=1) as heard:
                async for frame in heard:  # ends when the bot leaves the room
                    held.append(frame.data)
                    while len(held) * frame.duration > delay:
                        voice.push(held.popleft())
        finally:
            await room.dispose()
    finally:
        client.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("UTD_BASE_URL", DEFAULT_BASE_URL))
    parser.add_argument("--app-id", default=os.environ.get("UTD_APP_ID"), required=False)
    parser.add_argument("--app-key", default=os.environ.get("UTD_APP_KEY"), required=False)
    parser.add_argument("--identity", default="echo-bot")
    parser.add_argument("--seat", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds")
    parser.add_argument("room")
    args = parser.parse_args()
    server = Server(args.app_id, args.app_key, args.base_url)
    try:
        asyncio.run(echo(server, args.room, identity=args.identity, seat=args.seat,
                         delay=args.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
