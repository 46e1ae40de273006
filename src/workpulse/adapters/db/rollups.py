"""Hourly usage rollups (`usage_hourly`) and the work-session spans that attribute time to
projects."""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.batching import rows_in_groups
from workpulse.adapters.db.tables import usage_hourly, work_sessions
from workpulse.adapters.db.tenancy import of_tenant, tenant
from workpulse.adapters.db.types import UtcDateTime
from workpulse.domain.ids import OrganizationId, ProjectId, UserId
from workpulse.domain.reports import ProjectSpan, Usage
from workpulse.services.ports import HourlyRows, UserKey, UserUsage

_INSERT_CHUNK = 500
DIMENSIONS = ("user_id", "app_name", "domain", "project_id")


@functools.lru_cache(maxsize=256)
def _totals_statement(windows: int, by: frozenset[str], some_users: bool) -> sa.Select[Any]:
    """Built once per shape (number of windows, dimensions, user filter) with bound parameters:
    a report's request pays no statement construction."""
    hour = usage_hourly.c.hour
    window = sa.case(
        *(
            (
                sa.and_(
                    hour >= sa.bindparam(f"s{index}", type_=UtcDateTime()),
                    hour < sa.bindparam(f"e{index}", type_=UtcDateTime()),
                ),
                index,
            )
            for index in range(windows)
        )
    ).label("window")
    grouped = [usage_hourly.c[name] for name in DIMENSIONS if name in by]
    query = (
        sa.select(window, *grouped, usage_hourly.c.idle, sa.func.sum(usage_hourly.c.micros))
        .where(
            usage_hourly.c.organization_id == sa.bindparam("org", type_=sa.Uuid()),
            hour >= sa.bindparam("s0", type_=UtcDateTime()),
            hour < sa.bindparam(f"e{windows - 1}", type_=UtcDateTime()),
        )
        .group_by(window, *grouped, usage_hourly.c.idle)
    )
    if some_users:
        query = query.where(usage_hourly.c.user_id.in_(sa.bindparam("users", expanding=True)))
    return query


# Executed with one parameter set per user (one round trip).
_DELETE_HOURS = usage_hourly.delete().where(
    usage_hourly.c.organization_id == sa.bindparam("org"),
    usage_hourly.c.user_id == sa.bindparam("user"),
    usage_hourly.c.hour >= sa.bindparam("start"),
    usage_hourly.c.hour < sa.bindparam("end"),
)


# One statement for many users (of any organizations): rows outside a user's own range are
# dropped by the caller.
_ROWS_OF = sa.select(usage_hourly).where(
    usage_hourly.c.organization_id.in_(sa.bindparam("orgs", expanding=True)),
    usage_hourly.c.user_id.in_(sa.bindparam("users", expanding=True)),
    usage_hourly.c.hour >= sa.bindparam("start"),
    usage_hourly.c.hour < sa.bindparam("end"),
)
_SPANS_AROUND = (
    sa.select(
        work_sessions.c.organization_id,
        work_sessions.c.user_id,
        work_sessions.c.start_time,
        work_sessions.c.end_time,
        work_sessions.c.project_id,
    )
    .where(
        work_sessions.c.organization_id.in_(sa.bindparam("orgs", expanding=True)),
        work_sessions.c.user_id.in_(sa.bindparam("users", expanding=True)),
        work_sessions.c.start_time < sa.bindparam("end"),
        sa.or_(
            work_sessions.c.end_time.is_(None), work_sessions.c.end_time > sa.bindparam("start")
        ),
    )
    .order_by(work_sessions.c.start_time)
)


class SqlRollupStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def replace(self, fresh: Sequence[HourlyRows]) -> None:
        if not fresh:
            return
        await self._conn.execute(
            _DELETE_HOURS,
            [
                {
                    "org": tenant(f.user.organization_id, "rollups replaced"),
                    "user": f.user.user_id,
                    "start": f.start,
                    "end": f.end,
                }
                for f in fresh
            ],
        )
        values = [
            {
                "organization_id": f.user.organization_id,
                "user_id": f.user.user_id,
                "hour": row.hour,
                "app_name": row.app_name,
                "domain": row.domain,
                "idle": row.idle,
                "project_id": row.project_id,
                "micros": row.micros,
            }
            for f in fresh
            for row in f.rows
        ]
        for offset in range(0, len(values), _INSERT_CHUNK):
            await self._conn.execute(usage_hourly.insert(), values[offset : offset + _INSERT_CHUNK])

    async def rows_of(
        self, hours: Mapping[UserKey, tuple[datetime, datetime]]
    ) -> Mapping[UserKey, Sequence[Usage]]:
        found: dict[UserKey, list[Usage]] = defaultdict(list)
        for row in await rows_in_groups(self._conn, _ROWS_OF, hours):
            user = UserKey(OrganizationId(row.organization_id), UserId(row.user_id))
            if user in hours and hours[user][0] <= row.hour < hours[user][1]:
                found[user].append(
                    Usage(
                        hour=row.hour,
                        app_name=row.app_name,
                        domain=row.domain,
                        idle=row.idle,
                        project_id=None if row.project_id is None else ProjectId(row.project_id),
                        micros=row.micros,
                    )
                )
        return found

    async def spans_around(
        self, windows: Mapping[UserKey, tuple[datetime, datetime]]
    ) -> Mapping[UserKey, Sequence[ProjectSpan]]:
        found: dict[UserKey, list[ProjectSpan]] = defaultdict(list)
        for row in await rows_in_groups(self._conn, _SPANS_AROUND, windows):
            user = UserKey(OrganizationId(row.organization_id), UserId(row.user_id))
            if user in windows:
                start, end = windows[user]
                if row.start_time < end and (row.end_time is None or row.end_time > start):
                    found[user].append(
                        ProjectSpan(
                            row.start_time,
                            row.end_time,
                            None if row.project_id is None else ProjectId(row.project_id),
                        )
                    )
        return found

    async def read(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[UserUsage]:
        # A range on hour under (user_id, hour) or (organization_id, hour).
        query = sa.select(
            usage_hourly.c.user_id,
            usage_hourly.c.hour,
            usage_hourly.c.app_name,
            usage_hourly.c.domain,
            usage_hourly.c.idle,
            usage_hourly.c.project_id,
            usage_hourly.c.micros,
        ).where(
            of_tenant(usage_hourly, organization_id),
            usage_hourly.c.hour >= start,
            usage_hourly.c.hour < end,
        )
        if user_ids is not None:
            query = query.where(usage_hourly.c.user_id.in_(user_ids))
        return [
            UserUsage(
                UserId(row.user_id),
                Usage(
                    row.hour,
                    row.app_name,
                    row.domain,
                    row.idle,
                    None if row.project_id is None else ProjectId(row.project_id),
                    row.micros,
                ),
            )
            for row in await self._conn.execute(query)
        ]

    async def totals(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        windows: Sequence[tuple[datetime, datetime]],
        by: frozenset[str],
    ) -> Sequence[tuple[int, UserUsage]]:
        if not windows:
            return []
        unknown = by - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown rollup dimensions: {sorted(unknown)}")
        query = _totals_statement(len(windows), by, user_ids is not None)
        params: dict[str, Any] = {"org": tenant(organization_id, "rollup sums")}
        for index, (start, end) in enumerate(windows):
            params[f"s{index}"], params[f"e{index}"] = start, end
        if user_ids is not None:
            params["users"] = list(user_ids)
        names = [name for name in DIMENSIONS if name in by]
        at = {name: names.index(name) + 1 for name in names}  # column positions after `window`
        user_at, app_at = at.get("user_id"), at.get("app_name")
        domain_at, project_at = at.get("domain"), at.get("project_id")
        idle_at = len(names) + 1
        nobody = UserId(uuid.UUID(int=0))
        found: list[tuple[int, UserUsage]] = []
        for row in (await self._conn.execute(query, params)).all():
            index = row[0]
            if index is None:  # an hour between two windows' whole hours (a partial one)
                continue
            project = None if project_at is None else row[project_at]
            found.append(
                (
                    index,
                    UserUsage(
                        nobody if user_at is None else row[user_at],
                        Usage(
                            windows[index][0],
                            "" if app_at is None else row[app_at],
                            None if domain_at is None else row[domain_at],
                            row[idle_at],
                            None if project is None else ProjectId(project),
                            int(row[idle_at + 1]),
                        ),
                    ),
                )
            )
        return found

    async def project_spans(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        windows: Sequence[tuple[datetime, datetime]],
    ) -> Mapping[UserId, Sequence[ProjectSpan]]:
        spans: dict[UserId, list[ProjectSpan]] = defaultdict(list)
        if not windows:
            return spans
        touching = sa.or_(
            *(
                sa.and_(
                    work_sessions.c.start_time < end,
                    sa.or_(work_sessions.c.end_time.is_(None), work_sessions.c.end_time > start),
                )
                for start, end in windows
            )
        )
        query = sa.select(
            work_sessions.c.user_id,
            work_sessions.c.start_time,
            work_sessions.c.end_time,
            work_sessions.c.project_id,
        ).where(of_tenant(work_sessions, organization_id), touching)
        if user_ids is not None:
            query = query.where(work_sessions.c.user_id.in_(user_ids))
        for row in await self._conn.execute(query.order_by(work_sessions.c.start_time)):
            spans[UserId(row.user_id)].append(
                ProjectSpan(
                    row.start_time,
                    row.end_time,
                    None if row.project_id is None else ProjectId(row.project_id),
                )
            )
        return spans
