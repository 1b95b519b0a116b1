"""The operator console in real headless Chromium: a seat taken by a real SDK participant
appears on the page without a reload; a kick from the page (confirmed) revokes the
participant's grant on the LiveKit server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from stream_core import UTDStreamClient
from stream_core.engine.base import livekit_room_name
from stream_devstack.stack import LocalStack
from stream_engine.livekit_control import LiveKitControl
from tests.browser.conftest import OPERATOR_TOKEN

pytestmark = [pytest.mark.livekit, pytest.mark.engine, pytest.mark.browser]

WAIT = 20.0


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Selenium blocks: keep it off the event loop the SDK sessions run on."""
    return await asyncio.to_thread(fn, *args)


def _wait_css(driver: Any, css: str, timeout: float = WAIT) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _sign_in(driver: Any, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/console")
    driver.find_element(By.ID, "token").send_keys(OPERATOR_TOKEN)
    driver.find_element(By.ID, "sign-in").click()
    _wait_css(driver, "#main:not([hidden])")


def _kick_and_confirm(driver: Any, css: str) -> str:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _wait_css(driver, css).click()
    alert = WebDriverWait(driver, WAIT).until(ec.alert_is_present())
    question = str(alert.text)
    alert.accept()
    return question


async def test_a_seat_appears_live_and_a_kick_revokes_the_grant(
        browser: Any, browser_stack: LocalStack) -> None:
    stack = browser_stack
    room_name = f"console-{uuid.uuid4().hex[:8]}"
    client = UTDStreamClient(app_id="web-app", app_key="web-key", base_url=stack.base_url)
    host = await client.join_audio_room("host", room_name, as_host=True, seat_count=4)
    ann = await client.join_audio_room("ann", room_name)
    control = LiveKitControl(stack.livekit.url, stack.livekit.api_key,
                             stack.livekit.api_secret)
    lk_room = livekit_room_name("web-app", room_name)
    try:
        await _in_thread(_sign_in, browser, stack.base_url)
        room_css = f'section.room[data-room="{room_name}"]'
        await _in_thread(_wait_css, browser, room_css)  # the room is live: on the page

        await ann.take_seat(1)  # the page is not reloaded: it must show this by itself
        await ann.can_publish.wait_for(bool, timeout=WAIT)
        granted = await control.get_participant(lk_room, "ann")
        assert granted is not None and granted.can_publish
        seat_css = f'{room_css} .seat[data-seat="1"][data-occupant="ann"]'
        await _in_thread(_wait_css, browser, seat_css)

        question = await _in_thread(_kick_and_confirm, browser,
                                    f'{seat_css} button.kick[data-identity="ann"]')
        assert question == f"Kick ann from seat 1 of {room_name}?"

        deadline = time.monotonic() + WAIT
        while True:  # the LiveKit server itself must say the grant is gone
            now = await control.get_participant(lk_room, "ann")
            if now is not None and not now.can_publish:
                break
            assert time.monotonic() < deadline, f"grant not revoked: {now}"
            await asyncio.sleep(0.1)
        await ann.can_publish.wait_for(lambda can: not can, timeout=WAIT)
        await _in_thread(_wait_css, browser, f'{room_css} .seat[data-seat="1"][data-occupant=""]')
        assert host.seats.value is not None and host.seats.value.seats[1].occupant is None
    finally:
        await control.aclose()
        await ann.dispose()
        await host.dispose()
        client.dispose()
