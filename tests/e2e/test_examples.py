"""The examples, run against the real stack, checked by what is heard (FFT), not by level."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest

from examples.answering_bot import answer
from examples.echo_bot import echo
from examples.server import Server
from stream_core import UTDCallStatus, UTDStreamType
from tests.contracts.media_contract import TONE_HZ, TONE_SLACK_HZ, peak_hz, read_audio
from tests.e2e.conftest import TIMEOUT
from tests.e2e.test_real_stack import sees

pytestmark = [pytest.mark.livekit, pytest.mark.engine]


def wav_peak(path: Path) -> tuple[float, float]:
    """(peak frequency, seconds) of a mono 16-bit WAV file."""
    with wave.open(str(path), "rb") as wav:
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = np.frombuffer(pcm, np.int16).astype(np.float64)
    assert len(samples), f"{path} is empty"
    return peak_hz(samples, rate), len(samples) / rate


async def test_echo_bot_repeats_a_440_hz_tone_at_440_hz(real_client, sessions, local_stack):
    name = f"echo-{uuid.uuid4().hex[:8]}"
    host = await real_client().join_audio_room("host", name, as_host=True, seat_count=4)
    sessions.append(host)
    args = Server(local_stack.app.app_id, local_stack.app.app_key, local_stack.base_url)
    bot = asyncio.ensure_future(echo(args, name, seat=1, delay=0.3))
    try:
        heard = host.audio_frames("echo-bot", sample_rate=48_000)
        await sees(host, "echo-bot", "microphone")
        await host.take_seat(0)  # the host speaks a 440 Hz tone (the default microphone)
        async with heard:
            pcm, rate = await read_audio(heard, 0.5, timeout=TIMEOUT)
        assert abs(peak_hz(pcm, rate) - TONE_HZ) < TONE_SLACK_HZ
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bot
    assert bot.cancelled()


async def test_answering_bot_greets_and_records_the_callers_tone(real_client, sessions,
                                                                 local_stack, tmp_path):
    bot_identity = f"desk-{uuid.uuid4().hex[:6]}"
    args = Server(local_stack.app.app_id, local_stack.app.app_key, local_stack.base_url)
    out = tmp_path / "caller.wav"
    bot = asyncio.ensure_future(answer(args, out, identity=bot_identity, max_seconds=1.5,
                                       wait=TIMEOUT))
    try:
        client = real_client()
        await client.authenticate(f"caller-{uuid.uuid4().hex[:6]}")
        call = client.call_session(UTDStreamType.AUDIO_CALL)
        sessions.append(call)
        await call.start(bot_identity)  # the caller speaks a 440 Hz tone once accepted
        greeting = call.audio_frames(bot_identity)
        async with greeting:
            pcm, rate = await read_audio(greeting, 0.3, timeout=TIMEOUT)
        assert abs(peak_hz(pcm, rate) - 660.0) < TONE_SLACK_HZ  # the bot's beep
        await call.status.wait_for(lambda s: s is not None and s.is_terminal, TIMEOUT,
                                   what="the bot to end the call after recording")
        assert call.status.value is UTDCallStatus.ENDED
        seconds = await asyncio.wait_for(bot, TIMEOUT)
    finally:
        if not bot.done():
            bot.cancel()
    assert seconds >= 1.5
    frequency, length = wav_peak(out)
    assert abs(frequency - TONE_HZ) < TONE_SLACK_HZ and length >= 1.5


async def test_join_records_what_it_hears_mixed_and_per_speaker(real_client, sessions,
                                                                local_stack, tmp_path):
    name = f"rec-{uuid.uuid4().hex[:8]}"
    host = await real_client().join_audio_room("host", name, as_host=True, seat_count=4)
    ear = await real_client().join_audio_room("ear", name)
    sessions += [host, ear]
    mixed, per_speaker = tmp_path / "room.wav", tmp_path / "voices"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "adapters.entrypoints.cli", "join", "--base-url",
         local_stack.base_url, "--app-id", local_stack.app.app_id, "--app-key",
         local_stack.app.app_key, "--identity", "rec", "audio-room", name,
         "--record", str(mixed), "--record-dir", str(per_speaker)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert recorder.stdout is not None
        lines = [await asyncio.wait_for(asyncio.to_thread(recorder.stdout.readline), TIMEOUT)]
        while "READY" not in lines[-1]:
            assert lines[-1], "".join(lines)
            lines.append(await asyncio.wait_for(asyncio.to_thread(recorder.stdout.readline),
                                                TIMEOUT))
        heard = ear.audio_frames("host")
        await host.take_seat(0)  # the host speaks a 440 Hz tone
        async with heard:  # a second of it crossed the room, to the recorder as to the ear
            await read_audio(heard, 1.0, timeout=TIMEOUT)
        recorder.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(asyncio.to_thread(recorder.communicate), TIMEOUT)
        assert recorder.returncode == 0, "".join(lines) + out
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(10)
    assert f"recorded {mixed}" in out and f"recorded {per_speaker / 'host.wav'}" in out, out
    for path in (mixed, per_speaker / "host.wav"):
        frequency, length = wav_peak(path)
        assert abs(frequency - TONE_HZ) < TONE_SLACK_HZ and length >= 0.5, (path, length)
