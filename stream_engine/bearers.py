"""Engine bearers (``user_token``): signed, expiring, bound to one app and one identity.

Stateless HS256 JWTs signed with the engine's own secret (never LiveKit's), so any engine
instance can verify them and the acting identity always comes from here, never a body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import jwt

from stream_core.engine.identity import check_signature, identity_signature
from stream_core.errors import UTDStreamException
from stream_core.names import check_app_id, check_identity
from stream_core.ports import BearerPort

__all__ = ["JwtBearers", "issue_bearer", "verify_bearer", "identity_signature",
           "check_signature"]

_AUDIENCE = "utd-stream-engine"


def issue_bearer(secret: str, *, app_id: str, identity: str, ttl: float,
                 now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {"sub": identity, "app": app_id, "aud": _AUDIENCE, "iat": issued,
              "exp": issued + int(ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_bearer(secret: str, token: str | None) -> tuple[str, str]:
    """Return ``(app_id, identity)``; 401 for a missing, forged or expired bearer."""
    if not token:
        raise UTDStreamException.unauthenticated("missing bearer token (Authorization: Bearer ...)")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=_AUDIENCE,
                            options={"require": ["exp", "sub", "app"]})
    except jwt.ExpiredSignatureError:
        raise UTDStreamException.unauthenticated("bearer token expired") from None
    except jwt.PyJWTError:
        raise UTDStreamException.unauthenticated("invalid bearer token") from None
    app_id, identity = str(claims["app"]), str(claims["sub"])
    try:  # issued only for valid names; a bearer naming anything else proves nothing
        check_app_id(app_id)
        check_identity(identity)
    except UTDStreamException:
        raise UTDStreamException.unauthenticated("invalid bearer token") from None
    return app_id, identity


class JwtBearers:
    """The :class:`~stream_core.ports.BearerPort` of the reference server."""

    def __init__(self, secret: str, *, ttl: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret, self._ttl, self._clock = secret, ttl, clock

    def issue(self, app_id: str, identity: str) -> str:
        return issue_bearer(self._secret, app_id=app_id, identity=identity, ttl=self._ttl,
                            now=self._clock())

    def verify(self, token: str | None) -> tuple[str, str]:
        return verify_bearer(self._secret, token)

    def __repr__(self) -> str:
        return f"<JwtBearers ttl={self._ttl:g}s>"


if TYPE_CHECKING:
    _: type[BearerPort] = JwtBearers
