"""activity_logs partitioned by the month of its session's start (PostgreSQL).

Nothing wrote activity_logs before this revision, so it is rebuilt rather than copied.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from workpulse.adapters.db.types import UtcDateTime, random_uuid

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("activity_logs")
    op.create_table(
        "activity_logs",
        sa.Column("id", sa.Uuid(), server_default=random_uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("session_start", UtcDateTime(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("activity_type", sa.String(16), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("app_name", sa.String(200), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "activity_type IN ('active', 'idle')", name="ck_activity_logs_activity_type"
        ),
        sa.CheckConstraint("duration_seconds > 0", name="ck_activity_logs_duration_positive"),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_activity_logs_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_activity_logs_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["work_sessions.id"],
            name="fk_activity_logs_session_id_work_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "session_start", name="pk_activity_logs"),
        sa.UniqueConstraint(
            "session_id",
            "event_id",
            "session_start",
            name="uq_activity_logs_session_id_event_id_session_start",
        ),
        postgresql_partition_by="RANGE (session_start)",
    )
    op.create_index(
        "ix_activity_logs_organization_id_user_id_timestamp",
        "activity_logs",
        ["organization_id", "user_id", "timestamp"],
    )


def downgrade() -> None:
    op.drop_table("activity_logs")
