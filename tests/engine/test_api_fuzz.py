"""Schemathesis fuzzes the engine through its served OpenAPI document: never a 5xx.

Every operation of ``/api/v1/openapi.json`` gets generated requests, valid (positive) and
invalid (negative), sent with a valid bearer of a host who owns real rooms and a real call,
so generated cases reach the rules and not only the 404 of an unknown room. Answers must
not be 5xx, must use documented statuses and content types, must match the documented
schemas, must reject invalid input with 4xx, and must never contain a secret.

Bounded: ``MAX_EXAMPLES`` per operation and mode, the long-poll's ``timeout`` clamped so no
case waits. Hypothesis is derandomized (a fixed seed, no example database); schemathesis may
still vary some generated strings between processes (hash randomization), so the properties
above must hold for any case, which is the point.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis  # a dev dependency: a missing fuzzer must fail, not skip
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks

from stream_engine.openapi import build_openapi
from stream_devstack.stack import LocalStack
from tests.engine.stack_fixtures import API, StackApi, find_secrets, unique

pytestmark = [pytest.mark.engine, pytest.mark.livekit]

MAX_EXAMPLES = 12
#: The whole module must stay well inside this (seconds).
BUDGET = 60.0
_DOCUMENT = build_openapi()["paths"]
#: (operation, mode): invalid requests only where there is something to make invalid (a
#: body or a query parameter; a string path parameter has no invalid value).
CASES = [(f"{method.upper()} {path}", mode)
         for path, ops in _DOCUMENT.items() for method, op in ops.items()
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or "requestBody" in op
         or any(p["in"] == "query" for p in op.get("parameters", []))]


@dataclass
class Target:
    schema: Any
    bearer: str
    audio: str
    live: str
    call_id: str
    api: StackApi
    stack: LocalStack
    started: float


@pytest.fixture(scope="module")
def target(api: StackApi, stack: LocalStack) -> Iterator[Target]:
    host = unique("fuzzhost")
    audio, _ = api.audio_room(host, seats=4)
    live, member = api.live_stream(host)
    call = api.create_call(member.bearer, unique("fuzzcallee"))
    schema = schemathesis.openapi.from_url(f"{stack.base_url}{API}/openapi.json")
    # every case carries the bearer (we send it), and unknown query parameters / body fields
    # are ignored by design (old clients, newer engines), so neither counts as "invalid"
    schema.config.generation.update(with_security_parameters=False,
                                    allow_extra_parameters=False)
    yield Target(schema, member.bearer, audio, live, call["call_id"], api, stack,
                 time.monotonic())


def _checks() -> list[Any]:
    load_all_checks()
    from schemathesis.checks import CHECKS

    wanted = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
              "response_schema_conformance", "negative_data_rejection"}
    return [c for c in CHECKS.get_all() if getattr(c, "__name__", "") in wanted]


def _real_paths(target: Target, path: str) -> dict[str, Any] | None:
    """Path parameters naming the host's own room / call, or None when there are none."""
    if "{room_name}" in path:
        return {"room_name": target.live if "/stage" in path else target.audio}
    if "{call_id}" in path:
        return {"call_id": target.call_id}
    return None


def _clamp_wait(case: Any) -> Any:
    """Keep the long-poll short: no ``timeout`` (default 30 s) or a numeric one above
    0.05 s becomes 0.05 s; anything else is left for the engine to reject."""
    if not case.path.endswith("/incoming/next"):
        return case
    if not isinstance(case.query, dict):
        case.query = {}
    if isinstance(case.query.get("timeout"), list):  # repeated: the engine reads the first
        case.query["timeout"] = (case.query["timeout"] or ["inf"])[0]
    try:
        too_long = float(case.query.get("timeout", "inf")) > 0.05
    except (TypeError, ValueError):
        too_long = False
    if too_long:
        case.query["timeout"] = 0.05
    return case


def _with_credentials(target: Target) -> Any:
    """For /token and /auth: sometimes the app's real id and key, so mints really happen.
    (Valid cases only: patching an invalid case could make it valid.)"""
    app = target.stack.apps[0]

    def inject(pair: tuple[Any, bool]) -> Any:
        case, real = pair
        if real and isinstance(case.body, dict):
            case.body["app_id"], case.body["app_key"] = app.app_id, app.app_key
        return case
    return inject


@pytest.mark.parametrize("label, mode", CASES, ids=[f"{l}-{m.value}" for l, m in CASES])
def test_fuzz_operation(target: Target, label: str, mode: GenerationMode) -> None:
    assert time.monotonic() - target.started < BUDGET, "fuzzing is over its time budget"
    operation = target.schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is in stream_core.operations but not in the served document"
    path = label.split(" ", 1)[1]
    strategies = [operation.as_strategy(mode)]
    real = _real_paths(target, path)
    if real is not None:
        strategies.append(operation.as_strategy(mode, path_parameters=real))
    strategy = st.one_of(strategies).map(_clamp_wait)
    if path in (f"{API}/token", f"{API}/auth") and mode is GenerationMode.POSITIVE:
        strategy = st.tuples(strategy, st.booleans()).map(_with_credentials(target))
    checks = _checks()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {target.bearer}"}

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        response = case.call(session=session, headers=headers, timeout=10)
        target.api.bodies.append(response.text)
        assert response.status_code < 500, (
            f"{response.status_code}: {response.text}\n{case.as_curl_command(headers=headers)}"
            f"\n--- engine log ---\n{target.stack.log_tail(30)}")
        assert find_secrets(target.stack, response.text) == []
        case.validate_response(response, checks=checks, headers=headers)

    try:
        fuzz()
    finally:
        session.close()
