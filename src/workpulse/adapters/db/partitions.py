"""Monthly partitions of `app_usage` and `pings` on PostgreSQL, created on demand.

Each `app_usage` partition carries `CHECK (end_time <= upper bound)` and its own exclusion
constraint (no overlap per user and device): PostgreSQL 15 refuses exclusion constraints on a
partitioned table, and with intervals split at month bounds the per-partition constraints are
enough. SQLite has no partitions: `ensure` is a no-op there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workpulse.domain.months import month_start, next_month

PARTITIONED = ("app_usage", "pings", "activity_logs")
_LOCK_KEY = 0x57505054  # pg_advisory_xact_lock key: one partition creator at a time


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month.year:04d}_{month.month:02d}"


def _ddl(table: str, month: datetime) -> list[str]:
    name = partition_name(table, month)
    low, high = month.isoformat(), next_month(month).isoformat()
    statements = [
        f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ('{low}') TO ('{high}')"
    ]
    if table == "app_usage":
        statements += [
            f"ALTER TABLE {name} ADD CONSTRAINT ck_{name}_within CHECK (end_time <= '{high}')",
            f"ALTER TABLE {name} ADD CONSTRAINT ex_{name}_no_overlap EXCLUDE USING gist "
            "(user_id WITH =, device_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&)",
        ]
    return statements


class Partitions:
    """Remembers which months exist, so the hot path asks the catalog only for new months."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._enabled = engine.dialect.name == "postgresql"
        self._known: set[tuple[str, datetime]] = set()

    async def ensure(self, moments: Iterable[datetime]) -> None:
        if not self._enabled:
            return
        months = {month_start(m) for m in moments}
        missing = [(t, m) for t in PARTITIONED for m in months if (t, m) not in self._known]
        if not missing:
            return
        # Its own transaction: DDL must not sit inside a long ingestion transaction, and two
        # processes creating the same month queue on the advisory lock.
        async with self._engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            for table, month in missing:
                await _create(conn, table, month)
        self._known.update(missing)


async def _create(conn: AsyncConnection, table: str, month: datetime) -> None:
    exists = await conn.scalar(
        sa.text("SELECT to_regclass(:name) IS NOT NULL"),
        {"name": partition_name(table, month)},
    )
    if not exists:
        for statement in _ddl(table, month):
            await conn.execute(sa.text(statement))
