"""Scheduled jobs: when each run is due, and what happens to a run that fails or whose holder dies.

A job's scheduled times are `offset + k * every` after the UTC epoch. Each (job, scheduled time)
is one run, recorded once in the run log; the scheduler process that claims it holds a lease
until `lease`, renewed while it works. A lease that runs out (the holder crashed) lets another
process take the run over as its next attempt. A failed attempt waits `backoff(attempt)` and is
tried again, up to `MAX_ATTEMPTS`; then the run is recorded failed. Missed times are not run one
by one: only the latest one is, and the jobs look back by themselves (a summary covers every day
that ended since the last one).

Example: `Schedule(timedelta(minutes=15)).latest(10:07)` is 10:00; `backoff(1)` is 10 s,
`backoff(2)` 40 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

MAX_ATTEMPTS = 3
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_FACTOR = 4
ERROR_LENGTH = 2000
DETAIL_LENGTH = 500

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Outcome(StrEnum):
    RUNNING = "running"
    RETRYING = "retrying"  # failed; tried again once `lease` has passed
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed MAX_ATTEMPTS times


@dataclass(frozen=True, slots=True)
class Schedule:
    every: timedelta
    offset: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError("a schedule runs every positive interval")

    def latest(self, now: datetime) -> datetime:
        """The last scheduled time at or before `now`."""
        steps = (now - _EPOCH - self.offset) // self.every
        return _EPOCH + self.offset + steps * self.every

    def next_after(self, moment: datetime) -> datetime:
        return self.latest(moment) + self.every


@dataclass(frozen=True, slots=True)
class JobRun:
    id: UUID
    job: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime | None
    outcome: Outcome
    error: str | None
    attempt: int
    lease: datetime | None
    detail: str | None = None


def backoff(attempt: int, base: timedelta = BACKOFF_BASE) -> timedelta:
    """The wait after failed attempt number `attempt` (1-based): base, 4 x base, ..."""
    factor: int = BACKOFF_FACTOR ** (attempt - 1)
    return base * factor


def after_failure(attempt: int) -> Outcome:
    return Outcome.RETRYING if attempt < MAX_ATTEMPTS else Outcome.FAILED


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_LENGTH]
