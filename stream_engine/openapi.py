"""The OpenAPI 3 document, generated from ``stream_core.operations`` and the wire schemas.

Each operation's ``operationId`` is its name: the same word as the session method, the
room method and the REST client's argument to ``run``.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from stream_core.operations import OPERATIONS, Credentials
from stream_core.wire import ErrorSchema

__all__ = ["build_openapi"]

_ERRORS = {"400": "Malformed body", "401": "Missing, invalid or expired credentials",
           "403": "Forbidden or banned", "404": "Unknown room, call or participant",
           "409": "Illegal transition or taken seat", "422": "Invalid field",
           "429": "Rate limited (see Retry-After)",
           "503": "The engine's database is unavailable (see Retry-After)"}


def build_openapi() -> dict[str, Any]:
    spec = APISpec(title="utd-stream engine", version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    error = {"description": "", "content": {"application/json": {"schema": "Error"}}}
    for operation in OPERATIONS:
        doc: dict[str, Any] = {"summary": operation.summary, "operationId": operation.name}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in operation.path_params]
        params += [{"name": n, "in": "query", "required": False, "description": d,
                    "schema": {"type": "number", "minimum": 0}} for n, d in operation.query]
        if params:
            doc["parameters"] = params
        if operation.request is not None:
            doc["requestBody"] = {"required": False, "content": {
                "application/json": {"schema": operation.request}}}
        ok: dict[str, Any] = {"description": "OK"}
        if operation.response is not None:
            ok["content"] = {"application/json": {"schema": operation.response}}
        doc["responses"] = {"200": ok, **{code: {**error, "description": text}
                                           for code, text in _ERRORS.items()}}
        if operation.empty is not None:
            doc["responses"][str(operation.empty)] = {"description": "Nothing arrived in time"}
        if operation.credentials is Credentials.BEARER:
            doc["security"] = [{"bearer": []}]
        spec.path(path=operation.url, operations={operation.http.lower(): doc})
    return spec.to_dict()
