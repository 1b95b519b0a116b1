"""Waiting helpers for scenario tests: always wait on state, always with a timeout."""

from __future__ import annotations

from stream_core import UTDSession

TIMEOUT = 5.0


async def sees_track(session: UTDSession, identity: str, source: str, present: bool = True) -> None:
    """Wait until ``session`` sees ``identity`` publishing ``source`` (or no longer)."""
    await session.remote_participants.wait_for(
        lambda ps: any(p.identity == identity and p.has_track(source) for p in ps) == present,
        TIMEOUT, what=f"{identity}'s {source} to {'appear' if present else 'go'}")


async def sees_participants(session: UTDSession, identities: set[str]) -> None:
    await session.remote_participants.wait_for(
        lambda ps: {p.identity for p in ps} == identities, TIMEOUT,
        what=f"participants {sorted(identities)}")
