"""The pytest plugin, as an app's suite meets it: installed, nothing to configure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_example() -> str:
    """The plugin example of the README, verbatim: what an app developer copies."""
    text = README.read_text()
    found = re.search(r"```python\n(# test_my_bot\.py.*?)```", text, re.S)
    assert found, "the README shows the pytest plugin's example"
    return found.group(1)


def test_the_readme_example_passes_on_the_fakes(pytester: pytest.Pytester) -> None:
    example = _readme_example()
    assert len(example.strip().splitlines()) <= 12
    pytester.makepyfile(test_my_bot=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_fixtures_are_offered_and_fakes_are_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app="""
        import pytest
        from stream_core import UTDStreamClient

        @pytest.mark.asyncio
        async def test_one(utd_client, utd_fakes):
            assert isinstance(utd_client, UTDStreamClient)
            room = await utd_client.join_audio_room("host", "r", as_host=True, seat_count=2)
            await room.take_seat(1)
            assert utd_fakes.sfu.participants(utd_fakes.engine.media_room("r")) == ["host"]
            await room.dispose()

        @pytest.mark.asyncio
        async def test_two_starts_clean(utd_fakes):
            other = utd_fakes.client()
            room = await other.join_audio_room("host", "r", as_host=True, seat_count=2)
            assert room.seats.value.seats[1].occupant is None
            await room.dispose()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
    helped = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures", "-q")
    helped.stdout.fnmatch_lines(["*utd_client*", "*utd_live_client*"])


def test_without_livekit_server_the_live_client_skips_with_a_reason_or_fails_on_demand(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_SERVER_BIN", str(pytester.path / "no-such-binary"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(pytester.path)  # no .tools/bin here
    pytester.makepyfile(test_live="""
        def test_live(utd_live_client):
            pass
    """)
    skipped = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*no livekit-server for utd_live_client*"])
    monkeypatch.setenv("UTD_REQUIRE_LIVEKIT", "1")
    failed = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    failed.assert_outcomes(errors=1)


@pytest.mark.livekit
@pytest.mark.engine
def test_utd_backend_live_runs_the_same_test_on_a_real_stack(
        pytester: pytest.Pytester) -> None:
    from tests.support import require_livekit_binary

    require_livekit_binary()
    pytester.makepyfile(test_my_bot=_readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q",
                                           "--utd-backend=live")
    result.assert_outcomes(passed=1)
