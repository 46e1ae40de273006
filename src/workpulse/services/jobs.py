"""Scheduled jobs: claiming runs under a database lease, running them, retrying failures.

Safe with any number of scheduler processes: a run is claimed by inserting its (job, scheduled
time) row, which one process alone can do; a run whose holder died (its lease ran out) or whose
retry is due is taken over by one conditional update (adapters/db/jobs.py). The holder renews
its lease while the job works. Jobs take "now" from the clock and are idempotent and
transactional per unit of work (an organization, a user-day), so a run taken over after a crash
redoes only what was not committed.

The jobs themselves (`standard_jobs`): daily summaries, idle and overtime alerts (with closing
sessions silent past the organization's timeout), retention, and the run log's own cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workpulse.domain.ids import OrganizationId
from workpulse.domain.jobs import (
    MAX_ATTEMPTS,
    JobRun,
    Outcome,
    Schedule,
    after_failure,
    backoff,
    describe_error,
)
from workpulse.domain.organizations import Organization
from workpulse.domain.retention import RetentionPolicy
from workpulse.services import alerts, retention, sessions, summaries
from workpulse.services.ports import (
    Clock,
    DataLifecycle,
    JobRunStore,
    Notifier,
    PartitionKeeper,
    UnitOfWorkFactory,
)

# A job's body gets "now" (from the clock) and returns a line for the run log.
Body = Callable[[datetime], Coroutine[Any, Any, str]]

ORGANIZATION_PAGE = 500
LEASE_LOST = "lease lost: another scheduler took the run over"


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    schedule: Schedule
    body: Body


@dataclass(frozen=True, slots=True)
class Timing:
    lease: timedelta = timedelta(seconds=60)
    backoff_base: timedelta = timedelta(seconds=10)


class JobFailed(Exception):
    """Some units of a job failed; the others were done (and stay done)."""


# --- Claiming and running ---------------------------------------------------------------------


async def claim_due(
    jobs: Sequence[Job],
    *,
    runs: JobRunStore,
    clock: Clock,
    timing: Timing,
    busy: Collection[str] = (),
    tried: dict[str, datetime] | None = None,
) -> list[tuple[Job, JobRun]]:
    """Claim what is due now for the jobs not `busy` in this process: runs to take over
    (holder gone, retry due) first, then each job's latest scheduled time. `tried` remembers
    per job the latest scheduled time this process already tried to claim (and is updated),
    so a process asks the database once per scheduled time, not once per tick."""
    now = clock.now()
    lease = now + timing.lease
    free = {job.name: job for job in jobs if job.name not in busy}
    claimed: list[tuple[Job, JobRun]] = []
    for run in await runs.expired(list(free), now):
        job = free.get(run.job)
        if job is None:
            continue
        if run.outcome is Outcome.RUNNING and run.attempt >= MAX_ATTEMPTS:
            # The holder of the last attempt died: that attempt failed too.
            await runs.finish(
                run,
                outcome=Outcome.FAILED,
                now=now,
                error="lease expired: the scheduler running it stopped",
                detail=None,
                lease=None,
            )
            continue
        taken = await runs.take_over(run, now=now, lease=lease)
        if taken is not None:
            claimed.append((job, taken))
            del free[job.name]
    for job in free.values():
        slot = job.schedule.latest(now)
        if tried is not None and tried.get(job.name) == slot:
            continue
        fresh = await runs.claim(job.name, slot, now=now, lease=lease)
        if tried is not None:
            tried[job.name] = slot  # asked (a failed claim raised before this: asked again)
        if fresh is not None:
            claimed.append((job, fresh))
    return claimed


async def execute(
    job: Job, run: JobRun, *, runs: JobRunStore, clock: Clock, timing: Timing
) -> Outcome | None:
    """Run one attempt and record how it ended: succeeded, retrying after a backoff, or
    failed after MAX_ATTEMPTS. Returns the outcome recorded, None if the run was taken over
    meanwhile (the lease could not be renewed: the other holder records it)."""
    heartbeat = asyncio.create_task(_keep_lease(run, runs=runs, clock=clock, timing=timing))
    body = asyncio.create_task(job.body(clock.now()))
    try:
        await asyncio.wait({heartbeat, body}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not body.done():
            body.cancel()
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    if not body.done() or body.cancelled():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await body
        return None
    now = clock.now()
    exc = body.exception()
    if exc is None:
        outcome, error, detail, retry_at = Outcome.SUCCEEDED, None, body.result(), None
    else:
        outcome = after_failure(run.attempt)
        error, detail = describe_error(exc), None
        retry_at = now + backoff(run.attempt, timing.backoff_base)
        if outcome is Outcome.FAILED:
            retry_at = None
    recorded = await runs.finish(
        run, outcome=outcome, now=now, error=error, detail=detail, lease=retry_at
    )
    return outcome if recorded else None


async def _keep_lease(run: JobRun, *, runs: JobRunStore, clock: Clock, timing: Timing) -> None:
    """Renews the lease every third of its length; returns when it could not (taken over)."""
    every = timing.lease.total_seconds() / 3
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):  # a failed renewal is retried at the next beat
            if not await runs.renew(run, clock.now() + timing.lease):
                return


# --- The jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dependencies:
    uow_factory: UnitOfWorkFactory
    clock: Clock
    notifier: Notifier
    runs: JobRunStore
    sessions: sessions.Dependencies
    lifecycle: DataLifecycle
    partitions: PartitionKeeper
    policy: RetentionPolicy
    history: timedelta


@dataclass(frozen=True, slots=True)
class Every:
    """How often each job runs. Summaries every 15 minutes (a divisor of it, in tests) fall
    on every real zone's midnight, since all offsets are multiples of 15 minutes."""

    summaries: timedelta = timedelta(minutes=15)
    idle: timedelta = timedelta(minutes=1)
    overtime: timedelta = timedelta(minutes=5)
    retention: timedelta = timedelta(days=1)


