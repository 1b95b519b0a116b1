"""Where the examples connect: an engine's URL and an app's credentials."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Server"]


class Server(NamedTuple):
    app_id: str
    app_key: str
    base_url: str
