"""``RestEngine``: the engine port over HTTP (``requests``), synchronous by design.

It builds no URL of its own: every request's method, path, query and body come from the
operation's row in :mod:`stream_core.operations`, the table the server routes from.

One pooled ``requests.Session`` per client; connect and read timeouts on every request;
token mints go to ``token_base_url``, everything else to ``base_url``. Retries are
urllib3's, bounded, with backoff: idempotent reads on read errors and 502/503/504, one
immediate reconnect when a connection is refused (then ``engine_unavailable``, at once),
and any request on 429 (the engine refused it, so nothing happened), honouring
``Retry-After`` up to a cap. Every answer is loaded with the same marshmallow schema the
engine dumped it with; every failure becomes ``UTDStreamException`` in :func:`_raise_for`
(connection errors included). Credentials travel in bodies and headers, never in URLs,
and are never logged.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
from marshmallow import Schema
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from stream_core import wire
from stream_core.errors import ErrorCode, UTDStreamException
from stream_core.operations import WAIT_INCOMING_CALL, Credentials, Operation
from stream_core.ports import EnginePort

__all__ = ["RestEngine"]

R = TypeVar("R")


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
        # one quick reconnect only: an engine that refuses twice is down, and callers are
        # told so at once (``engine_unavailable``, retryable) rather than after a backoff
        retry = _EngineRetry(total=retries, connect=min(retries, 1), read=retries,
                             status=retries,
                             backoff_factor=0.2, status_forcelist=(502, 503, 504),
                             allowed_methods=frozenset({"GET"}), raise_on_status=False,
                             respect_retry_after_header=True, retry_after_max=retry_after_max)
        self._http = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size,
                              pool_maxsize=pool_size)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        # The environment (proxies and NO_PROXY, a CA bundle, .netrc) is read once per engine
        # address, here, instead of by requests at every request: profiled, that reading was
        # a fifth of a token mint's time in this client. Set the environment before creating
        # the client.
        self._environment = {base: _environment(self._http, base)
                             for base in {self.base_url, self.token_base_url}}
        self._http.trust_env = False

    def __repr__(self) -> str:
        return f"<RestEngine app_id={self._app_id!r} base_url={self.base_url!r}>"

    def run(self, op: Operation[R], user_token: str | None, /, **args: Any) -> R:
        """Carry out ``op``: its URL, query and body come from the operation's row."""
        values = {k: v for k, v in args.items() if v is not None}
        path = op.url.format_map({p: _seg(str(values.pop(p))) for p in op.path_params})
        params = {n: f"{values.pop(n):g}" for n, _ in op.query if n in values}
        read_timeout = None
        if op is WAIT_INCOMING_CALL:  # the answer may take as long as the wait itself
            read_timeout = float(params.get("timeout", "30")) + self._timeouts[1]
        bearer, base = user_token, self.base_url
        if op.credentials is Credentials.APP:
            values.update(app_id=self._app_id, app_key=self._app_key)
            bearer, base = None, self.token_base_url
        body = None
        if op.request is not None:  # by wire name; enums by value (the schema loads them)
            body = {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}
        elif values:
            raise TypeError(f"{op.name} takes no {sorted(values)}")
        answer = self._request(op.http, path, wire.schema_of(op.response) if op.response else None,
                               bearer=bearer, json=body, params=params or None, base=base,
                               read_timeout=read_timeout)
        if op.envelope is not None and answer is not None:
            answer = answer[op.envelope]
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        self._http.close()

    # -- internals ------------------------------------------------------------------
    def _request(self, method: str, path: str, schema: Schema | None, *,
                 bearer: str | None = None, json: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None, base: str | None = None,
                 read_timeout: float | None = None) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
        url = f"{base or self.base_url}{path}"
        with _map_errors(url):
            response = self._http.request(
                method, url, json=json, params=params, headers=headers,
                timeout=(self._timeouts[0], read_timeout or self._timeouts[1]),
                **self._environment[base or self.base_url])
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


def _environment(session: requests.Session, base_url: str) -> dict[str, Any]:
    """What requests would take from the environment for ``base_url`` (``trust_env``)."""
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    found: dict[str, Any] = {"proxies": settings["proxies"], "verify": settings["verify"]}
    auth = requests.utils.get_netrc_auth(base_url)
    if auth is not None:
        found["auth"] = auth
    return found


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
                                 code=ErrorCode.ENGINE_UNAVAILABLE) from None


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
        error = wire.load(wire.schema_of(wire.ErrorSchema), response.json())["error"]
        code, message, field = error["code"], error["message"], error.get("field")
    except (ValueError, UTDStreamException):
        pass
    raise UTDStreamException(message, status_code=response.status_code, code=code,
                             retry_after=retry_after, field=field)


def _seg(value: str) -> str:
    return quote(value, safe="")


if TYPE_CHECKING:
    _: type[EnginePort] = RestEngine
