"""``utd-stream up`` as a new user runs it: it prints what to export, a bot built from those
values works against it, and SIGTERM stops both processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stream_core import UTDStreamClient
from stream_devstack.stack import free_port
from tests.support import require_livekit_binary

pytestmark = [pytest.mark.livekit, pytest.mark.engine]


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} in time; output:\n{seen}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


async def test_up_prints_exports_serves_a_bot_and_stops_on_sigterm(tmp_path: Path) -> None:
    require_livekit_binary()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.entrypoints.cli", "up", "--port", str(port),
         "--state-dir", str(tmp_path / "state"), "--status-every", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        banner = _read_until(proc, "Ctrl-C stops both.", timeout=60)
        env = dict(re.findall(r"^export (UTD_\w+)=(\S+)$", banner, re.M))
        assert set(env) == {"UTD_APP_ID", "UTD_APP_KEY", "UTD_BASE_URL", "UTD_LIVEKIT_URL"}
        assert env["UTD_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert f"app key      {env['UTD_APP_KEY']}" in banner
        status = _read_until(proc, "engine up", timeout=10)
        assert "livekit up" in status

        client = UTDStreamClient(app_id=env["UTD_APP_ID"], app_key=env["UTD_APP_KEY"],
                                 base_url=env["UTD_BASE_URL"])
        room = await client.join_audio_room("bot", "lobby", as_host=True, seat_count=4)
        try:
            await room.take_seat(0)
            await room.can_publish.wait_for(bool, timeout=15)
            assert room.seats.value is not None
            assert room.seats.value.seats[0].occupant == "bot"
        finally:
            await room.dispose()
            client.dispose()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout is not None
        tail = proc.stdout.read()
        assert "stopped: livekit-server and the engine are down" in tail
        assert not _answers(f"{env['UTD_BASE_URL']}/healthz")
        livekit_http = env["UTD_LIVEKIT_URL"].replace("ws://", "http://")
        assert not _answers(livekit_http)
        # a second start keeps the app's credentials (kept in the state directory)
        assert (tmp_path / "state" / "up-credentials.json").stat().st_mode & 0o077 == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
