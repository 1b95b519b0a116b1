"""Cross-origin access for web apps: the app key is publishable, so a page may call the
engine directly (``/token``, ``/auth``, room and call operations) from the origins the
operator allows.

Off by default (no origin allowed, no header sent). ``*`` allows any origin and is meant
for development only: the engine says so when it starts. Preflights are answered for every
route; ``Authorization`` and ``Content-Type`` may be sent; ``Retry-After`` is readable by
the page. Error answers carry the headers too (aiohttp-cors adds them as the response is
prepared, whichever handler or middleware made it). No credentials mode: bearers travel
in ``Authorization``, never in cookies.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp_cors
from aiohttp import web

__all__ = ["enable_cors", "ANY_ORIGIN"]

ANY_ORIGIN = "*"
_ALLOWED_HEADERS = ("Authorization", "Content-Type")
_EXPOSED_HEADERS = ("Retry-After",)


def enable_cors(app: web.Application, origins: Sequence[str]) -> None:
    """Answer preflights and add CORS headers on every route registered so far, for
    ``origins`` (exact ``scheme://host[:port]`` strings, or ``*``). No origins: nothing."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=False, expose_headers=_EXPOSED_HEADERS,
        allow_headers=_ALLOWED_HEADERS, allow_methods="*", max_age=600)
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        cors.add(route)
