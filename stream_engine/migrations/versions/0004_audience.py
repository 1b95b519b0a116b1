"""The audience beside the room: a ``presence`` row per present participant the room's state
does not name, moved out of each room's document (which keeps its members' presence).

Spelled out here (a migration is frozen history): a member is the host, a seat's occupant,
a requester or an invitee (audio rooms), a stage member or a raised hand (live streams).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

_rooms = sa.table("rooms", sa.column("app_id", sa.String), sa.column("name", sa.String),
                  sa.column("kind", sa.String), sa.column("snapshot", sa.Text),
                  sa.column("present", sa.Text))


def upgrade() -> None:
    presence = op.create_table(
        "presence",
        sa.Column("app_id", sa.String(128), primary_key=True),
        sa.Column("room", sa.String(128), primary_key=True),
        sa.Column("identity", sa.String(600), primary_key=True),
        sa.Column("name", sa.Text, nullable=True),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(_rooms)).all():
        named = _members(row.kind, json.loads(row.snapshot))
        present: dict[str, str | None] = json.loads(row.present)
        audience = [{"app_id": row.app_id, "room": row.name, "identity": i, "name": n}
                    for i, n in present.items() if i not in named]
        if audience:
            conn.execute(sa.insert(presence), audience)
        conn.execute(_rooms.update().where(_rooms.c.app_id == row.app_id,
                                           _rooms.c.name == row.name).values(
            present=json.dumps({i: n for i, n in present.items() if i in named})))


def downgrade() -> None:
    conn = op.get_bind()
    presence = sa.table("presence", sa.column("app_id"), sa.column("room"),
                        sa.column("identity"), sa.column("name"))
    for row in conn.execute(sa.select(_rooms)).all():
        present = json.loads(row.present)
        for p in conn.execute(sa.select(presence).where(presence.c.app_id == row.app_id,
                                                        presence.c.room == row.name)).all():
            present[p.identity] = p.name
        conn.execute(_rooms.update().where(_rooms.c.app_id == row.app_id,
                                           _rooms.c.name == row.name).values(
            present=json.dumps(present)))
    op.drop_table("presence")


def _members(kind: str, snapshot: dict[str, Any]) -> set[str]:
    named: set[str] = set()
    if kind == "seats":
        named |= {s["occupant"] for s in snapshot.get("seats", []) if s.get("occupant")}
        named |= {r["identity"] for r in snapshot.get("requests", [])}
        named |= set(snapshot.get("invites", {}) or {})
    else:
        named |= {m["identity"] for m in snapshot.get("members", [])}
        named |= set(snapshot.get("hands", []) or [])
    host = snapshot.get("host")
    return named | ({host} if host else set())
