"""The scheduler's run log and lease (`job_runs`), and the list of tenants jobs go over.

A claim is `INSERT ... ON CONFLICT (job, scheduled_for) DO NOTHING RETURNING`: of any number of
scheduler processes claiming one run, exactly one gets the row back. A take-over is one
conditional `UPDATE ... WHERE attempt = :read AND lease <= :now RETURNING`: on PostgreSQL a
second updater waits for the first, re-reads the row and no longer matches; SQLite writers are
serialized. `attempt` fences a holder that outlived its lease: its `finish` matches no row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workpulse.adapters.db.organizations import _organization
from workpulse.adapters.db.tables import job_runs, organizations
from workpulse.domain.ids import OrganizationId
from workpulse.domain.jobs import JobRun, Outcome
from workpulse.domain.organizations import Organization

_OPEN = (Outcome.RUNNING.value, Outcome.RETRYING.value)


def _run(row: sa.Row[Any]) -> JobRun:
    return JobRun(
        id=row.id,
        job=row.job,
        scheduled_for=row.scheduled_for,
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=Outcome(row.outcome),
        error=row.error,
        attempt=row.attempt,
        lease=row.lease,
        detail=row.detail,
    )


class SqlJobRuns:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            if self._sqlite:
                await conn.execution_options(sqlite_begin="DEFERRED")
            yield conn

    async def _one(self, statement: sa.Executable) -> sa.Row[Any] | None:
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).first()

    async def claim(
        self, job: str, scheduled_for: datetime, *, now: datetime, lease: datetime
    ) -> JobRun | None:
        statement = (
            self._insert(job_runs)
            .values(
                job=job,
                scheduled_for=scheduled_for,
                started_at=now,
                outcome=Outcome.RUNNING.value,
                attempt=1,
                lease=lease,
            )
            .on_conflict_do_nothing(index_elements=["job", "scheduled_for"])
            .returning(*job_runs.c)
        )
        row = await self._one(statement)
        return None if row is None else _run(row)

    async def expired(self, jobs: Sequence[str], now: datetime) -> Sequence[JobRun]:
        if not jobs:
            return []
        async with self._reading() as conn:
            rows = await conn.execute(
                sa.select(job_runs)
                .where(
                    job_runs.c.outcome.in_(_OPEN),
                    job_runs.c.lease <= now,
                    job_runs.c.job.in_(jobs),
                )
                .order_by(job_runs.c.scheduled_for)
            )
            return [_run(row) for row in rows]

    async def take_over(self, run: JobRun, *, now: datetime, lease: datetime) -> JobRun | None:
        statement = (
            job_runs.update()
            .where(
                job_runs.c.id == run.id,
                job_runs.c.attempt == run.attempt,
                job_runs.c.outcome.in_(_OPEN),
                job_runs.c.lease <= now,
            )
            .values(
                attempt=job_runs.c.attempt + 1,
                outcome=Outcome.RUNNING.value,
                started_at=now,
                finished_at=None,
                lease=lease,
            )
            .returning(*job_runs.c)
        )
        row = await self._one(statement)
        return None if row is None else _run(row)

    async def renew(self, run: JobRun, lease: datetime) -> bool:
        statement = (
            job_runs.update()
            .where(
                job_runs.c.id == run.id,
                job_runs.c.attempt == run.attempt,
                job_runs.c.outcome == Outcome.RUNNING.value,
            )
            .values(lease=lease)
            .returning(job_runs.c.id)
        )
        return await self._one(statement) is not None

    async def finish(
        self,
        run: JobRun,
        *,
        outcome: Outcome,
        now: datetime,
        error: str | None,
        detail: str | None,
        lease: datetime | None,
    ) -> bool:
        statement = (
            job_runs.update()
            .where(
                job_runs.c.id == run.id,
                job_runs.c.attempt == run.attempt,
                job_runs.c.outcome == Outcome.RUNNING.value,
            )
            .values(outcome=outcome.value, finished_at=now, error=error, detail=detail, lease=lease)
            .returning(job_runs.c.id)
        )
        return await self._one(statement) is not None

    async def recent(self, *, job: str | None, limit: int) -> Sequence[JobRun]:
        query = sa.select(job_runs).order_by(job_runs.c.scheduled_for.desc(), job_runs.c.job)
        if job is not None:
            query = query.where(job_runs.c.job == job)
        async with self._reading() as conn:
            return [_run(row) for row in await conn.execute(query.limit(limit))]

    async def forget_before(self, moment: datetime) -> int:
        statement = job_runs.delete().where(
            job_runs.c.scheduled_for < moment, job_runs.c.outcome.not_in(_OPEN)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount


class SqlDirectory:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def organizations(
        self, after: OrganizationId | None, limit: int
    ) -> Sequence[Organization]:
        # Every tenant, by id, a page at a time: the scheduled jobs' walk (not a tenant query).
        query = sa.select(organizations).order_by(organizations.c.id).limit(limit)
        if after is not None:
            query = query.where(organizations.c.id > after)
        return [_organization(row) for row in await self._conn.execute(query)]
