"""Scheduled jobs, alerts and daily summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Protocol
from uuid import UUID

from workpulse.domain.alerts import Alert, SessionActivity
from workpulse.domain.ids import (
    OrganizationId,
    UserId,
)
from workpulse.domain.jobs import JobRun, Outcome
from workpulse.domain.organizations import Organization
from workpulse.domain.summaries import DailySummary


class JobRunStore(Protocol):
    """The run log and lease of scheduled jobs. Each call is its own transaction: a claim must
    be visible to every other scheduler at once, whatever the job then does."""

    async def claim(
        self, job: str, scheduled_for: datetime, *, now: datetime, lease: datetime
    ) -> JobRun | None:
        """Record the run as running, held until `lease`; None if it exists already."""
        ...

    async def expired(self, jobs: Sequence[str], now: datetime) -> Sequence[JobRun]:
        """Runs of these jobs whose lease has ended: holders that died, retries now due."""
        ...

    async def take_over(self, run: JobRun, *, now: datetime, lease: datetime) -> JobRun | None:
        """Start `run`'s next attempt if it is still as read (one caller wins)."""
        ...

    async def renew(self, run: JobRun, lease: datetime) -> bool: ...

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
        """Record the attempt's end, unless another process took the run over meanwhile."""
        ...

    async def recent(self, *, job: str | None, limit: int) -> Sequence[JobRun]: ...

    async def forget_before(self, moment: datetime) -> int:
        """Delete finished runs scheduled before `moment`; returns how many."""
        ...


class AlertStore(Protocol):
    async def add(self, new: Sequence[Alert]) -> Sequence[Alert]:
        """Insert those whose user has no alert with the same key; returns them."""
        ...

    async def get(self, organization_id: OrganizationId, alert_id: UUID) -> Alert | None: ...

    async def between(
        self,
        organization_id: OrganizationId,
        user_id: UserId | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[Alert]: ...

    async def acknowledge(
        self, organization_id: OrganizationId, alert_id: UUID, by: UserId, now: datetime
    ) -> Alert | None:
        """Mark acknowledged (the first acknowledgement stays); the alert, or None."""
        ...

    async def active_sessions(self, organization_id: OrganizationId) -> Sequence[SessionActivity]:
        """The organization's active work sessions with their latest active moment."""
        ...


class SummaryStore(Protocol):
    async def upsert(self, summaries: Sequence[DailySummary]) -> None: ...

    async def get(
        self, organization_id: OrganizationId, user_id: UserId, day: date
    ) -> DailySummary | None: ...

    async def latest(self, organization_id: OrganizationId, since: date) -> Mapping[UserId, date]:
        """Each user's latest summarized day, among days from `since`."""
        ...

    async def changed_hours(
        self, organization_id: OrganizationId, *, margin: timedelta, since: datetime
    ) -> Sequence[tuple[UserId, datetime]]:
        """(user, hour) of rollups from `since` on written after the organization's latest
        summary was computed, less `margin` (transactions still open at that moment)."""
        ...


class Directory(Protocol):
    """What jobs that go over every tenant list (the one cross-tenant read besides login)."""

    async def organizations(
        self, after: OrganizationId | None, limit: int
    ) -> Sequence[Organization]: ...
