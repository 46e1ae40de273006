"""Retention in SQL: on PostgreSQL old months go by dropping their partitions (instant, no
vacuum debt); on SQLite, and for the unpartitioned rollups, by deleting rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from workpulse.adapters.db.tables import app_usage, pings, usage_hourly
from workpulse.domain.months import next_month
from workpulse.domain.retention import DataClass

_PARTITION = re.compile(r"^(?P<table>[a-z_]+)_p(?P<year>\d{4})_(?P<month>\d{2})$")
_TABLES = {DataClass.RAW_PINGS: pings, DataClass.INTERVALS: app_usage}


class SqlDataLifecycle:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgresql = engine.dialect.name == "postgresql"

    async def expire(self, kind: DataClass, before: datetime) -> int:
        if kind is DataClass.TITLES:
            return await self._execute(
                pings.update()
                .where(pings.c.start_time < before, pings.c.title.is_not(None))
                .values(title=None)
            )
        if kind is DataClass.ROLLUPS:
            return await self._execute(usage_hourly.delete().where(usage_hourly.c.hour < before))
        table = _TABLES[kind]
        if self._postgresql:
            return await self._drop_months(table.name, before)
        condition = table.c.start_time < before
        if table is pings:
            condition = sa.and_(condition, sa.not_(pings.c.pending))  # never an underived ping
        return await self._execute(table.delete().where(condition))

    async def _execute(self, statement: sa.Executable) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(statement)
            return int(result.rowcount or 0)

    async def _drop_months(self, table: str, before: datetime) -> int:
        """Drop the partitions whose whole month lies before `before`."""
        async with self._engine.begin() as conn:
            names = await conn.scalars(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i"
                    " JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent"
                    " WHERE p.relname = :table"
                ),
                {"table": table},
            )
            dropped = 0
            for name in sorted(names):
                found = _PARTITION.match(name)
                if found is None or found["table"] != table:
                    continue
                month = datetime(int(found["year"]), int(found["month"]), 1, tzinfo=UTC)
                if next_month(month) <= before:
                    await conn.execute(sa.text(f'DROP TABLE "{name}"'))
                    dropped += 1
            return dropped
