"""Foundation: organizations, identity and the seed's tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from workpulse.adapters.db.types import Json, UtcDateTime, random_uuid

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE_CHECK = "role IN ('owner', 'admin', 'manager', 'employee')"


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), server_default=random_uuid(), nullable=False)


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", UtcDateTime(), server_default=sa.func.now(), nullable=False)


def _org(table: str) -> list[Any]:
    return [
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=f"fk_{table}_organization_id_organizations",
            ondelete="CASCADE",
        ),
    ]


def _user(table: str) -> list[Any]:
    return [
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "organizations",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan_type", sa.String(32), server_default="free", nullable=False),
        sa.Column("timezone", sa.String(64), server_default="UTC", nullable=False),
        sa.Column("settings", Json, server_default=sa.text("'{}'"), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
    )
    op.create_table(
        "users",
        _id(),
        *_org("users"),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), server_default="employee", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=True),
        _created_at(),
        sa.CheckConstraint(ROLE_CHECK, name="ck_users_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("organization_id", "email", name="uq_users_organization_id_email"),
    )
    op.create_index("ix_users_email", "users", ["email"])
    op.create_table(
        "device_sessions",
        _id(),
        *_org("device_sessions"),
        *_user("device_sessions"),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("device_name", sa.String(200), nullable=True),
        _created_at(),
        sa.Column("last_used_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_device_sessions"),
    )
    op.create_index(
        "ix_device_sessions_user_id_revoked_at", "device_sessions", ["user_id", "revoked_at"]
    )
    op.create_table(
        "refresh_tokens",
        _id(),
        sa.Column("device_session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _created_at(),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("spent_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_session_id"],
            ["device_sessions.id"],
            name="fk_refresh_tokens_device_session_id_device_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    )
    op.create_index("ix_refresh_tokens_device_session_id", "refresh_tokens", ["device_session_id"])
    op.create_table(
        "invites",
        _id(),
        *_org("invites"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        _created_at(),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("used_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(ROLE_CHECK, name="ck_invites_role"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_invites_created_by_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invites"),
        sa.UniqueConstraint("token_hash", name="uq_invites_token_hash"),
    )
    op.create_table(
        "projects",
        _id(),
        *_org("projects"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("archived_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
    )
    op.create_index(
        "uq_projects_live_name",
        "projects",
        ["organization_id", "name"],
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
        sqlite_where=sa.text("archived_at IS NULL"),
    )
    op.create_table(
        "work_sessions",
        _id(),
        *_org("work_sessions"),
        *_user("work_sessions"),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("end_time", UtcDateTime(), nullable=True),
        sa.Column("total_active_seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_idle_seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_activity_at", UtcDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        _created_at(),
        sa.CheckConstraint("status IN ('active', 'stopped')", name="ck_work_sessions_status"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_work_sessions_project_id_projects"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_work_sessions"),
    )
    op.create_index(
        "ix_work_sessions_organization_id_user_id_start_time",
        "work_sessions",
        ["organization_id", "user_id", "start_time"],
    )
    op.create_index(
        "uq_work_sessions_one_active",
        "work_sessions",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "activity_logs",
        _id(),
        *_org("activity_logs"),
        *_user("activity_logs"),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("activity_type", sa.String(16), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("app_name", sa.String(200), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("timestamp", UtcDateTime(), nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "activity_type IN ('active', 'idle')", name="ck_activity_logs_activity_type"
        ),
        sa.CheckConstraint("duration_seconds > 0", name="ck_activity_logs_duration_positive"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["work_sessions.id"],
            name="fk_activity_logs_session_id_work_sessions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_activity_logs"),
        sa.UniqueConstraint("session_id", "event_id", name="uq_activity_logs_session_id_event_id"),
    )
    op.create_index(
        "ix_activity_logs_organization_id_user_id_timestamp",
        "activity_logs",
        ["organization_id", "user_id", "timestamp"],
    )
    op.create_table(
        "daily_summaries",
        _id(),
        *_org("daily_summaries"),
        *_user("daily_summaries"),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("active_seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("idle_seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sessions_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("top_apps", Json, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("top_domains", Json, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("first_activity_at", UtcDateTime(), nullable=True),
        sa.Column("last_activity_at", UtcDateTime(), nullable=True),
        sa.Column("computed_at", UtcDateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_daily_summaries"),
        sa.UniqueConstraint("user_id", "date", name="uq_daily_summaries_user_id_date"),
    )
    op.create_index(
        "ix_daily_summaries_organization_id_date", "daily_summaries", ["organization_id", "date"]
    )
    op.create_table(
        "alerts",
        _id(),
        *_org("alerts"),
        *_user("alerts"),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", Json, server_default=sa.text("'{}'"), nullable=False),
        _created_at(),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index(
        "ix_alerts_organization_id_created_at", "alerts", ["organization_id", "created_at"]
    )
    op.create_index("ix_alerts_user_id_created_at", "alerts", ["user_id", "created_at"])
    op.create_table(
        "app_usage",
        _id(),
        *_org("app_usage"),
        *_user("app_usage"),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("app_name", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("idle", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("end_time", UtcDateTime(), nullable=False),
        sa.CheckConstraint("end_time > start_time", name="ck_app_usage_positive_span"),
        sa.PrimaryKeyConstraint("id", name="pk_app_usage"),
    )
    op.create_index("ix_app_usage_user_id_start_time", "app_usage", ["user_id", "start_time"])
    if postgres:
        op.create_exclude_constraint(
            "ex_app_usage_no_overlap",
            "app_usage",
            (sa.column("user_id"), "="),
            (sa.column("device_id"), "="),
            (sa.func.tstzrange(sa.column("start_time"), sa.column("end_time"), "[)"), "&&"),
            using="gist",
        )


def downgrade() -> None:
    for table in (
        "app_usage",
        "alerts",
        "daily_summaries",
        "activity_logs",
        "work_sessions",
        "projects",
        "invites",
        "refresh_tokens",
        "device_sessions",
        "users",
        "organizations",
    ):
        op.drop_table(table)
