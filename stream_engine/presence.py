"""The audience in SQL: one row per present participant that the room's state does not name.

A room's document keeps the presence of its *members* (host, seats, requests, invitations;
stage and hands: :func:`stream_core.rooms.hosting.members`), a number the caps bound. Every
other present participant (a plain viewer or listener) is one ``presence`` row, so a join
or a leave of the audience writes that one row and never the room (whose row it only reads,
under a shared lock, to serialize with the room's changes). A change of the room loads the
rows of the identities it involves and writes back whoever moved between the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine

from stream_core.models import UTDStreamType
from stream_engine.group_commit import GroupCommit
from stream_engine.schema import presence, rooms
from stream_engine.statements import AUDIENCE_OF, INSERT_PRESENCE, UPDATE_PRESENCE

__all__ = ["Audience", "load_involved", "write_moves"]


def load_involved(conn: Connection, app_id: str, name: str,
                  identities: Collection[str]) -> dict[str, str | None]:
    """The audience rows of ``identities`` (the participants a change involves)."""
    if not identities:
        return {}
    rows = conn.execute(AUDIENCE_OF, {"b_app_id": app_id, "b_name": name,
                                      "b_identities": list(identities)}).all()
    return {r.identity: r.name for r in rows}


def write_moves(conn: Connection, app_id: str, name: str,
                before: Mapping[str, str | None], after: Mapping[str, str | None],
                named: Collection[str]) -> dict[str, str | None]:
    """Write the audience rows a change moved; return the members' presence for the room's
    document (present and named by the state)."""
    gone = [i for i in before if i not in after]
    audience = {i: n for i, n in after.items() if i not in named}
    if gone:
        conn.execute(delete(presence).where(presence.c.app_id == app_id,
                                            presence.c.room == name,
                                            presence.c.identity.in_(gone)))
    for identity, display in audience.items():  # the involved, and members who left
        _upsert(conn, app_id, name, identity, display)  # the member set (a handful)
    members_now = [i for i in after if i in named]
    if members_now:  # a member's own row would count it twice
        conn.execute(delete(presence).where(presence.c.app_id == app_id,
                                            presence.c.room == name,
                                            presence.c.identity.in_(members_now)))
    return {i: n for i, n in after.items() if i in named}


def _upsert(conn: Connection, app_id: str, name: str, identity: str,
            display: str | None) -> None:
    done = conn.execute(UPDATE_PRESENCE, {"b_app_id": app_id, "b_name": name,
                                          "b_identity": identity, "name": display}).rowcount
    if not done:
        conn.execute(INSERT_PRESENCE, {"app_id": app_id, "room": name, "identity": identity,
                                       "name": display})


@dataclass(frozen=True, slots=True)
class _Join:
    app_id: str
    name: str
    identity: str
    display: str | None
    decide: Callable[[UTDStreamType, bool], None]


@dataclass(frozen=True, slots=True)
class _RoomFacts:
    """What an audience join needs of its room's row."""

    kind: UTDStreamType
    members: frozenset[str]
    banned: frozenset[str]
    version: int


def _room_facts(conn: Connection, app_id: str, name: str) -> _RoomFacts | None:
    row = conn.execute(_locked(select(rooms.c.kind, rooms.c.banned, rooms.c.present,
                                      rooms.c.snapshot)
                               .where(rooms.c.app_id == app_id, rooms.c.name == name),
                               conn)).first()
    if row is None:
        return None
    return _RoomFacts(UTDStreamType.AUDIO_ROOM if row.kind == "seats" else
                      UTDStreamType.LIVE_STREAM, frozenset(json.loads(row.present)),
                      frozenset(json.loads(row.banned)),
                      int(json.loads(row.snapshot).get("version", 0)))


class Audience:
    """The store's audience operations (mixed into the store; see the module's doc)."""

    engine: Engine

    def __init__(self) -> None:
        self._joins: GroupCommit[_Join, int | None] = GroupCommit(self._commit_joins)

    def _db(self) -> Any:
        raise NotImplementedError

    def join_audience(self, app_id: str, name: str, identity: str, display: str | None,
                      decide: Callable[[UTDStreamType, bool], None]) -> int | None:
        """Add ``identity`` to the room's audience if ``decide(kind, banned)`` lets it; the
        room's state version (what the joiner should find pushed), or None if the room must
        change instead (it does not exist yet, or ``identity`` is one of its members, whose
        join the room itself records). Concurrent joins share a transaction
        (:mod:`stream_engine.group_commit`)."""
        return self._joins.submit(_Join(app_id, name, identity, display, decide))

    def _commit_joins(self, batch: list[_Join]) -> list[int | None | BaseException]:
        out: list[int | None | BaseException] = []
        with self._db(), self.engine.begin() as conn:
            rooms_seen: dict[tuple[str, str], _RoomFacts | None] = {}
            for join in batch:
                key = (join.app_id, join.name)
                if key not in rooms_seen:
                    rooms_seen[key] = _room_facts(conn, *key)
                facts = rooms_seen[key]
                if facts is None or join.identity in facts.members:
                    out.append(None)
                    continue
                try:
                    join.decide(facts.kind, join.identity in facts.banned)
                except Exception as exc:  # this joiner is refused; the others go on
                    out.append(exc)
                    continue
                _upsert(conn, join.app_id, join.name, join.identity, join.display)
                out.append(facts.version)
        return out

    def leave_audience(self, app_id: str, name: str, identity: str) -> bool | None:
        """Remove ``identity`` from the audience: True if it was there, False if it is a
        member (the room itself must change), None if it was not present at all."""
        with self._db(), self.engine.begin() as conn:
            row = conn.execute(_locked(select(rooms.c.present).where(
                rooms.c.app_id == app_id, rooms.c.name == name), conn)).first()
            if row is not None and identity in json.loads(row.present):
                return False
            gone = conn.execute(delete(presence).where(
                presence.c.app_id == app_id, presence.c.room == name,
                presence.c.identity == identity)).rowcount
        return True if gone else None

    def audience_size(self, app_id: str, name: str) -> int:
        """How many are present: the room's members and its audience."""
        with self._db(), self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(presence).where(
                presence.c.app_id == app_id, presence.c.room == name)).scalar() or 0
            row = conn.execute(select(rooms.c.present).where(
                rooms.c.app_id == app_id, rooms.c.name == name)).first()
        return int(count) + (len(json.loads(row.present)) if row is not None else 0)

    def clear_audience(self, app_id: str, name: str) -> None:
        """Everyone in the audience leaves at once (an operator closed the room)."""
        with self._db(), self.engine.begin() as conn:
            conn.execute(delete(presence).where(presence.c.app_id == app_id,
                                                presence.c.room == name))

    def is_present(self, app_id: str, name: str, identity: str) -> bool:
        with self._db(), self.engine.connect() as conn:
            return conn.execute(select(presence.c.identity).where(
                presence.c.app_id == app_id, presence.c.room == name,
                presence.c.identity == identity)).first() is not None


def _locked(query: Any, conn: Connection) -> Any:
    """A shared row lock where the database has one (SQLite's write lock covers it)."""
    return query.with_for_update(read=True) if conn.dialect.name == "postgresql" else query
