"""The scheduler's runner on both databases, with a clock the tests drive: a run is claimed
once however many schedulers ask, failures are retried with backoff up to three attempts and
recorded, a run whose holder died is taken over when its lease ends."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from workpulse.adapters.db.jobs import SqlJobRuns
from workpulse.adapters.notifier import Event, InProcessNotifier
from workpulse.bootstrap import Container
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.jobs import JobRun, Outcome, Schedule
from workpulse.domain.organizations import Organization, OrganizationSettings
from workpulse.domain.roles import Role
from workpulse.domain.users import User
from workpulse.services import jobs, sessions

START = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
TIMING = jobs.Timing(lease=timedelta(seconds=60), backoff_base=timedelta(seconds=10))


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, by: timedelta) -> None:
        self.current += by


class Recorder:
    """Collects the events published through a real in-process notifier."""

    def __init__(self) -> None:
        self.notifier = InProcessNotifier()
        self.events: list[Event] = []
        self.notifier.listen(self._record)

    async def _record(self, event: Event) -> None:
        self.events.append(event)


def session_deps(container: Container, clock: Clock, recorder: Recorder) -> sessions.Dependencies:
    return dataclasses.replace(container.session_deps, clock=clock, notifier=recorder.notifier)


async def organization_with(
    container: Container,
    zones: Sequence[str | None],
    *,
    timezone: str = "UTC",
    created_at: datetime = START,
    settings: OrganizationSettings | None = None,
) -> tuple[Organization, list[User]]:
    """An organization (in `timezone`) with one employee per entry of `zones` (None: the
    employee has no zone of their own)."""
    organization = Organization(
        id=OrganizationId(uuid.uuid4()),
        name="Scheduled",
        plan_type="free",
        timezone=timezone,
        settings=settings or OrganizationSettings(),
        created_at=created_at,
    )
    users = [
        User(
            id=UserId(uuid.uuid4()),
            organization_id=organization.id,
            email=f"s{n}-{uuid.uuid4().hex[:8]}@example.com",
            name=f"User {n}",
            role=Role.EMPLOYEE,
            is_active=True,
            timezone=zone,
            created_at=created_at,
        )
        for n, zone in enumerate(zones)
    ]
    async with container.database() as uow:
        await uow.organizations.add(organization)
        for user in users:
            await uow.users.add(user, "not-a-hash")
        await uow.commit()
    return organization, users


def job_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class Body:
    """A job body that fails its first `failures` calls and counts calls per "now"."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[datetime] = []

    async def __call__(self, now: datetime) -> str:
        self.calls.append(now)
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"failure {len(self.calls)}")
        return f"done at {now.isoformat()}"


async def run_due(
    job: jobs.Job, runs: SqlJobRuns, clock: Clock, tried: dict[str, datetime] | None = None
) -> list[Outcome | None]:
    """One scheduler tick: claim what is due and run it to its end."""
    claimed = await jobs.claim_due([job], runs=runs, clock=clock, timing=TIMING, tried=tried)
    return [await jobs.execute(j, run, runs=runs, clock=clock, timing=TIMING) for j, run in claimed]


async def log_of(runs: SqlJobRuns, name: str) -> list[JobRun]:
    return list(await runs.recent(job=name, limit=100))


async def test_a_run_is_claimed_by_exactly_one_of_many_schedulers(container: Container) -> None:
    name = job_name()
    schedulers = [SqlJobRuns(container.engine) for _ in range(8)]
    lease = START + TIMING.lease
    claims = await asyncio.gather(
        *(runs.claim(name, START, now=START, lease=lease) for runs in schedulers)
    )
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert (won[0].job, won[0].scheduled_for, won[0].attempt) == (name, START, 1)
    assert won[0].outcome is Outcome.RUNNING


async def test_a_job_that_fails_twice_then_succeeds_is_retried_with_backoff_and_recorded(
    container: Container,
) -> None:
    runs, clock, body = SqlJobRuns(container.engine), Clock(START), Body(failures=2)
    job = jobs.Job(job_name(), Schedule(timedelta(days=1)), body)

    assert await run_due(job, runs, clock) == [Outcome.RETRYING]
    (first,) = await log_of(runs, job.name)
    assert (first.attempt, first.outcome) == (1, Outcome.RETRYING)
    assert first.error == "RuntimeError: failure 1"
    assert first.lease == START + timedelta(seconds=10)

    clock.advance(timedelta(seconds=9))
    assert await run_due(job, runs, clock) == [], "retried before its backoff"
    clock.advance(timedelta(seconds=1))
    assert await run_due(job, runs, clock) == [Outcome.RETRYING]
    (second,) = await log_of(runs, job.name)
    assert (second.attempt, second.error) == (2, "RuntimeError: failure 2")
    assert second.lease == clock.now() + timedelta(seconds=40), "the second wait is 4x"

    clock.advance(timedelta(seconds=39))
    assert await run_due(job, runs, clock) == []
    clock.advance(timedelta(seconds=1))
    assert await run_due(job, runs, clock) == [Outcome.SUCCEEDED]
    (done,) = await log_of(runs, job.name)
    assert (done.attempt, done.outcome, done.error) == (3, Outcome.SUCCEEDED, None)
    assert done.scheduled_for == job.schedule.latest(START)
    assert done.finished_at == clock.now()
    assert done.detail == f"done at {clock.now().isoformat()}"
    assert len(body.calls) == 3


