"""Engine configuration: embedded defaults, then environment, then command-line flags.

With nothing configured the engine runs on loopback against a local LiveKit dev server, with
a SQLite file and a dev app whose credentials (and the engine's signing secret) are
generated once and kept in the state directory, so restarts keep the same app key.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from stream_core.engine.settings import AppConfig, RateLimit, ServiceSettings

__all__ = ["AppConfig", "EngineConfig", "OperatorConfig", "RateLimit", "add_arguments",
           "from_args"]


@dataclass(frozen=True)
class OperatorConfig:
    """An operator of the console: ``name`` (for the log) and the bearer ``token`` it signs
    in with. Configured like apps: ``--operator NAME:TOKEN`` / ``UTD_ENGINE_OPERATORS``."""

    name: str
    token: str = field(repr=False)


@dataclass
class EngineConfig:
    host: str = "127.0.0.1"
    port: int = 7800
    state_dir: Path = Path(".utd-stream")
    database_url: str | None = None  # default: sqlite file in state_dir
    livekit_url: str = "ws://127.0.0.1:7880"
    livekit_public_url: str | None = None  # what clients are told; default livekit_url
    livekit_api_key: str = "devkey"
    livekit_api_secret: str = field(default="secret", repr=False)
    apps: list[AppConfig] = field(default_factory=list)
    signing_secret: str = field(default="", repr=False)
    ring_timeout: float = 30.0
    token_ttl: float = 6 * 3600.0
    bearer_ttl: float = 24 * 3600.0
    long_poll_max: float = 60.0
    token_limit: RateLimit = field(default_factory=lambda: RateLimit(5.0, 20))
    mutate_limit: RateLimit = field(default_factory=lambda: RateLimit(20.0, 60))
    cors_origins: tuple[str, ...] = ()  # web pages allowed to call the engine; "*" = any (dev)
    operators: list[OperatorConfig] = field(default_factory=list)  # none: no console

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'engine.db'}"

    @property
    def public_livekit_url(self) -> str:
        return self.livekit_public_url or self.livekit_url

    def app(self, app_id: str) -> AppConfig | None:
        return next((a for a in self.apps if a.app_id == app_id), None)

    def service_settings(self) -> ServiceSettings:
        """What the engine service itself needs of this configuration (no secrets)."""
        return ServiceSettings(apps=tuple(self.apps), ring_timeout=self.ring_timeout, token_ttl=self.token_ttl,
                               bearer_ttl=self.bearer_ttl, long_poll_max=self.long_poll_max,
                               token_limit=self.token_limit, mutate_limit=self.mutate_limit)

    def ensure_defaults(self) -> list[str]:
        """Fill the dev app and signing secret from (or into) the state dir; say what happened."""
        notes: list[str] = []
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "dev-credentials.json"
        stored: dict[str, str] = {}
        if path.exists():
            stored = json.loads(path.read_text())
        if not stored and self.apps and self.signing_secret:
            return notes  # fully configured: nothing to generate
        if not stored:
            stored = {"app_id": "dev-" + secrets.token_hex(4),
                      "app_key": secrets.token_hex(16),
                      "signing_secret": secrets.token_urlsafe(32)}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(stored, fh)
            notes.append(f"generated dev credentials in {path}")
        if not self.signing_secret:
            self.signing_secret = stored["signing_secret"]
        if not self.apps:
            self.apps = [AppConfig(stored["app_id"], stored["app_key"])]
            notes.append(f"dev app: app_id={stored['app_id']} app_key={stored['app_key']}")
        return notes


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"UTD_ENGINE_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for ``utd-stream engine``; each defaults to its ``UTD_ENGINE_*`` variable."""
    d = EngineConfig()
    parser.add_argument("--host", default=_env("HOST", d.host))
    parser.add_argument("--port", type=int, default=int(_env("PORT", str(d.port)) or d.port))
    parser.add_argument("--state-dir", default=_env("STATE_DIR", str(d.state_dir)))
    parser.add_argument("--database-url", default=_env("DATABASE_URL"),
                        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db")
    parser.add_argument("--livekit-url", default=_env("LIVEKIT_URL", d.livekit_url))
    parser.add_argument("--livekit-public-url", default=_env("LIVEKIT_PUBLIC_URL"))
    parser.add_argument("--livekit-api-key", default=_env("LIVEKIT_API_KEY", d.livekit_api_key))
    parser.add_argument("--livekit-api-secret",
                        default=_env("LIVEKIT_API_SECRET", d.livekit_api_secret))
    parser.add_argument("--app", action="append", default=[], metavar="ID:KEY[:SERVER_SECRET]",
                        help="an app's credentials (repeatable); env UTD_ENGINE_APPS, comma-separated")
    parser.add_argument("--ring-timeout", type=float,
                        default=float(_env("RING_TIMEOUT", str(d.ring_timeout)) or 30))
    parser.add_argument("--token-ttl", type=float,
                        default=float(_env("TOKEN_TTL", str(d.token_ttl)) or d.token_ttl))
    parser.add_argument("--token-rate", default=_env("TOKEN_RATE", "5/20"), metavar="RATE/BURST")
    parser.add_argument("--mutate-rate", default=_env("MUTATE_RATE", "20/60"),
                        metavar="RATE/BURST")
    parser.add_argument("--operator", action="append", default=[], metavar="NAME:TOKEN",
                        help="an operator of the console at /console (repeatable; the token "
                             "is at least 16 characters); env UTD_ENGINE_OPERATORS, "
                             "comma-separated")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="a web origin allowed to call the engine, e.g. "
                             "https://app.example.com (repeatable; '*' = any, development "
                             "only); env UTD_ENGINE_CORS_ORIGINS, comma-separated")


