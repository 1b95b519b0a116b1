"""The one place where ``livekit.rtc`` failures become ``UTDStreamException``, and the
adapter's own refusals (not connected, publish denied).

Kept apart from :mod:`adapters.livekit.media` so the translation of backend failures reads
as one page (the httpx ``map_exceptions`` idea): every rtc call the adapter makes runs
inside :func:`map_errors`, and a caller may rely on seeing only ``UTDStreamException``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from livekit import rtc
from livekit.rtc.participant import PublishTrackError

from stream_core.errors import ErrorCode, UTDStreamException

__all__ = ["NOT_CONNECTED", "map_errors", "not_connected", "publish_denied"]

#: Error code for acting without a connection (the fake uses the same code).
NOT_CONNECTED = ErrorCode.NOT_CONNECTED


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """The one place where ``livekit.rtc`` failures become ``UTDStreamException``."""
    try:
        yield
    except UTDStreamException:
        raise
    except rtc.ConnectError as exc:
        if "401" in exc.message:
            raise UTDStreamException.unauthenticated(f"{what}: {exc.message}") from exc
        raise UTDStreamException(f"{what}: {exc.message}", code=ErrorCode.UNAVAILABLE) from exc
    except PublishTrackError as exc:
        if "timed out" in exc.message:  # the server ignores publishes it does not allow
            raise UTDStreamException(f"{what}: the server did not accept the track",
                                     status_code=403, code=ErrorCode.PUBLISH_DENIED) from exc
        raise UTDStreamException(f"{what}: {exc.message}", code=ErrorCode.UNAVAILABLE) from exc
    except TimeoutError as exc:
        raise UTDStreamException(f"{what}: timed out", code=ErrorCode.TIMEOUT) from exc
    except Exception as exc:
        raise UTDStreamException(f"{what} failed: {exc!r}", code=ErrorCode.INTERNAL) from exc


def not_connected(what: str) -> UTDStreamException:
    return UTDStreamException(f"cannot {what}: not connected to a media room", code=NOT_CONNECTED)


def publish_denied(source: str) -> UTDStreamException:
    return UTDStreamException(f"this participant may not publish its {source}",
                              status_code=403, code=ErrorCode.PUBLISH_DENIED)
