"""Real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium)
against a real stack: the operator console, and a web page on another origin.

Policy, as for livekit-server (tests/support.py): a missing browser skips on a developer
machine (``make test`` installs it) and FAILS in CI, where a skip would hide the only
real-browser coverage.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream_core.engine.settings import AppConfig
from stream_devstack.stack import LocalStack, free_port
from tests.support import in_ci, require_livekit_binary

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_TOKEN = "browser-operator-token-0123456789"
#: LiveKit's JavaScript client, put there by `make js` (npm, pinned in the Makefile).
LIVEKIT_JS = ROOT / ".tools/js/node_modules/livekit-client/dist/livekit-client.umd.js"


def require(found: object, what: str) -> None:
    if found:
        return
    reason = f"{what} is missing: run `make system js` (or `make test`)"
    if in_ci():
        pytest.fail(reason + " (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)


def _tool(*names: str) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium, closed after the test."""
    chromium, driver_bin = _tool("chromium", "chromium-browser"), _tool("chromedriver")
    require(chromium, "chromium")
    require(driver_bin, "chromedriver (Debian: chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 "--disable-features=WebRtcHideLocalIpsWithMdns", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(driver_bin)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class PageServer:
    """A tiny static HTTP server on its own loopback port: another origin than the engine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="page-server")

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass


@pytest.fixture(scope="session")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageServer]:
    server = PageServer(tmp_path_factory.mktemp("pages")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_stack(page_server: PageServer) -> Iterator[LocalStack]:
    """A real stack with an operator and the page server's origin allowed (CORS)."""
    require_livekit_binary()
    stack = LocalStack(apps=[AppConfig("web-app", "web-key")],
                       engine_args=["--cors-origin", page_server.origin],
                       engine_env={"UTD_ENGINE_OPERATORS": f"ops:{OPERATOR_TOKEN}"})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