async def test_a_job_failing_three_times_is_recorded_failed_and_not_tried_again(
    container: Container,
) -> None:
    runs, clock, body = SqlJobRuns(container.engine), Clock(START), Body(failures=99)
    job = jobs.Job(job_name(), Schedule(timedelta(days=1)), body)
    outcomes = []
    for _ in range(6):
        outcomes += await run_due(job, runs, clock)
        clock.advance(timedelta(minutes=5))
    assert outcomes == [Outcome.RETRYING, Outcome.RETRYING, Outcome.FAILED]
    (failed,) = await log_of(runs, job.name)
    assert (failed.attempt, failed.outcome) == (3, Outcome.FAILED)
    assert failed.error == "RuntimeError: failure 3"
    assert failed.lease is None
    assert len(body.calls) == 3


async def test_a_run_whose_scheduler_died_is_taken_over_once_its_lease_ends(
    container: Container,
) -> None:
    name = job_name()
    dead, alive, clock = SqlJobRuns(container.engine), SqlJobRuns(container.engine), Clock(START)
    body = Body()
    job = jobs.Job(name, Schedule(timedelta(days=1)), body)
    # The first scheduler claims the run and dies before finishing it.
    assert len(await jobs.claim_due([job], runs=dead, clock=clock, timing=TIMING)) == 1

    clock.advance(TIMING.lease - timedelta(seconds=1))
    assert await run_due(job, alive, clock) == [], "taken over while the lease held"
    clock.advance(timedelta(seconds=1))
    assert await run_due(job, alive, clock) == [Outcome.SUCCEEDED]
    (run,) = await log_of(alive, name)
    assert (run.attempt, run.outcome) == (2, Outcome.SUCCEEDED)
    assert run.scheduled_for == job.schedule.latest(START)
    assert body.calls == [clock.now()]


async def test_a_holder_that_outlived_its_lease_cannot_record_over_the_one_that_took_over(
    container: Container,
) -> None:
    name = job_name()
    slow, other, clock = SqlJobRuns(container.engine), SqlJobRuns(container.engine), Clock(START)
    run = await slow.claim(name, START, now=START, lease=START + TIMING.lease)
    assert run is not None
    clock.advance(TIMING.lease)
    taken = await other.take_over(run, now=clock.now(), lease=clock.now() + TIMING.lease)
    assert taken is not None
    assert taken.attempt == 2
    assert not await slow.renew(run, clock.now() + TIMING.lease)
    recorded = await slow.finish(
        run, outcome=Outcome.SUCCEEDED, now=clock.now(), error=None, detail="late", lease=None
    )
    assert not recorded
    assert await other.take_over(run, now=clock.now(), lease=clock.now()) is None
    (current,) = await log_of(other, name)
    assert (current.attempt, current.outcome) == (2, Outcome.RUNNING)


async def test_a_holder_dying_on_the_last_attempt_leaves_the_run_failed(
    container: Container,
) -> None:
    runs, clock, body = SqlJobRuns(container.engine), Clock(START), Body(failures=2)
    job = jobs.Job(job_name(), Schedule(timedelta(days=1)), body)
    await run_due(job, runs, clock)
    clock.advance(timedelta(seconds=10))
    await run_due(job, runs, clock)
    clock.advance(timedelta(seconds=40))
    # The third attempt is claimed, and its scheduler dies.
    assert len(await jobs.claim_due([job], runs=runs, clock=clock, timing=TIMING)) == 1
    clock.advance(TIMING.lease)
    assert await run_due(job, runs, clock) == []
    (run,) = await log_of(runs, job.name)
    assert (run.attempt, run.outcome) == (3, Outcome.FAILED)
    assert run.error is not None
    assert "lease expired" in run.error
    assert len(body.calls) == 2


async def test_two_schedulers_ticking_over_an_hour_run_every_scheduled_time_once(
    container: Container,
) -> None:
    name = job_name()
    body = Body()
    job = jobs.Job(name, Schedule(timedelta(minutes=1)), body)
    clock = Clock(START)
    schedulers = [(SqlJobRuns(container.engine), dict[str, datetime]()) for _ in range(2)]
    for _ in range(60 * 4):  # ticks every 15 s for an hour
        await asyncio.gather(*(run_due(job, runs, clock, tried) for runs, tried in schedulers))
        clock.advance(timedelta(seconds=15))
    slots = [START + timedelta(minutes=m) for m in range(60)]
    assert Counter(body.calls) == Counter(slots), "each minute ran exactly once"
    log = await log_of(schedulers[0][0], name)
    assert sorted(r.scheduled_for for r in log) == slots
    assert {(r.attempt, r.outcome) for r in log} == {(1, Outcome.SUCCEEDED)}


async def test_old_finished_runs_are_forgotten(container: Container) -> None:
    runs = SqlJobRuns(container.engine)
    name = job_name()
    for days in (40, 10):
        at = START - timedelta(days=days)
        run = await runs.claim(name, at, now=at, lease=at + TIMING.lease)
        assert run is not None
        await runs.finish(
            run, outcome=Outcome.SUCCEEDED, now=at, error=None, detail=None, lease=None
        )
    await runs.forget_before(START - timedelta(days=30))
    assert [r.scheduled_for for r in await log_of(runs, name)] == [START - timedelta(days=10)]
