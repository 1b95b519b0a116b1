"""The one exception type every utd-stream error surfaces as.

Apps catch a single type and branch on ``status_code`` / ``code``: the engine's HTTP status
and error code travel unchanged from the server (or from the core, which raises the very
same codes when it validates locally), so a fake engine and the real one fail alike.
"""

from __future__ import annotations

__all__ = ["UTDStreamException", "ErrorCode"]


class ErrorCode:
    """Stable machine-readable error codes shared by the core, the engine and the client."""

    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    BANNED = "banned"
    NOT_FOUND = "not_found"
    ILLEGAL_TRANSITION = "illegal_transition"
    CONFLICT = "conflict"
    SEAT_TAKEN = "seat_taken"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    PUBLISH_DENIED = "publish_denied"
    NOT_CONNECTED = "not_connected"
    ROOM_FULL = "room_full"
    LIMIT_REACHED = "limit_reached"
    INTERNAL = "internal"


class UTDStreamException(Exception):
    """An SDK error: engine HTTP ``status_code`` + ``code`` + human ``message``.

    ``status_code`` is ``None`` only for failures that never reached an engine (e.g. the
    media connection). ``retry_after`` (seconds) is set when the engine sent ``Retry-After``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after
        self.field = field

    @property
    def is_banned(self) -> bool:
        """True when the engine refused because this identity is banned (HTTP 403)."""
        return self.status_code == 403 and self.code == ErrorCode.BANNED

    @property
    def is_rate_limited(self) -> bool:
        """True when the engine throttled the request (HTTP 429); see ``retry_after``."""
        return self.status_code == 429

    @property
    def is_engine_unavailable(self) -> bool:
        """True when the engine could not be reached at all (refused, reset, DNS): nothing
        was decided, the session's observables keep their last value; retry later."""
        return self.code == ErrorCode.ENGINE_UNAVAILABLE

    @property
    def is_retryable(self) -> bool:
        """True when the same request may simply be sent again later: the engine was
        unreachable (``engine_unavailable``), throttled it (429, see ``retry_after``) or
        was briefly unable to serve it (503, e.g. its database). A timeout is not: the
        request may have been carried out."""
        return self.is_engine_unavailable or self.status_code in (429, 503)

    # Constructors for the handful of shapes the core itself raises. They keep codes and
    # statuses paired in one place so the engine maps them to HTTP without a table of its own.
    @classmethod
    def invalid(cls, message: str, *, field: str | None = None) -> UTDStreamException:
        return cls(message, status_code=422, code=ErrorCode.INVALID_ARGUMENT, field=field)

    @classmethod
    def forbidden(cls, message: str) -> UTDStreamException:
        return cls(message, status_code=403, code=ErrorCode.FORBIDDEN)

    @classmethod
    def banned(cls, message: str = "this identity is banned from the room") -> UTDStreamException:
        return cls(message, status_code=403, code=ErrorCode.BANNED)

    @classmethod
    def not_found(cls, message: str) -> UTDStreamException:
        return cls(message, status_code=404, code=ErrorCode.NOT_FOUND)

    @classmethod
    def illegal(cls, message: str) -> UTDStreamException:
        return cls(message, status_code=409, code=ErrorCode.ILLEGAL_TRANSITION)

    @classmethod
    def conflict(cls, message: str, *, code: str = ErrorCode.CONFLICT) -> UTDStreamException:
        return cls(message, status_code=409, code=code)

    @classmethod
    def unauthenticated(cls, message: str) -> UTDStreamException:
        return cls(message, status_code=401, code=ErrorCode.UNAUTHENTICATED)

    @classmethod
    def rate_limited(cls, retry_after: float) -> UTDStreamException:
        return cls(
            f"rate limit exceeded; retry after {retry_after:.1f}s",
            status_code=429,
            code=ErrorCode.RATE_LIMITED,
            retry_after=retry_after,
        )

    def __repr__(self) -> str:
        return (
            f"UTDStreamException(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )

    def __str__(self) -> str:
        head = " ".join(str(p) for p in (self.status_code, self.code) if p is not None)
        return f"[{head}] {self.message}" if head else self.message
