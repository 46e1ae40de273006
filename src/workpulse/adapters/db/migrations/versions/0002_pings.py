"""Raw pings, and app_usage partitioned by month on PostgreSQL.

app_usage was created plain by 0001 and nothing wrote to it before this revision, so it is
rebuilt rather than copied. Partitions are created on demand by adapters/db/partitions.py.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from workpulse.adapters.db.types import UtcDateTime, random_uuid

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant(table: str) -> list[Any]:
    return [
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=f"fk_{table}_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.drop_table("app_usage")
    op.create_table(
        "app_usage",
        sa.Column("id", sa.Uuid(), server_default=random_uuid(), nullable=False),
        *_tenant("app_usage"),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("app_name", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("idle", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("end_time", UtcDateTime(), nullable=False),
        sa.CheckConstraint("end_time > start_time", name="ck_app_usage_positive_span"),
        sa.PrimaryKeyConstraint("id", "start_time", name="pk_app_usage"),
        postgresql_partition_by="RANGE (start_time)",
    )
    op.create_index(
        "ix_app_usage_user_id_device_id_start_time",
        "app_usage",
        ["user_id", "device_id", "start_time"],
    )
    op.create_index(
        "ix_app_usage_organization_id_start_time", "app_usage", ["organization_id", "start_time"]
    )
    op.create_table(
        "pings",
        *_tenant("pings"),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("app_name", sa.String(200), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("title", sa.String(512), nullable=True),
        sa.Column("idle", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("end_time", UtcDateTime(), nullable=True),
        sa.Column("received_at", UtcDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("pending", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id", "user_id", "device_id", "event_id", "start_time", name="pk_pings"
        ),
        postgresql_partition_by="RANGE (start_time)",
    )
    op.create_index(
        "ix_pings_user_id_device_id_start_time", "pings", ["user_id", "device_id", "start_time"]
    )
    op.create_index(
        "ix_pings_pending",
        "pings",
        ["received_at"],
        postgresql_where=sa.text("pending"),
        sqlite_where=sa.text("pending"),
    )


def downgrade() -> None:
    op.drop_table("pings")
    op.drop_table("app_usage")
