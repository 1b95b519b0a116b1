"""A web app on another origin, in real headless Chromium: it calls the engine directly
(CORS: mint a token, take a seat) and joins with LiveKit's own JavaScript client
(``livekit-client``, served from this origin) to hear a Python SDK speaker (WebAudio)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from typing import Any

import pytest

from stream_core import UTDStreamClient
from stream_devstack.stack import LocalStack
from tests.browser.conftest import LIVEKIT_JS, PageServer, require

pytestmark = [pytest.mark.livekit, pytest.mark.engine, pytest.mark.browser]

#: Peak amplitude the page must measure: the SDK's default microphone is a 440 Hz tone at
#: 0.3 of full scale; silence (or no audio at all) stays near 0.
HEARD = 0.05

PAGE = """<!doctype html>
<meta charset="utf-8"><title>web app</title>
<script src="livekit-client.umd.js"></script>
<script>
const CONFIG = %(config)s;
window.result = {};
(async () => {
  const result = window.result;
  try {
    const minted = await fetch(CONFIG.engine + "/api/v1/token", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({app_id: CONFIG.app_id, app_key: CONFIG.app_key,
                            identity: "web", room_name: CONFIG.room,
                            stream_type: "audio_room"})});
    result.token_status = minted.status;
    const token = await minted.json();
    const taken = await fetch(CONFIG.engine + "/api/v1/rooms/" + CONFIG.room + "/seats/take", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token.user_token},
      body: JSON.stringify({seat_index: 2})});
    result.seat_status = taken.status;
    result.seat = await taken.json();
    const room = new LivekitClient.Room();
    room.on(LivekitClient.RoomEvent.TrackSubscribed, (track, publication, participant) => {
      if (track.kind !== "audio") return;
      result.subscribed = participant.identity;
      const stream = new MediaStream([track.mediaStreamTrack]);
      const element = new Audio();  // Chrome feeds remote WebRTC audio to WebAudio only
      element.srcObject = stream;   // when a media element plays it too
      element.muted = true;
      element.play().catch(() => {});
      const context = new AudioContext();
      context.resume();
      const analyser = context.createAnalyser();
      analyser.fftSize = 2048;
      context.createMediaStreamSource(stream).connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let peak = 0;
        for (const v of samples) peak = Math.max(peak, Math.abs(v));
        result.peak = Math.max(result.peak || 0, peak);
      }, 100);
    });
    await room.connect(token.url, token.token);
    result.connected = room.localParticipant.identity;
    result.can_publish = room.localParticipant.permissions.canPublish;
  } catch (error) {
    result.error = String(error);
  }
})();
</script>
"""


def _result(driver: Any) -> dict[str, Any]:
    found: dict[str, Any] = driver.execute_script("return window.result || {};")
    return found


async def test_a_page_on_another_origin_takes_a_seat_and_hears_an_sdk_speaker(
        browser: Any, browser_stack: LocalStack, page_server: PageServer) -> None:
    require(LIVEKIT_JS.exists(), f"livekit-client ({LIVEKIT_JS.relative_to(LIVEKIT_JS.parents[4])})")
    stack = browser_stack
    room_name = f"web-{uuid.uuid4().hex[:8]}"
    shutil.copy(LIVEKIT_JS, page_server.root / "livekit-client.umd.js")
    config = {"engine": stack.base_url, "app_id": "web-app", "app_key": "web-key",
              "room": room_name}
    (page_server.root / f"{room_name}.html").write_text(PAGE % {"config": json.dumps(config)})
    assert page_server.origin != stack.base_url  # another port: another origin

    client = UTDStreamClient(app_id="web-app", app_key="web-key", base_url=stack.base_url)
    speaker = await client.join_audio_room("speaker", room_name, as_host=True, seat_count=4)
    try:
        await speaker.take_seat(0)  # publishes the SDK's default microphone: a tone
        await speaker.can_publish.wait_for(bool, timeout=20)
        await asyncio.to_thread(browser.get, f"{page_server.origin}/{room_name}.html")

        deadline = time.monotonic() + 30
        result: dict[str, Any] = {}
        while time.monotonic() < deadline:
            result = await asyncio.to_thread(_result, browser)
            if result.get("error") or (result.get("peak") or 0) > HEARD:
                break
            await asyncio.sleep(0.2)
        assert "error" not in result, result
        assert result["token_status"] == 200 and result["seat_status"] == 200, result
        assert result["seat"]["seats"][2]["occupant"] == "web"
        assert result["connected"] == "web" and result["subscribed"] == "speaker", result
        assert result["peak"] > HEARD, result
        grid = await speaker.seats.wait_for(
            lambda g: g is not None and g.seats[2].occupant == "web", timeout=10)
        assert grid is not None
    finally:
        await speaker.dispose()
        client.dispose()
