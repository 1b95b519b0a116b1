"""``utd-stream join``: one headless participant from the command line, for bots and load.

Examples::

    utd-stream join --app-id A --app-key K audio-room lobby --identity bot1 --seat 2 --wav hi.wav
    utd-stream join --app-id A --app-key K live-stream show --identity fan --raise-hand
    utd-stream join --app-id A --app-key K answer --identity u2      # accept the next call
    utd-stream join ... audio-room lobby --identity rec --record lobby.wav --record-dir voices/

It prints every state change as a line (``READY`` once joined, so scripts can wait for it)
and leaves cleanly on Ctrl-C / SIGTERM, after ``--duration`` seconds, or when the call it
is in ends. ``--record FILE`` writes what it hears (every speaker mixed; 16-bit PCM,
48 kHz mono) and ``--record-dir DIR`` one such file per speaker, from ``READY`` until it
leaves (:mod:`adapters.recorder`); it prints ``recorded PATH (S s)`` for each file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import wave
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from stream_core import ConnectionState, UTDSession, UTDStreamClient, UTDStreamType
from stream_core.client import DEFAULT_BASE_URL

__all__ = ["add_arguments", "run", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=os.environ.get("UTD_BASE_URL", DEFAULT_BASE_URL))
    parser.add_argument("--app-id", default=os.environ.get("UTD_APP_ID"), required=False)
    parser.add_argument("--app-key", default=os.environ.get("UTD_APP_KEY"), required=False)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--name")
    parser.add_argument("--duration", type=float, help="leave after this many seconds")
    parser.add_argument("--wav", help="publish this WAV file (16-bit PCM) as the microphone")
    parser.add_argument("--silent", action="store_true", help="publish silence, not a tone")
    parser.add_argument("--record", metavar="FILE",
                        help="write what this participant hears (mixed) to a WAV file")
    parser.add_argument("--record-dir", metavar="DIR",
                        help="write one WAV file per speaker into this directory")
    parser.add_argument("product", choices=["audio-room", "live-stream", "answer", "call"])
    parser.add_argument("target", nargs="?", help="room name, or the callee for `call`")
    parser.add_argument("--host", action="store_true")
    parser.add_argument("--seat-count", type=int)
    parser.add_argument("--seat-mode", choices=["free", "request"])
    parser.add_argument("--seat", type=int, help="audio room: take this seat")
    parser.add_argument("--request", action="store_true", help="audio room: ask to speak")
    parser.add_argument("--go-live", action="store_true", help="live stream host: broadcast")
    parser.add_argument("--raise-hand", action="store_true", help="live stream: ask for stage")
    parser.add_argument("--video", action="store_true", help="call: a video call")


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def _follow(session: UTDSession, name: str, observable: Any) -> None:
    observable.listen(lambda value: _say(f"{name} {value!r}"))


async def run(args: argparse.Namespace) -> int:
    if not args.app_id or not args.app_key:
        print("--app-id and --app-key (or UTD_APP_ID / UTD_APP_KEY) are required",
              file=sys.stderr)
        return 2
    media_factory = None
    if args.wav or args.silent:
        from adapters.livekit.media import LiveKitMedia
        from adapters.livekit.sources import SilentAudio, WavAudio

        audio = (lambda: WavAudio(args.wav)) if args.wav else SilentAudio
        media_factory = lambda: LiveKitMedia(audio_source=audio)  # noqa: E731
    client = UTDStreamClient(app_id=args.app_id, app_key=args.app_key, base_url=args.base_url,
                             media_factory=media_factory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    session: UTDSession | None = None
    recordings: list[Awaitable[list[tuple[Path, float]]]] = []
    try:
        session = await _join(client, args)
        _follow(session, "connected", session.connected)
        _follow(session, "can_publish", session.can_publish)
        session.remote_participants.listen(
            lambda ps: _say("remotes " + ", ".join(p.identity for p in ps)))
        session.room.connection_state.listen(
            lambda state: stop.set() if state is ConnectionState.DISCONNECTED else None)
        recordings = _start_recording(session, args)
        _say("READY")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
        _say("leaving")
        return 0
    finally:
        if session is not None:
            await session.leave()
            for finished in recordings:
                for path, seconds in await finished:
                    _say(f"recorded {path} ({seconds:.1f} s)")
            await session.dispose()
        client.dispose()


def _start_recording(session: UTDSession,
                     args: argparse.Namespace) -> list[Awaitable[list[tuple[Path, float]]]]:
    """Start the recorders asked for; each awaitable gives its files once the session left."""
    from adapters.recorder import SpeakerRecorder, record_wav

    started: list[Awaitable[list[tuple[Path, float]]]] = []
    if args.record:
        path = Path(args.record)
        mixed = asyncio.ensure_future(record_wav(session.mixed_audio(), path))

        async def mixed_done() -> list[tuple[Path, float]]:
            return [(path, await mixed)]
        started.append(mixed_done())
    if args.record_dir:
        speakers = SpeakerRecorder(session, args.record_dir)
        speakers.start()

        async def speakers_done() -> list[tuple[Path, float]]:
            return [(path, _wav_seconds(path)) for path in await speakers.finish()]
        started.append(speakers_done())
    return started


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def _join(client: UTDStreamClient, args: argparse.Namespace) -> UTDSession:
    if args.product == "audio-room":
        room = await client.join_audio_room(args.identity, args.target, as_host=args.host,
                                            name=args.name, seat_count=args.seat_count,
                                            seat_mode=args.seat_mode)
        _follow(room, "seat", room.my_seat)
        if args.request:
            request = await room.request_to_speak(args.seat)
            _say(f"requested to speak (request {request.request_id})")
        elif args.seat is not None:
            await room.take_seat(args.seat)
            _say(f"seated at {room.my_seat.value}, microphone on")
        return room
    if args.product == "live-stream":
        live = await client.join_live_stream(args.identity, args.target, as_host=args.host,
                                             name=args.name)
        _follow(live, "on_stage", live.on_stage)
        if args.go_live:
            await live.go_live()
            _say("live")
        if args.raise_hand:
            await live.request_stage()
            _say("hand raised")
        return live
    await client.authenticate(args.identity, name=args.name)
    if args.product == "call":
        call = client.call_session(UTDStreamType.VIDEO_CALL if args.video
                                   else UTDStreamType.AUDIO_CALL)
        _follow(call, "call", call.status)
        await call.start(args.target)
        return call
    _say("waiting for a call")
    incoming = None
    while incoming is None:
        incoming = await client.next_incoming_call(timeout=30)
    session = client.call_session(incoming.type)
    _follow(session, "call", session.status)
    await session.accept(incoming.call_id)
    return session


def main(argv: list[str]) -> int:
    """``utd-stream join ...``: parse, quiet livekit's routine teardown logs, run."""
    parser = argparse.ArgumentParser(prog="utd-stream join",
                                     description="run one headless participant (bots, load tests)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    quiet_media_logs()
    return asyncio.run(run(args))


def quiet_media_logs() -> None:
    """livekit's native layer logs every routine teardown (closed peer connections, dropped
    FFI handles, data channels closed by a room deletion) as warnings and errors; the
    adapter turns real failures into ``UTDStreamException``, so command lines silence the
    rest."""
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("livekit").setLevel(logging.CRITICAL)
