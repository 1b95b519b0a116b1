"""What the engine service needs to know: its apps, its timeouts and its limits.

Plain values, no I/O: the reference server builds them from flags and environment
(``stream_engine.config``), the fake engine from its constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream_core.names import check_app_id

__all__ = ["AppConfig", "RateLimit", "ServiceSettings"]


@dataclass(frozen=True)
class AppConfig:
    """An app: publishable id + key; ``server_secret`` turns on identity verification."""

    app_id: str
    app_key: str = field(repr=False)
    server_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_app_id(self.app_id)  # an app id must fit the media server's namespace


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate`` requests per second, bursts up to ``burst`` (rate 0: off)."""

    rate: float
    burst: int


@dataclass(frozen=True)
class ServiceSettings:
    """The engine service's knobs (where clients connect is the control port's to say)."""

    apps: tuple[AppConfig, ...]
    ring_timeout: float = 30.0
    token_ttl: float = 600.0  # LiveKit refreshes a connected participant's token itself
    bearer_ttl: float = 24 * 3600.0
    long_poll_max: float = 60.0
    token_limit: RateLimit = RateLimit(5.0, 20)
    mutate_limit: RateLimit = RateLimit(20.0, 60)
    read_limit: RateLimit = RateLimit(50.0, 100)

    def app(self, app_id: str) -> AppConfig | None:
        return next((a for a in self.apps if a.app_id == app_id), None)
