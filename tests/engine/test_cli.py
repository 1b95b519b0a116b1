"""``utd-stream engine`` on a fresh machine: no configuration at all, and it serves."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from stream_devstack.stack import free_port

pytestmark = pytest.mark.engine


def test_engine_starts_with_no_configuration(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.entrypoints.cli", "engine", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:  # bounded: read the banner it prints at start
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("utd-stream engine on"):
                break
        banner = "".join(lines)
        assert "dev app: app_id=dev-" in banner, banner
        assert f"http://127.0.0.1:{port}" in banner
        stored = json.loads((tmp_path / ".utd-stream" / "dev-credentials.json").read_text())
        assert stored["signing_secret"] not in banner  # the secret stays in the 0600 file
        assert (tmp_path / ".utd-stream" / "dev-credentials.json").stat().st_mode & 0o077 == 0
        for _ in range(100):  # the server starts right after the banner
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json",
                                            timeout=1) as answer:
                    assert json.load(answer)["openapi"].startswith("3.")
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the engine never answered")
        assert (tmp_path / ".utd-stream" / "engine.db").exists()
    finally:
        proc.terminate()
        proc.wait(10)
