"""The retention job as the scheduler runs it, on both databases: claimed, run with the clock's
"now", old data gone and newer kept, next months' partitions made (PostgreSQL), the run log's
old runs forgotten, the run recorded with what it removed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.services.test_jobs import TIMING, Clock, Recorder, session_deps
from tests.services.test_rollups import _organization_with_users
from workpulse.adapters.db.jobs import SqlJobRuns
from workpulse.adapters.db.partitions import partition_name
from workpulse.adapters.db.retention import SqlDataLifecycle
from workpulse.adapters.db.tables import app_usage, pings
from workpulse.bootstrap import Container
from workpulse.domain.jobs import Outcome
from workpulse.domain.pings import Ping
from workpulse.domain.retention import RetentionPolicy
from workpulse.services import ingest, jobs
from workpulse.services.ports import OwnedPing

# Data of months no other test uses, older than anything but tests/adapters/test_retention.py
# stores and after that test's cutoffs (so that neither removes the other's rows, whichever
# runs first).
OLD = datetime(2025, 9, 12, 9, 0, tzinfo=UTC)
NEWER = datetime(2025, 12, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)  # the daily run at 03:00; 92-day cutoffs: Nov 1


async def _count(container: Container, table: sa.Table, user_id: uuid.UUID) -> int:
    async with container.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id)
        )
    return int(found or 0)


async def test_the_retention_job_applies_the_policy_and_makes_partitions_ahead(
    container: Container,
) -> None:
    organization_id, (user_id,) = await _organization_with_users(container, 1)
    await ingest.store_and_derive(
        [
            OwnedPing(
                organization_id,
                user_id,
                Ping(
                    "laptop",
                    "Editor",
                    None,
                    None,
                    None,
                    False,
                    at,
                    at + timedelta(minutes=5),
                    f"j{n}",
                ),
            )
            for n, at in enumerate((OLD, NEWER))
        ],
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
    )
    clock, recorder = Clock(NOW), Recorder()
    runs = SqlJobRuns(container.engine)
    deps = jobs.Dependencies(
        uow_factory=container.database,
        clock=clock,
        notifier=recorder.notifier,
        runs=runs,
        sessions=session_deps(container, clock, recorder),
        lifecycle=SqlDataLifecycle(container.engine),
        partitions=container.partitions,
        policy=RetentionPolicy(
            raw_pings_days=92, titles_days=92, intervals_days=92, rollups_days=92
        ),
        history=timedelta(days=30),
    )
    (retention,) = [j for j in jobs.standard_jobs(deps) if j.name == "retention"]
    stale = await runs.claim("retention", NOW - timedelta(days=45), now=clock.now(), lease=NOW)
    assert stale is not None
    await runs.finish(
        stale, outcome=Outcome.SUCCEEDED, now=NOW, error=None, detail=None, lease=None
    )

    claimed = await jobs.claim_due([retention], runs=runs, clock=clock, timing=TIMING)
    assert [run.scheduled_for for _, run in claimed] == [NOW]
    (outcome,) = [
        await jobs.execute(job, run, runs=runs, clock=clock, timing=TIMING) for job, run in claimed
    ]
    assert outcome is Outcome.SUCCEEDED

    async with container.engine.connect() as conn:
        starts = [
            row.start_time
            for row in await conn.execute(
                sa.select(pings.c.start_time).where(pings.c.user_id == user_id)
            )
        ]
    assert starts == [NEWER], "the old ping went, the newer stayed"
    assert await _count(container, app_usage, user_id) == 1
    # The database is shared with other tests, whose retention runs (at today's date, after
    # NOW) may be in the log: this test's timeline is everything up to NOW.
    (run,) = [r for r in await runs.recent(job="retention", limit=100) if r.scheduled_for <= NOW]
    assert (run.scheduled_for, run.outcome) == (NOW, Outcome.SUCCEEDED)
    assert run.detail is not None
    assert "raw_pings" in run.detail
    assert "old job runs forgotten" in run.detail  # the stale run: it is no longer listed
    if container.engine.dialect.name == "postgresql":
        async with container.engine.connect() as conn:
            tables = set(
                await conn.scalars(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            )
        for month in (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)):
            assert partition_name("app_usage", month) in tables
            assert partition_name("pings", month) in tables
