"""``RestEngine``: the engine port over HTTP (``requests``), synchronous by design.

One pooled ``requests.Session`` per client; connect and read timeouts on every request;
token mints go to ``token_base_url``, everything else to ``base_url``. Retries are
urllib3's, bounded, with backoff: idempotent reads on connection errors and 502/503/504,
and any request on 429 (the engine refused it, so nothing happened), honouring
``Retry-After`` up to a cap. Every answer is loaded with the same marshmallow schema the
engine dumped it with; every failure becomes ``UTDStreamException`` in :func:`_raise_for`
(connection errors included). Credentials travel in bodies and headers, never in URLs,
and are never logged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from marshmallow import Schema
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from stream_core import wire
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.models import (
    UTDCall, UTDSeatGrid, UTDSeatMode, UTDSpeakRequest, UTDStage, UTDStreamType,
    UTDTokenResponse,
)
from stream_core.ports import EnginePort

__all__ = ["RestEngine"]


class _EngineRetry(Retry):
    """Reads retry on 502/503/504; every method retries on 429 (a refusal changes nothing)."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return bool(self.total)
        return super().is_retry(method, status_code, has_retry_after)


class RestEngine:
    """The engine port, spoken over the engine's REST API."""

    def __init__(self, *, app_id: str, app_key: str, base_url: str,
                 token_base_url: str | None = None, connect_timeout: float = 5.0,
                 read_timeout: float = 15.0, retries: int = 3, retry_after_max: int = 5,
                 pool_size: int = 16) -> None:
        self._app_id = app_id
        self._app_key = app_key
        self.base_url = base_url.rstrip("/")
        self.token_base_url = (token_base_url or base_url).rstrip("/")
        self._timeouts = (connect_timeout, read_timeout)
        retry = _EngineRetry(total=retries, connect=retries, read=retries, status=retries,
                             backoff_factor=0.2, status_forcelist=(502, 503, 504),
                             allowed_methods=frozenset({"GET"}), raise_on_status=False,
                             respect_retry_after_header=True, retry_after_max=retry_after_max)
        self._http = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size,
                              pool_maxsize=pool_size)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"<RestEngine app_id={self._app_id!r} base_url={self.base_url!r}>"

    # -- identity and tokens --------------------------------------------------------
    def mint_token(self, *, identity: str, room_name: str, stream_type: UTDStreamType,
                   as_host: bool = False, name: str | None = None,
                   device_id: str | None = None, seat_count: int | None = None,
                   seat_mode: UTDSeatMode | None = None,
                   signature: str | None = None) -> UTDTokenResponse:
        body = _compact({"app_id": self._app_id, "app_key": self._app_key, "identity": identity,
                         "room_name": room_name, "stream_type": stream_type.value,
                         "role": "host" if as_host else "audience", "name": name,
                         "device_id": device_id, "seat_count": seat_count,
                         "seat_mode": seat_mode.value if seat_mode else None,
                         "signature": signature})
        token: UTDTokenResponse = self._request("POST", "/api/v1/token", wire.TokenResponseSchema(),
                                                json=body, base=self.token_base_url)
        return token

    def authenticate(self, *, identity: str, name: str | None = None,
                     device_id: str | None = None, signature: str | None = None) -> str:
        body = _compact({"app_id": self._app_id, "app_key": self._app_key, "identity": identity,
                         "name": name, "device_id": device_id, "signature": signature})
        answer = self._request("POST", "/api/v1/auth", wire.AuthResponseSchema(), json=body,
                               base=self.token_base_url)
        return str(answer["user_token"])

    # -- calls ----------------------------------------------------------------------
    def create_call(self, user_token: str, *, callee_identity: str, type: UTDStreamType,
                    callee_name: str | None = None,
                    metadata: dict[str, Any] | None = None) -> UTDCall:
        body = _compact({"callee_identity": callee_identity, "type": type.value,
                         "callee_name": callee_name, "metadata": metadata})
        return self._call("POST", "/api/v1/calls", user_token, json=body)

    def call_ringing(self, user_token: str, call_id: str) -> UTDCall:
        return self._call("POST", f"/api/v1/calls/{_seg(call_id)}/ringing", user_token)

    def accept_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call("POST", f"/api/v1/calls/{_seg(call_id)}/accept", user_token)

    def reject_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call("POST", f"/api/v1/calls/{_seg(call_id)}/reject", user_token)

    def busy_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call("POST", f"/api/v1/calls/{_seg(call_id)}/busy", user_token)

    def end_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call("POST", f"/api/v1/calls/{_seg(call_id)}/end", user_token)

    def get_call(self, user_token: str, call_id: str) -> UTDCall:
        return self._call("GET", f"/api/v1/calls/{_seg(call_id)}", user_token)

    def incoming_calls(self, user_token: str) -> list[UTDCall]:
        answer = self._request("GET", "/api/v1/calls/incoming", wire.CallListSchema(),
                               bearer=user_token)
        return list(answer["calls"])

    def wait_incoming_call(self, user_token: str, timeout: float) -> UTDCall | None:
        call: UTDCall | None = self._request(
            "GET", "/api/v1/calls/incoming/next", wire.CallSchema(), bearer=user_token,
            params={"timeout": f"{timeout:g}"}, read_timeout=timeout + self._timeouts[1])
        return call

    # -- stage ----------------------------------------------------------------------
    def get_stage(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage("GET", room_name, "stage", user_token)

    def invite_to_stage(self, user_token: str, room_name: str, identity: str) -> UTDStage:
        return self._stage("POST", room_name, "stage/invite", user_token, identity=identity)

    def remove_from_stage(self, user_token: str, room_name: str, identity: str) -> UTDStage:
        return self._stage("POST", room_name, "stage/remove", user_token, identity=identity)

    def request_stage(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage("POST", room_name, "stage/request", user_token)

    def lower_hand(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage("POST", room_name, "stage/lower", user_token)

    def leave_stage(self, user_token: str, room_name: str) -> UTDStage:
        return self._stage("POST", room_name, "stage/leave", user_token)

    # -- seats ----------------------------------------------------------------------
    def setup_seats(self, user_token: str, room_name: str, *, seat_count: int | None = None,
                    seat_mode: UTDSeatMode | None = None,
                    mode_id: str | None = None) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/setup", user_token, seat_count=seat_count,
                           seat_mode=seat_mode.value if seat_mode else None, mode_id=mode_id)

    def get_seats(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats("GET", room_name, "seats", user_token)

    def take_seat(self, user_token: str, room_name: str,
                  seat_index: int | None = None) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/take", user_token, seat_index=seat_index)

    def leave_seat(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/leave", user_token)

    def request_to_speak(self, user_token: str, room_name: str,
                         seat_index: int | None = None) -> UTDSpeakRequest:
        request: UTDSpeakRequest = self._request(
            "POST", _room(room_name, "seats/request"), wire.SpeakRequestSchema(),
            bearer=user_token, json=_compact({"seat_index": seat_index}))
        return request

    def cancel_speak_request(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/cancel", user_token)

    def approve_speaker(self, user_token: str, room_name: str, request_id: int) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/approve", user_token, request_id=request_id)

    def deny_speaker(self, user_token: str, room_name: str, request_id: int) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/deny", user_token, request_id=request_id)

    def invite_to_speak(self, user_token: str, room_name: str, identity: str,
                        seat_index: int | None = None) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/invite", user_token, identity=identity,
                           seat_index=seat_index)

    def decline_invite(self, user_token: str, room_name: str) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/decline", user_token)

    def kick_from_seat(self, user_token: str, room_name: str, identity: str) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/kick", user_token, identity=identity)

    def lock_seat(self, user_token: str, room_name: str, seat_index: int,
                  locked: bool = True) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/lock", user_token, seat_index=seat_index,
                           locked=locked)

    def mute_seat(self, user_token: str, room_name: str, seat_index: int,
                  muted: bool = True) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/mute", user_token, seat_index=seat_index,
                           muted=muted)

    def move_seat(self, user_token: str, room_name: str, seat_index: int,
                  identity: str | None = None) -> UTDSeatGrid:
        return self._seats("POST", room_name, "seats/move", user_token, seat_index=seat_index,
                           identity=identity)

    def ban(self, user_token: str, room_name: str, identity: str) -> None:
        self._request("POST", _room(room_name, "ban"), None, bearer=user_token,
                      json={"identity": identity})

    def close(self) -> None:
        self._http.close()

    # -- internals ------------------------------------------------------------------
    def _call(self, method: str, path: str, bearer: str, *,
              json: dict[str, Any] | None = None) -> UTDCall:
        call: UTDCall = self._request(method, path, wire.CallSchema(), bearer=bearer, json=json)
        return call

    def _stage(self, method: str, room_name: str, tail: str, bearer: str,
               **body: Any) -> UTDStage:
        stage: UTDStage = self._request(method, _room(room_name, tail), wire.StageSchema(),
                                        bearer=bearer, json=_compact(body) if method == "POST" else None)
        return stage

    def _seats(self, method: str, room_name: str, tail: str, bearer: str,
               **body: Any) -> UTDSeatGrid:
        grid: UTDSeatGrid = self._request(method, _room(room_name, tail), wire.SeatGridSchema(),
                                          bearer=bearer,
                                          json=_compact(body) if method == "POST" else None)
        return grid

    def _request(self, method: str, path: str, schema: Schema | None, *,
                 bearer: str | None = None, json: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None, base: str | None = None,
                 read_timeout: float | None = None) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
        url = f"{base or self.base_url}{path}"
        with _map_errors(url):
            response = self._http.request(
                method, url, json=json, params=params, headers=headers,
                timeout=(self._timeouts[0], read_timeout or self._timeouts[1]))
        if response.status_code >= 400:
            _raise_for(response)
        if response.status_code == 204 or schema is None:
            return None
        try:
            payload = response.json()
        except ValueError:
            raise UTDStreamException("the engine answered with something that is not JSON",
                                     status_code=502, code="bad_response") from None
        try:
            return wire.load(schema, payload)
        except UTDStreamException as exc:
            raise UTDStreamException(f"the engine's answer is malformed: {exc.message}",
                                     status_code=502, code="bad_response",
                                     field=exc.field) from None


@contextmanager
def _map_errors(url: str) -> Iterator[None]:
    """Transport failures become ``UTDStreamException`` (the URL holds no secret)."""
    try:
        yield
    except requests.Timeout as exc:
        raise UTDStreamException(f"the engine at {url} timed out ({type(exc).__name__})",
                                 code=ErrorCode.TIMEOUT) from None
    except requests.RequestException as exc:
        raise UTDStreamException(f"the engine at {url} is unreachable ({type(exc).__name__})",
                                 code=ErrorCode.UNAVAILABLE) from None


def _raise_for(response: requests.Response) -> None:
    """The one place an engine error answer becomes ``UTDStreamException``."""
    retry_after = None
    header = response.headers.get("Retry-After")
    if header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
        if retry_after is not None and not math.isfinite(retry_after):
            retry_after = None
    code, message, field = "http_error", response.reason or "error", None
    try:
        error = wire.load(wire.ErrorSchema(), response.json())["error"]
        code, message, field = error["code"], error["message"], error.get("field")
    except (ValueError, UTDStreamException):
        pass
    raise UTDStreamException(message, status_code=response.status_code, code=code,
                             retry_after=retry_after, field=field)


def _room(room_name: str, tail: str) -> str:
    return f"/api/v1/rooms/{_seg(room_name)}/{tail}"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


if TYPE_CHECKING:
    _: type[EnginePort] = RestEngine
