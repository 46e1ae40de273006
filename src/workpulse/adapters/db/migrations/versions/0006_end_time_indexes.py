"""Indexes by where things end, for re-derivation's reads around a window.

- Raw pings: re-derivation loads every span (a ping with an end_time) that reaches into the
  window from up to a day before. Under (user_id, device_id, start_time) that read a day of the
  device's pings, spans or not, for every batch; this partial index holds the spans alone.
- Intervals: those touching a window were a range on start_time from a day before it (stored
  intervals last at most a day), so every batch read a day of each user's intervals; by end_time
  it reads the few that end inside or after the window.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_pings_spans",
        "pings",
        ["user_id", "device_id", "end_time"],
        postgresql_where=sa.text("end_time IS NOT NULL"),
        sqlite_where=sa.text("end_time IS NOT NULL"),
    )
    op.create_index("ix_app_usage_user_id_end_time", "app_usage", ["user_id", "end_time"])


def downgrade() -> None:
    op.drop_index("ix_app_usage_user_id_end_time", table_name="app_usage")
    op.drop_index("ix_pings_spans", table_name="pings")
