"""Spans among the raw pings, indexed by where they end.

Re-derivation loads the pings of a device around a window, and also every span (a ping with an
end_time) that reaches into it from up to a day before. With only (user_id, device_id,
start_time) that second part read a day of the device's pings, spans or not, for every batch;
this partial index holds the spans alone, ordered by their end.

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


def downgrade() -> None:
    op.drop_index("ix_pings_spans", table_name="pings")