def _operator(text: str) -> OperatorConfig:
    name, _, token = text.partition(":")
    if not name or len(token) < 16:
        raise SystemExit("--operator wants NAME:TOKEN with a token of at least 16 characters")
    return OperatorConfig(name, token)


def _origin(text: str) -> str:
    origin = text.strip().rstrip("/")
    if origin != "*" and (not origin.startswith(("http://", "https://"))
                          or "/" in origin.split("://", 1)[1]):
        raise SystemExit(f"--cors-origin wants scheme://host[:port] or '*', got {text!r}")
    return origin


def _limit(text: str) -> RateLimit:
    rate, _, burst = text.partition("/")
    return RateLimit(float(rate), int(burst or max(1, int(float(rate)))))


def _app(text: str) -> AppConfig:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise SystemExit(f"--app wants ID:KEY[:SERVER_SECRET], got {text!r}")
    return AppConfig(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def from_args(args: argparse.Namespace) -> EngineConfig:
    apps_text = list(args.app) + [a for a in (_env("APPS") or "").split(",") if a]
    origins = list(args.cors_origin) + [o for o in (_env("CORS_ORIGINS") or "").split(",")
                                        if o.strip()]
    return EngineConfig(
        host=args.host, port=args.port, state_dir=Path(args.state_dir),
        database_url=args.database_url, livekit_url=args.livekit_url,
        livekit_public_url=args.livekit_public_url, livekit_api_key=args.livekit_api_key,
        livekit_api_secret=args.livekit_api_secret, apps=[_app(a) for a in apps_text],
        signing_secret=_env("SIGNING_SECRET") or "", ring_timeout=args.ring_timeout,
        token_ttl=args.token_ttl, token_limit=_limit(args.token_rate),
        mutate_limit=_limit(args.mutate_rate),
        cors_origins=tuple(dict.fromkeys(_origin(o) for o in origins)),
        operators=[_operator(o) for o in list(args.operator) +
                   [o for o in (_env("OPERATORS") or "").split(",") if o.strip()]])
