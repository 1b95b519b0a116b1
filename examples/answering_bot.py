"""Answering bot: accepts the next incoming call, plays a greeting and records the caller.

    python -m examples.answering_bot --base-url http://127.0.0.1:7800 \
        --app-id ID --app-key KEY --identity desk --out caller.wav --max-seconds 10

The greeting is a WAV file played once when the microphone goes live (``WavAudio`` with
``loop=False``; without ``--greeting``, a two-second 660 Hz beep). The caller is recorded
(``session.audio_frames(caller)`` into ``adapters.recorder.record_wav``: 16-bit PCM, 48 kHz
mono) until the caller hangs up or ``--max-seconds`` are recorded; then the bot ends the
call. It prints the recording's path and length.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import struct
import tempfile
import wave
from pathlib import Path

from adapters.livekit.media import LiveKitMedia
from adapters.livekit.sources import WavAudio
from adapters.recorder import record_wav
from stream_core import UTDStreamClient
from stream_core.client import DEFAULT_BASE_URL
from examples.server import Server

__all__ = ["Server", "answer", "beep", "main"]


def beep(path: Path, frequency: float = 660.0, seconds: float = 2.0, rate: int = 48_000) -> Path:
    """Write a sine beep (0.3 of full scale) as a 16-bit mono WAV file."""
    samples = (int(9830 * math.sin(2 * math.pi * frequency * i / rate))
               for i in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


async def answer(server: Server, out: Path, *, identity: str = "answering-bot",
                 greeting: Path | None = None, max_seconds: float = 10.0,
                 wait: float = 30.0) -> float:
    """Answer the next call to ``identity`` (waiting up to ``wait`` s); return the seconds
    of the caller recorded to ``out``."""
    with tempfile.TemporaryDirectory() as scratch:
        prompt = greeting or beep(Path(scratch) / "greeting.wav")
        client = UTDStreamClient(
            server.app_id, server.app_key, server.base_url,
            media_factory=lambda: LiveKitMedia(audio_source=lambda: WavAudio(prompt, loop=False)))
        try:
            await client.authenticate(identity)
            incoming = await client.next_incoming_call(timeout=wait)
            if incoming is None:
                raise TimeoutError(f"no call for {identity!r} within {wait:g}s")
            call = client.call_session(incoming.type)
            try:
                await call.accept(incoming.call_id)  # the greeting plays once the mic is live
                caller = call.audio_frames(incoming.caller_identity)
                seconds = await record_wav(caller, out, max_seconds=max_seconds)
                status = call.status.value
                if status is not None and not status.is_terminal:
                    await call.end()
                return seconds
            finally:
                await call.dispose()
        finally:
            client.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("UTD_BASE_URL", DEFAULT_BASE_URL))
    parser.add_argument("--app-id", default=os.environ.get("UTD_APP_ID"), required=False)
    parser.add_argument("--app-key", default=os.environ.get("UTD_APP_KEY"), required=False)
    parser.add_argument("--identity", default="answering-bot")
    parser.add_argument("--greeting", type=Path, help="a 16-bit PCM WAV file")
    parser.add_argument("--out", type=Path, default=Path("caller.wav"))
    parser.add_argument("--max-seconds", type=float, default=10.0)
    args = parser.parse_args()
    server = Server(args.app_id, args.app_key, args.base_url)
    seconds = asyncio.run(answer(server, args.out, identity=args.identity,
                                 greeting=args.greeting, max_seconds=args.max_seconds))
    print(f"recorded {args.out} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
