"""Media-server room names that cannot collide: ``app~room~name`` and ``app~call~id``.

Revision 0001 stored ``app__name`` (and ``app__call-<id>`` for calls), which two apps could
both reach (app ``X`` room ``b__c`` and app ``X__b`` room ``c``) and which a room named
``call-<id>`` shared with a call. The new names are those of
:func:`stream_core.names.livekit_room_name` / ``livekit_call_name``, spelled out here (a
migration is frozen history). A LiveKit room of the old name simply ends when it empties;
the next join creates the new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_rooms = sa.table("rooms", sa.column("app_id", sa.String), sa.column("name", sa.String),
                  sa.column("livekit_name", sa.String))
_calls = sa.table("calls", sa.column("app_id", sa.String), sa.column("call_id", sa.String),
                  sa.column("livekit_name", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(_rooms.c.app_id, _rooms.c.name)).all():
        conn.execute(_rooms.update().where(_rooms.c.app_id == row.app_id,
                                           _rooms.c.name == row.name)
                     .values(livekit_name=f"{row.app_id}~room~{row.name}"))
    for row in conn.execute(sa.select(_calls.c.app_id, _calls.c.call_id)).all():
        conn.execute(_calls.update().where(_calls.c.call_id == row.call_id)
                     .values(livekit_name=f"{row.app_id}~call~{row.call_id}"))


def downgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(_rooms.c.app_id, _rooms.c.name)).all():
        conn.execute(_rooms.update().where(_rooms.c.app_id == row.app_id,
                                           _rooms.c.name == row.name)
                     .values(livekit_name=f"{row.app_id}__{row.name}"))
    for row in conn.execute(sa.select(_calls.c.app_id, _calls.c.call_id)).all():
        conn.execute(_calls.update().where(_calls.c.call_id == row.call_id)
                     .values(livekit_name=f"{row.app_id}__call-{row.call_id}"))
