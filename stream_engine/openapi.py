"""The OpenAPI 3 document, generated from ``stream_engine.routes`` and the shared wire schemas."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from stream_core.wire import ErrorSchema

from stream_engine.routes import ROUTES

__all__ = ["build_openapi"]

_ERRORS = {"400": "Malformed body", "401": "Missing, invalid or expired credentials",
           "403": "Forbidden or banned", "404": "Unknown room, call or participant",
           "409": "Illegal transition or taken seat", "422": "Invalid field",
           "429": "Rate limited (see Retry-After)"}


def build_openapi() -> dict[str, Any]:
    spec = APISpec(title="utd-stream engine", version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=ErrorSchema)
    error = {"description": "", "content": {"application/json": {"schema": "Error"}}}
    for route in ROUTES:
        op: dict[str, Any] = {"summary": route.summary,
                              "operationId": _operation_id(route.method, route.path)}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{(\w+)}", route.path)]
        params += [{"name": n, "in": "query", "required": False, "description": d,
                    "schema": {"type": "number", "minimum": 0}} for n, d in route.query.items()]
        if params:
            op["parameters"] = params
        if route.request is not None:
            op["requestBody"] = {"required": False, "content": {
                "application/json": {"schema": route.request}}}
        ok: dict[str, Any] = {"description": "OK"}
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": route.response}}
        op["responses"] = {"200": ok, **{code: {**error, "description": text}
                                          for code, text in _ERRORS.items()}}
        if route.query:
            op["responses"]["204"] = {"description": "Nothing arrived in time"}
        if route.auth:
            op["security"] = [{"bearer": []}]
        spec.path(path=route.path, operations={route.method.lower(): op})
    return spec.to_dict()


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[/{}]+", path.removeprefix("/api/v1")) if w]
    return "_".join([method.lower(), *words])
