"""Hearing through sessions, on the fakes: frames follow the seat grant and the session's
life, and the recorders write what was said."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np

from adapters.fakes.media import FakeMedia
from adapters.recorder import SpeakerRecorder, record_wav
from stream_core import DataReceived, UTDSession
from tests.contracts.media_contract import TONE_HZ, TONE_SLACK_HZ, drain, peak_hz, read_audio
from tests.contracts.test_media_fake import tone
from tests.scenarios.helpers import TIMEOUT, sees_track


def speak(session: UTDSession, frequency: float = TONE_HZ, seconds: float = 0.5) -> None:
    media = session.room.media
    assert isinstance(media, FakeMedia)
    for pcm in tone(frequency, seconds):
        assert media.push_audio(pcm)


async def delivered(listener: UTDSession, speaker: UTDSession) -> None:
    """Everything ``speaker`` pushed so far reached ``listener``: the fake SFU delivers
    frames and data on one ordered path, so a data barrier proves it without waiting."""
    arrived = asyncio.Event()
    stop = listener.room.media.add_listener(
        lambda e: arrived.set() if isinstance(e, DataReceived) and e.data == b"barrier" else None)
    try:
        await speaker.send_data(b"barrier", to=[listener.identity])
        await asyncio.wait_for(arrived.wait(), TIMEOUT)
    finally:
        stop()


def wav_peak(path: Path) -> tuple[float, float]:
    """(peak frequency, seconds) of a mono 16-bit WAV file."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = np.frombuffer(pcm, np.int16).astype(np.float64)
    return peak_hz(samples, rate), len(samples) / rate


async def test_a_listener_hears_a_seated_speaker_until_the_seat_is_left(make_client):
    host = await make_client().join_audio_room("host", "hall", as_host=True, seat_count=4)
    alice = await make_client().join_audio_room("alice", "hall")
    try:
        frames = host.audio_frames("alice", sample_rate=16_000)
        await alice.take_seat(0)
        await sees_track(host, "alice", "microphone")
        speak(alice)
        pcm, rate = await read_audio(frames, 0.3)
        assert abs(peak_hz(pcm, rate) - TONE_HZ) < TONE_SLACK_HZ

        await alice.leave_seat()  # the grant goes, the microphone goes, the stream ends
        await drain(frames)
        assert frames.ended == "microphone unpublished"
    finally:
        for session in (host, alice):
            await session.dispose()


async def test_leaving_ends_every_stream_and_disposal_refuses_new_ones(make_client):
    host = await make_client().join_audio_room("host", "hall", as_host=True, seat_count=4)
    alice = await make_client().join_audio_room("alice", "hall")
    try:
        waiting = [host.audio_frames("alice"), host.video_frames("alice"), host.mixed_audio()]
        await host.leave()
        for stream in waiting:
            await drain(stream)
            assert stream.ended == "disconnected"
        await host.dispose()
        try:
            host.mixed_audio()
        except Exception as exc:  # noqa: BLE001 - the code is what is checked
            assert getattr(exc, "code", None) == "disposed"
        else:
            raise AssertionError("a disposed session handed out a stream")
    finally:
        for session in (host, alice):
            await session.dispose()


async def test_recorders_write_the_mix_and_each_speaker(make_client, tmp_path):
    host = await make_client().join_audio_room("host", "hall", as_host=True, seat_count=4)
    alice = await make_client().join_audio_room("alice", "hall")
    bob = await make_client().join_audio_room("bob", "hall")
    try:
        mixed_path = tmp_path / "mix.wav"
        mixed = record_wav(host.mixed_audio(), mixed_path)
        speakers = SpeakerRecorder(host, tmp_path / "speakers")
        speakers.start()
        mixing = asyncio.ensure_future(mixed)
        await alice.take_seat(0)
        await bob.take_seat(1)
        for who in ("alice", "bob"):
            await sees_track(host, who, "microphone")
        for a, b in zip(tone(440.0), tone(660.0)):  # at the same time, so the mix sums them
            assert isinstance(alice.room.media, FakeMedia)
            assert isinstance(bob.room.media, FakeMedia)
            alice.room.media.push_audio(a)
            bob.room.media.push_audio(b)
        await delivered(host, alice)
        await delivered(host, bob)

        await host.leave()
        files = await speakers.finish()
        seconds = await mixing
    finally:
        for session in (host, alice, bob):
            await session.dispose()

    assert sorted(p.name for p in files) == ["alice.wav", "bob.wav"]
    assert abs(wav_peak(tmp_path / "speakers" / "alice.wav")[0] - 440.0) < TONE_SLACK_HZ
    assert abs(wav_peak(tmp_path / "speakers" / "bob.wav")[0] - 660.0) < TONE_SLACK_HZ
    assert seconds > 0.4
    with wave.open(str(mixed_path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / 48_000)
    for hz in (440.0, 660.0):  # both voices are in the mix, each a strong peak of its own
        band = (freqs > hz - 50) & (freqs < hz + 50)
        assert abs(freqs[band][np.argmax(spectrum[band])] - hz) < TONE_SLACK_HZ
        assert spectrum[band].max() > 20 * np.median(spectrum)
