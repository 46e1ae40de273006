"""The schema, as SQLAlchemy Core tables. Alembic migrations build exactly this (a test checks).

Tenant data carries `organization_id`; every store query filters on it.
"""

from __future__ import annotations

import sqlalchemy as sa

from workpulse.adapters.db.types import Json, UtcDateTime, random_uuid

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ROLES = ("owner", "admin", "manager", "employee")


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.Uuid(), primary_key=True, server_default=random_uuid())


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now())


def _org_fk() -> sa.Column[object]:
    return sa.Column(
        "organization_id",
        sa.Uuid(),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    )


def _user_fk(nullable: bool = False) -> sa.Column[object]:
    return sa.Column(
        "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable
    )


organizations = sa.Table(
    "organizations",
    metadata,
    _id(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("plan_type", sa.String(32), nullable=False, server_default="free"),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("settings", Json, nullable=False, server_default=sa.text("'{}'")),
    _created_at(),
)

users = sa.Table(
    "users",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False, server_default="employee"),
    sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("timezone", sa.String(64), nullable=True),
    _created_at(),
    sa.UniqueConstraint("organization_id", "email"),
    sa.CheckConstraint("role IN ('owner', 'admin', 'manager', 'employee')", name="role"),
    sa.Index(None, "email"),
)

