"""The engine's first schema: rooms (stored whole, with a row version) and calls.

Exactly what ``create_all`` made before migrations existed, so such a database is stamped
with this revision (see :mod:`stream_engine.migrations`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("app_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("livekit_name", sa.String(300), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("present", sa.Text, nullable=False),
        sa.Column("banned", sa.Text, nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.String(128), nullable=False, index=True),
        sa.Column("livekit_name", sa.String(300), nullable=False, unique=True),
        sa.Column("callee", sa.String(128), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("ring_deadline", sa.Float),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("row_version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("calls")
    op.drop_table("rooms")
