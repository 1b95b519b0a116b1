"""Engine bearers (``user_token``): signed, expiring, bound to one app and one identity.

Stateless HS256 JWTs signed with the engine's own secret (never LiveKit's), so any engine
instance can verify them and the acting identity always comes from here, never a body.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import jwt

from stream_core.errors import UTDStreamException

__all__ = ["issue_bearer", "verify_bearer", "identity_signature", "check_signature"]

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
    return str(claims["app"]), str(claims["sub"])


def identity_signature(server_secret: str, identity: str) -> str:
    """What an app's own backend sends to vouch for ``identity``: hex HMAC-SHA256."""
    return hmac.new(server_secret.encode(), identity.encode(), hashlib.sha256).hexdigest()


def check_signature(server_secret: str | None, identity: str, signature: str | None) -> None:
    """With a server secret configured, a mint needs the app backend's signature (403)."""
    if server_secret is None:
        return
    expected = identity_signature(server_secret, identity)
    if not signature or not hmac.compare_digest(expected, signature):
        raise UTDStreamException.forbidden("identity signature missing or wrong for this app")
