"""Identity signatures: how an app's own backend vouches for the identities it mints for.

An app configured with a server secret only gets tokens for identities its backend signed:
``signature = hex(HMAC-SHA256(server_secret, identity))``. Standard library only, so the
engine service (in any runtime) and an app backend compute the same thing.
"""

from __future__ import annotations

import hashlib
import hmac

from stream_core.errors import UTDStreamException

__all__ = ["identity_signature", "check_signature"]


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
