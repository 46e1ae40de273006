"""Reports: hourly usage rollups, and an index for one user's intervals across devices.

Stored intervals are split at UTC midnights from this revision on (the worker's rule; see
docs/duration-spec.md). Nothing stored intervals longer than that before reports existed in a
release, so no data is rewritten here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from workpulse.adapters.db.types import UtcDateTime, random_uuid

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_app_usage_user_id_start_time", "app_usage", ["user_id", "start_time"])
    op.create_table(
        "usage_hourly",
        sa.Column("id", sa.Uuid(), server_default=random_uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("app_name", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("idle", sa.Boolean(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("micros", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "micros > 0 AND micros <= 3600000000", name="ck_usage_hourly_micros_within_hour"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_usage_hourly_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_usage_hourly_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_usage_hourly"),
    )
    op.create_index("ix_usage_hourly_user_id_hour", "usage_hourly", ["user_id", "hour"])
    op.create_index(
        "ix_usage_hourly_organization_id_hour", "usage_hourly", ["organization_id", "hour"]
    )


def downgrade() -> None:
    op.drop_table("usage_hourly")
    op.drop_index("ix_app_usage_user_id_start_time", table_name="app_usage")
