"""Scheduled jobs: the run log and lease (`job_runs`), once-only alert keys, and the time each
hourly rollup was written (the daily-summary job recomputes days whose rollups changed).

SQLite cannot add a column whose default is CURRENT_TIMESTAMP, so `usage_hourly` is rebuilt there
(batch mode); PostgreSQL adds it in place.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from workpulse.adapters.db.types import UtcDateTime, random_uuid

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "outcome IN ('running', 'retrying')"


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Uuid(), server_default=random_uuid(), nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("scheduled_for", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default="1", nullable=False),
        sa.Column("lease", UtcDateTime(), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('running', 'retrying', 'succeeded', 'failed')",
            name="ck_job_runs_outcome",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_job_runs_job_scheduled_for"),
    )
    op.create_index("ix_job_runs_scheduled_for", "job_runs", ["scheduled_for"])
    op.create_index(
        "ix_job_runs_open",
        "job_runs",
        ["lease"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )
    op.add_column("alerts", sa.Column("key", sa.String(200), nullable=True))
    op.create_index("uq_alerts_user_id_key", "alerts", ["user_id", "key"], unique=True)
    written_at: sa.Column[object] = sa.Column(
        "written_at", UtcDateTime(), server_default=sa.func.now(), nullable=False
    )
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("usage_hourly", recreate="always") as batch:
            batch.add_column(written_at)
    else:
        op.add_column("usage_hourly", written_at)
    op.create_index(
        "ix_usage_hourly_organization_id_written_at",
        "usage_hourly",
        ["organization_id", "written_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_usage_hourly_organization_id_written_at", table_name="usage_hourly")
    with op.batch_alter_table("usage_hourly") as batch:
        batch.drop_column("written_at")
    op.drop_index("uq_alerts_user_id_key", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("key")
    op.drop_table("job_runs")
