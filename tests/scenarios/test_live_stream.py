"""Live stream scenarios on the fakes: the host promotes, the stage publishes."""

from __future__ import annotations

import pytest

from stream_core import UTDStreamException
from tests.scenarios.helpers import TIMEOUT, sees_track


async def test_host_goes_live_and_promotes_a_raised_hand(make_client):
    host = await make_client().join_live_stream("host1", "show", as_host=True)
    viewer = await make_client().join_live_stream("v1", "show")
    try:
        await host.go_live()
        await sees_track(viewer, "host1", "camera")
        await sees_track(viewer, "host1", "microphone")
        with pytest.raises(UTDStreamException) as refused:
            await viewer.set_camera(True)
        assert refused.value.status_code == 403

        await viewer.request_stage()
        await host.hands.wait_for(lambda h: h == ("v1",), TIMEOUT)
        await host.invite_to_stage("v1")
        await viewer.on_stage.wait_for(bool, TIMEOUT)
        await sees_track(host, "v1", "camera")  # the viewer published by itself
        await sees_track(host, "v1", "microphone")
        assert [m.identity for m in host.stage.value] == ["host1", "v1"]
        assert host.hands.value == ()

        await host.remove_from_stage("v1")
        await sees_track(host, "v1", "camera", present=False)
        await viewer.on_stage.wait_for(lambda on: not on, TIMEOUT)
    finally:
        await host.dispose()
        await viewer.dispose()


async def test_co_publisher_steps_down_and_no_cap_on_stage(make_client):
    host = await make_client().join_live_stream("h", "big", as_host=True)
    viewers = [await make_client().join_live_stream(f"v{i}", "big") for i in range(12)]
    try:
        for v in viewers:
            await host.invite_to_stage(v.identity)
        assert len(host.stage.value) == 13
        for v in viewers:
            await v.on_stage.wait_for(bool, TIMEOUT)
        await sees_track(host, "v11", "camera")
        await viewers[3].leave_stage()
        await sees_track(host, "v3", "camera", present=False)
        assert "v3" not in [m.identity for m in host.stage.value]
    finally:
        await host.dispose()
        for v in viewers:
            await v.dispose()


async def test_stage_rules_are_enforced(make_client):
    host = await make_client().join_live_stream("h", "rules", as_host=True)
    v = await make_client().join_live_stream("v", "rules")
    try:
        before = host.stage.value
        with pytest.raises(UTDStreamException) as not_host:
            await v.invite_to_stage("v")
        assert not_host.value.status_code == 403
        with pytest.raises(UTDStreamException) as unknown:
            await host.invite_to_stage("nobody")
        assert unknown.value.status_code == 404
        with pytest.raises(UTDStreamException) as host_steps_down:
            await host.leave_stage()
        assert host_steps_down.value.status_code == 409
        with pytest.raises(UTDStreamException) as go_live:
            await v.go_live()  # the stage table: go_live is a row of the host state only
        assert go_live.value.status_code == 409
        with pytest.raises(UTDStreamException) as second_host:
            await make_client().join_live_stream("other", "rules", as_host=True)
        assert second_host.value.status_code == 403
        await host.refresh_stage()
        assert host.stage.value == before
    finally:
        await host.dispose()
        await v.dispose()