def standard_jobs(deps: Dependencies, every: Every | None = None) -> list[Job]:
    every = every or Every()

    async def daily_summaries(now: datetime) -> str:
        async def one(organization: Organization) -> int:
            written = await summaries.summarize(organization, uow_factory=deps.uow_factory, now=now)
            return len(written)

        return f"{await for_each_organization(deps.uow_factory, one)} user-days summarized"

    async def idle_alerts(now: datetime) -> str:
        closed = 0

        async def one(organization: Organization) -> int:
            nonlocal closed
            raised = await alerts.check_idle(
                organization, uow_factory=deps.uow_factory, notifier=deps.notifier, now=now
            )
            closed += len(await sessions.close_stale(organization.id, deps=deps.sessions))
            return raised

        raised = await for_each_organization(deps.uow_factory, one)
        return f"{raised} idle alerts, {closed} stale sessions closed"

    async def overtime_alerts(now: datetime) -> str:
        async def one(organization: Organization) -> int:
            return await alerts.check_overtime(
                organization, uow_factory=deps.uow_factory, notifier=deps.notifier, now=now
            )

        return f"{await for_each_organization(deps.uow_factory, one)} overtime alerts"

    async def apply_retention(now: datetime) -> str:
        await retention.prepare_partitions(deps.partitions, now)
        removed = await retention.apply_retention(
            lifecycle=deps.lifecycle, policy=deps.policy, now=now
        )
        forgotten = await deps.runs.forget_before(now - deps.history)
        parts = [f"{kind.value} {count}" for kind, count in sorted(removed.items())]
        return f"removed: {', '.join(parts) or 'nothing'}; {forgotten} old job runs forgotten"

    return [
        Job("daily-summaries", Schedule(every.summaries), daily_summaries),
        Job("idle-alerts", Schedule(every.idle), idle_alerts),
        Job("overtime-alerts", Schedule(every.overtime), overtime_alerts),
        # 03:00 UTC, away from the summaries' busiest times (midnights in Europe and America).
        Job("retention", Schedule(every.retention, offset=timedelta(hours=3)), apply_retention),
    ]


async def for_each_organization(
    uow_factory: UnitOfWorkFactory, one: Callable[[Organization], Awaitable[int]]
) -> int:
    """Calls `one` for every organization, a page at a time; one organization's failure does
    not stop the others, but fails the run (so it is retried) once all were tried."""
    total = 0
    failed: list[str] = []
    after: OrganizationId | None = None
    while True:
        async with uow_factory(readonly=True) as uow:
            page = await uow.directory.organizations(after, ORGANIZATION_PAGE)
        for organization in page:
            try:
                total += await one(organization)
            except Exception as exc:
                failed.append(f"{organization.id}: {describe_error(exc)}")
        if len(page) < ORGANIZATION_PAGE:
            break
        after = page[-1].id
    if failed:
        raise JobFailed(f"{len(failed)} organization(s) failed; first: {failed[0]}")
    return total
