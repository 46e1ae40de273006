"""The job scheduler (services/jobs.py): `workpulse scheduler`, and a background part of `serve`.

Every tick it claims what is due (in the database, so any number of scheduler processes may
run) and runs each claimed job as a task of its own, so a long summary never delays the
one-minute idle check. One run per job at a time in a process. On stop, running jobs get the
graceful timeout to finish; one still running then is cancelled and its transaction rolled
back, and another process takes the run over once its lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from workpulse.adapters.db.jobs import SqlJobRuns
from workpulse.adapters.db.retention import SqlDataLifecycle
from workpulse.bootstrap import Container
from workpulse.domain.jobs import JobRun, Outcome
from workpulse.domain.retention import RetentionPolicy
from workpulse.services import jobs
from workpulse.settings import Settings

log = structlog.get_logger(__name__)


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "workpulse_job_runs_total",
            "Job attempts run by this process, by job and outcome (succeeded, retrying, failed,"
            " lost: taken over by another scheduler).",
            ["job", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "workpulse_job_run_duration_seconds",
            "How long job attempts took in this process.",
            ["job"],
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
        )
        self.last_success = Gauge(
            "workpulse_job_last_success_timestamp_seconds",
            "When this process last finished each job successfully (Unix time).",
            ["job"],
            registry=registry,
        )


def timing(settings: Settings) -> jobs.Timing:
    return jobs.Timing(
        lease=timedelta(seconds=settings.scheduler_lease_seconds),
        backoff_base=timedelta(seconds=settings.scheduler_retry_seconds),
    )


def job_dependencies(container: Container) -> jobs.Dependencies:
    settings = container.settings
    return jobs.Dependencies(
        uow_factory=container.database,
        clock=container.clock,
        notifier=container.notifier,
        runs=SqlJobRuns(container.engine),
        sessions=container.session_deps,
        lifecycle=SqlDataLifecycle(container.engine),
        partitions=container.partitions,
        policy=RetentionPolicy(
            raw_pings_days=settings.retention_raw_pings_days,
            titles_days=settings.retention_titles_days,
            intervals_days=settings.retention_intervals_days,
            rollups_days=settings.retention_rollups_days,
        ),
        history=timedelta(days=settings.scheduler_history_days),
    )


def schedule(settings: Settings) -> jobs.Every:
    return jobs.Every(
        summaries=timedelta(seconds=settings.scheduler_summaries_seconds),
        idle=timedelta(seconds=settings.scheduler_idle_seconds),
        overtime=timedelta(seconds=settings.scheduler_overtime_seconds),
    )


async def run_scheduler(container: Container, stopping: asyncio.Event) -> None:
    settings = container.settings
    deps = job_dependencies(container)
    every = jobs.standard_jobs(deps, schedule(settings))
    metrics = JobMetrics(container.metrics)
    if settings.scheduler_metrics_port is not None:
        start_http_server(settings.scheduler_metrics_port, settings.host, container.metrics)
    when = timing(settings)
    running: dict[str, asyncio.Task[None]] = {}
    tried: dict[str, datetime] = {}
    log.info("scheduler started", jobs=[job.name for job in every])

    async def attempt(job: jobs.Job, run: JobRun) -> None:
        log.info(
            "job started",
            job=job.name,
            scheduled_for=run.scheduled_for.isoformat(),
            attempt=run.attempt,
            run_id=str(run.id),
        )
        began = time.perf_counter()
        try:
            outcome = await jobs.execute(job, run, runs=deps.runs, clock=deps.clock, timing=when)
        except Exception:
            log.exception("job could not be recorded", job=job.name, run_id=str(run.id))
            return
        seconds = time.perf_counter() - began
        label = "lost" if outcome is None else outcome.value
        metrics.runs.labels(job.name, label).inc()
        metrics.duration.labels(job.name).observe(seconds)
        if outcome is Outcome.SUCCEEDED:
            metrics.last_success.labels(job.name).set(time.time())
        log.info(
            "job finished",
            job=job.name,
            scheduled_for=run.scheduled_for.isoformat(),
            attempt=run.attempt,
            outcome=label,
            seconds=round(seconds, 3),
        )

    while not stopping.is_set():
        for name in [name for name, task in running.items() if task.done()]:
            del running[name]
        try:
            claimed = await jobs.claim_due(
                every,
                runs=deps.runs,
                clock=deps.clock,
                timing=when,
                busy=set(running),
                tried=tried,
            )
        except Exception as exc:  # the database is down: try again at the next tick
            log.warning("scheduler could not claim runs", error=repr(exc))
            claimed = []
        for job, run in claimed:
            running[job.name] = asyncio.create_task(attempt(job, run), name=f"job-{job.name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), settings.scheduler_tick_seconds)
    if running:
        # Within the lifespan's own wait for this part (serve), which is the graceful timeout.
        grace = max(1.0, settings.graceful_timeout_seconds - 2.0)
        _, pending = await asyncio.wait(running.values(), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    log.info("scheduler stopped")
