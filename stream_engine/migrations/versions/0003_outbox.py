"""Durable media effects and events: the outbox and the webhook inbox; rooms record
when they last changed (what the reconcile pass looks at).

Spelled out here (a migration is frozen history), equal to ``stream_engine.schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("updated_at", sa.Float, nullable=True))
        batch.create_index("ix_rooms_updated_at", ["updated_at"])
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("room", sa.String(300), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("identity", sa.String(600), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_try_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("room", sa.String(300), nullable=False, index=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False, index=True),
        sa.Column("applied", sa.Integer, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_table("outbox")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_index("ix_rooms_updated_at")
        batch.drop_column("updated_at")