device_sessions = sa.Table(
    "device_sessions",
    metadata,
    _id(),
    _org_fk(),
    _user_fk(),
    sa.Column("device_id", sa.String(128), nullable=False),
    sa.Column("device_name", sa.String(200), nullable=True),
    _created_at(),
    sa.Column("last_used_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Index(None, "user_id", "revoked_at"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    _id(),
    sa.Column(
        "device_session_id",
        sa.Uuid(),
        sa.ForeignKey("device_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    _created_at(),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("spent_at", UtcDateTime(), nullable=True),
    sa.Index(None, "device_session_id"),
)

invites = sa.Table(
    "invites",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column(
        "created_by", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    ),
    _created_at(),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
    sa.Column("used_by", sa.Uuid(), nullable=True),
    sa.CheckConstraint("role IN ('owner', 'admin', 'manager', 'employee')", name="role"),
)

projects = sa.Table(
    "projects",
    metadata,
    _id(),
    _org_fk(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    _created_at(),
    sa.Column("archived_at", UtcDateTime(), nullable=True),
    sa.Index(
        "uq_projects_live_name",
        "organization_id",
        "name",
        unique=True,
        postgresql_where=sa.text("archived_at IS NULL"),
        sqlite_where=sa.text("archived_at IS NULL"),
    ),
)

work_sessions = sa.Table(
    "work_sessions",
    metadata,
    _id(),
    _org_fk(),
    _user_fk(),
    sa.Column("project_id", sa.Uuid(), sa.ForeignKey("projects.id"), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("end_time", UtcDateTime(), nullable=True),
    sa.Column("total_active_seconds", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("total_idle_seconds", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("last_activity_at", UtcDateTime(), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    _created_at(),
    sa.CheckConstraint("status IN ('active', 'stopped')", name="status"),
    sa.Index(None, "organization_id", "user_id", "start_time"),
    # At most one active session per user, enforced by the database.
    sa.Index(
        "uq_work_sessions_one_active",
        "user_id",
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    ),
)

# The ledger of work-session counters. Partitioned by the month of its session's start on
# PostgreSQL: the partition key then follows from session_id, so (session_id, event_id) stays
# unique across partitions and a retried event is always recognized.
activity_logs = sa.Table(
    "activity_logs",
    metadata,
    sa.Column("id", sa.Uuid(), nullable=False, server_default=random_uuid()),
    _org_fk(),
    _user_fk(),
    sa.Column("session_id", sa.Uuid(), nullable=False),
    sa.Column("session_start", UtcDateTime(), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("activity_type", sa.String(16), nullable=False),
    sa.Column("duration_seconds", sa.Integer(), nullable=False),
    sa.Column("app_name", sa.String(200), nullable=True),
    sa.Column("url", sa.Text(), nullable=True),
    sa.Column("domain", sa.String(255), nullable=True),
    sa.Column("timestamp", UtcDateTime(), nullable=False),
    _created_at(),
    sa.PrimaryKeyConstraint("id", "session_start"),
    sa.UniqueConstraint("session_id", "event_id", "session_start"),
    sa.ForeignKeyConstraint(["session_id"], ["work_sessions.id"], ondelete="CASCADE"),
    sa.CheckConstraint("activity_type IN ('active', 'idle')", name="activity_type"),
    sa.CheckConstraint("duration_seconds > 0", name="duration_positive"),
    sa.Index(None, "organization_id", "user_id", "timestamp"),
    postgresql_partition_by="RANGE (session_start)",
)

daily_summaries = sa.Table(
    "daily_summaries",
    metadata,
    _id(),
    _org_fk(),
    _user_fk(),
    sa.Column("date", sa.Date(), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("active_seconds", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("idle_seconds", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("sessions_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("top_apps", Json, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("top_domains", Json, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("first_activity_at", UtcDateTime(), nullable=True),
    sa.Column("last_activity_at", UtcDateTime(), nullable=True),
    sa.Column("computed_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("user_id", "date"),
    sa.Index(None, "organization_id", "date"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    _id(),
    _org_fk(),
    _user_fk(),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("data", Json, nullable=False, server_default=sa.text("'{}'")),
    _created_at(),
    sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
    sa.Column("acknowledged_by", sa.Uuid(), nullable=True),
    sa.Index(None, "organization_id", "created_at"),
    sa.Index(None, "user_id", "created_at"),
    # What makes an alert once-only (an idle episode, an overtime day); see domain/alerts.py.
    sa.Column("key", sa.String(200), nullable=True),
    sa.Index("uq_alerts_user_id_key", "user_id", "key", unique=True),
)

# Monthly partitions on PostgreSQL (RANGE on start_time); see adapters/db/partitions.py. An
# exclusion constraint cannot live on a partitioned table, so each app_usage partition carries its
# own, with CHECK (end_time <= its upper bound): intervals are split at month bounds, and no
# interval can then overlap one in another partition.
app_usage = sa.Table(
    "app_usage",
    metadata,
    sa.Column("id", sa.Uuid(), nullable=False, server_default=random_uuid()),
    _org_fk(),
    _user_fk(),
    sa.Column("device_id", sa.String(128), nullable=False),
    sa.Column("app_name", sa.String(200), nullable=False),
    sa.Column("domain", sa.String(255), nullable=True),
    sa.Column("idle", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("end_time", UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", "start_time"),
    sa.CheckConstraint("end_time > start_time", name="positive_span"),
    sa.Index(None, "user_id", "device_id", "start_time"),
    sa.Index(None, "organization_id", "start_time"),
    # Reports and rollups: one user's intervals from every device in a window. Stored intervals
    # last at most a day (split at UTC midnights), so the window is a range on start_time.
    sa.Index(None, "user_id", "start_time"),
    # Re-derivation: one user's intervals touching a window near its end (few, for live data).
    sa.Index(None, "user_id", "end_time"),
    postgresql_partition_by="RANGE (start_time)",
)

# Hourly rollups of app_usage, kept by the workers as intervals are derived: one user's time in
# one UTC hour per (app, domain, idle, project), in microseconds, devices flattened (a moment
# counts once). Reports read them for whole hours and tally intervals for partial ones.
usage_hourly = sa.Table(
    "usage_hourly",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True, server_default=random_uuid()),
    _org_fk(),
    _user_fk(),
    sa.Column("hour", UtcDateTime(), nullable=False),
    sa.Column("app_name", sa.String(200), nullable=False),
    sa.Column("domain", sa.String(255), nullable=True),
    sa.Column("idle", sa.Boolean(), nullable=False),
    sa.Column("project_id", sa.Uuid(), nullable=True),
    sa.Column("micros", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("micros > 0 AND micros <= 3600000000", name="micros_within_hour"),
    sa.Index(None, "user_id", "hour"),
    sa.Index(None, "organization_id", "hour"),
    # Set by the database on every write: the daily-summary job finds late data by it.
    sa.Column("written_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Index(None, "organization_id", "written_at"),
)

# Raw pings: append-only, the source of truth that intervals are derived from. `pending` marks
# pings stored by the API in database-queue mode that the worker has not derived yet.
pings = sa.Table(
    "pings",
    metadata,
    _org_fk(),
    _user_fk(),
    sa.Column("device_id", sa.String(128), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("app_name", sa.String(200), nullable=False),
    sa.Column("url", sa.Text(), nullable=True),
    sa.Column("domain", sa.String(255), nullable=True),
    sa.Column("title", sa.String(512), nullable=True),
    sa.Column("idle", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("start_time", UtcDateTime(), nullable=False),
    sa.Column("end_time", UtcDateTime(), nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The partition key must be part of the key on PostgreSQL.
    sa.PrimaryKeyConstraint("organization_id", "user_id", "device_id", "event_id", "start_time"),
    sa.Index(None, "user_id", "device_id", "start_time"),
    sa.Index(
        "ix_pings_pending",
        "received_at",
        postgresql_where=sa.text("pending"),
        sqlite_where=sa.text("pending"),
    ),
    # Re-derivation's second read: the spans reaching into a window, by where they end.
    sa.Index(
        "ix_pings_spans",
        "user_id",
        "device_id",
        "end_time",
        postgresql_where=sa.text("end_time IS NOT NULL"),
        sqlite_where=sa.text("end_time IS NOT NULL"),
    ),
    postgresql_partition_by="RANGE (start_time)",
)

# The scheduler's run log and lease (services/jobs.py): one row per (job, scheduled time), claimed
# by INSERT ... ON CONFLICT DO NOTHING, so with several scheduler processes each run happens once.
# `lease` is when the holder's claim (outcome running) or the retry wait (retrying) ends.
job_runs = sa.Table(
    "job_runs",
    metadata,
    _id(),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("scheduled_for", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("lease", UtcDateTime(), nullable=True),
    sa.Column("detail", sa.String(500), nullable=True),
    sa.UniqueConstraint("job", "scheduled_for"),
    sa.CheckConstraint("outcome IN ('running', 'retrying', 'succeeded', 'failed')", name="outcome"),
    sa.Index(None, "scheduled_for"),
    sa.Index(
        "ix_job_runs_open",
        "lease",
        postgresql_where=sa.text("outcome IN ('running', 'retrying')"),
        sqlite_where=sa.text("outcome IN ('running', 'retrying')"),
    ),
)
