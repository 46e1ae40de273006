"""Daily summary rows, and the rollup hours written since the summaries were computed.

`computed_at` and `usage_hourly.written_at` both come from the database's clock, so comparing
them needs no agreement between the scheduler's clock and the workers'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.tables import daily_summaries, usage_hourly
from workpulse.adapters.db.tenancy import of_tenant
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.summaries import DailySummary, Entry

_CHUNK = 500
_RECOMPUTED = (
    "timezone",
    "active_seconds",
    "idle_seconds",
    "sessions_count",
    "top_apps",
    "top_domains",
    "first_activity_at",
    "last_activity_at",
)


def _summary(row: sa.Row[Any]) -> DailySummary:
    return DailySummary(
        organization_id=OrganizationId(row.organization_id),
        user_id=UserId(row.user_id),
        day=row.date,
        timezone=row.timezone,
        active_seconds=row.active_seconds,
        idle_seconds=row.idle_seconds,
        sessions_count=row.sessions_count,
        top_apps=tuple(Entry(e["app_name"], e["seconds"]) for e in row.top_apps),
        top_domains=tuple(Entry(e["domain"], e["seconds"]) for e in row.top_domains),
        first_activity_at=row.first_activity_at,
        last_activity_at=row.last_activity_at,
        computed_at=row.computed_at,
    )


class SqlSummaryStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    async def upsert(self, summaries: Sequence[DailySummary]) -> None:
        if not summaries:
            return
        rows = [
            {
                "organization_id": summary.organization_id,
                "user_id": summary.user_id,
                "date": summary.day,
                "timezone": summary.timezone,
                "active_seconds": summary.active_seconds,
                "idle_seconds": summary.idle_seconds,
                "sessions_count": summary.sessions_count,
                "top_apps": [{"app_name": e.name, "seconds": e.seconds} for e in summary.top_apps],
                "top_domains": [
                    {"domain": e.name, "seconds": e.seconds} for e in summary.top_domains
                ],
                "first_activity_at": summary.first_activity_at,
                "last_activity_at": summary.last_activity_at,
            }
            for summary in summaries
        ]
        for offset in range(0, len(rows), _CHUNK):
            statement = self._insert(daily_summaries).values(rows[offset : offset + _CHUNK])
            changed = {name: statement.excluded[name] for name in _RECOMPUTED}
            await self._conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["user_id", "date"],
                    set_={**changed, "computed_at": sa.func.now()},
                )
            )

    async def get(
        self, organization_id: OrganizationId, user_id: UserId, day: date
    ) -> DailySummary | None:
        row = (
            await self._conn.execute(
                sa.select(daily_summaries).where(
                    of_tenant(daily_summaries, organization_id),
                    daily_summaries.c.user_id == user_id,
                    daily_summaries.c.date == day,
                )
            )
        ).first()
        return None if row is None else _summary(row)

    async def latest(self, organization_id: OrganizationId, since: date) -> Mapping[UserId, date]:
        rows = await self._conn.execute(
            sa.select(daily_summaries.c.user_id, sa.func.max(daily_summaries.c.date))
            .where(of_tenant(daily_summaries, organization_id), daily_summaries.c.date >= since)
            .group_by(daily_summaries.c.user_id)
        )
        return {UserId(user_id): _date(day) for user_id, day in rows}

    async def changed_hours(
        self, organization_id: OrganizationId, *, margin: timedelta, since: datetime
    ) -> Sequence[tuple[UserId, datetime]]:
        last = (
            await self._conn.execute(
                sa.select(sa.func.max(daily_summaries.c.computed_at)).where(
                    of_tenant(daily_summaries, organization_id)
                )
            )
        ).scalar()
        if last is None:
            return []
        rows = await self._conn.execute(
            sa.select(usage_hourly.c.user_id, usage_hourly.c.hour)
            .where(
                of_tenant(usage_hourly, organization_id),
                usage_hourly.c.written_at > last - margin,
                usage_hourly.c.hour >= since,
            )
            .distinct()
        )
        return [(UserId(user_id), hour) for user_id, hour in rows]


def _date(value: date | str) -> date:
    """max() over a date column comes back as text on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(value)
