"""Daily summaries: the scheduler's job writes one per user and ended local day
(domain/summaries.py), made by the same computation as the day report, so the two agree.

Late data: the job also recomputes the ended days of every rollup hour written since the
organization's summaries were last computed (less `LATE_MARGIN`, for transactions that were
still open then). The read is one range on an index of `usage_hourly(organization_id,
written_at)`: the hours that changed, not every day of every user.

Each user-day is written in its own transaction by an upsert on (user_id, date): a run that
stops half-way leaves whole summaries, and the next run writes the rest.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.organizations import Organization
from workpulse.domain.reports import local_day
from workpulse.domain.summaries import (
    LOOKBACK_DAYS,
    TOP_ENTRIES,
    DailySummary,
    Entry,
    days_due,
    days_of_hour,
    today,
)
from workpulse.domain.timezones import parse_timezone
from workpulse.services import reports
from workpulse.services.ports import UnitOfWork, UnitOfWorkFactory

LATE_MARGIN = timedelta(minutes=10)


async def summarize(
    organization: Organization,
    *,
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    late_margin: timedelta = LATE_MARGIN,
) -> list[tuple[UserId, date]]:
    """Write the organization's due summaries and recompute those with late data. Returns the
    user-days written, in the order they were."""
    zones: dict[UserId, tuple[str, ZoneInfo]] = {}
    work: set[tuple[UserId, date]] = set()
    oldest = now - timedelta(days=LOOKBACK_DAYS + 2)
    async with uow_factory(readonly=True) as uow:
        members = await uow.users.list(organization.id)
        latest = await uow.summaries.latest(organization.id, oldest.date())
        changed = await uow.summaries.changed_hours(
            organization.id, margin=late_margin, since=oldest
        )
    for member in members:
        name = member.timezone or organization.timezone
        zones[member.id] = (name, parse_timezone(name))
        if member.is_active:
            due = days_due(
                latest.get(member.id), now=now, zone=zones[member.id][1], since=member.created_at
            )
            work.update((member.id, day) for day in due)
    for user_id, hour in changed:
        if user_id not in zones:
            continue
        zone = zones[user_id][1]
        current = today(now, zone)
        for day in days_of_hour(hour, zone):
            if current - timedelta(days=LOOKBACK_DAYS) <= day < current:
                work.add((user_id, day))
    ordered = sorted(work, key=lambda item: (item[1], str(item[0])))
    for user_id, day in ordered:
        name, zone = zones[user_id]
        async with uow_factory() as uow:
            summary = await compute(uow, organization.id, user_id, day, name, zone)
            await uow.summaries.upsert(summary)
            await uow.commit()
    return ordered


async def compute(
    uow: UnitOfWork,
    organization_id: OrganizationId,
    user_id: UserId,
    day: date,
    zone_name: str,
    zone: ZoneInfo,
) -> DailySummary:
    """The user's local day: the day report's totals and top lines, the work sessions that
    touched the day, and its first and last moments of active (not idle) time."""
    report = await reports.user_day(uow, organization_id, user_id, day, zone_name, zone)
    start, end = local_day(day, zone)
    spans = await uow.rollups.project_spans(organization_id, [user_id], [(start, end)])
    intervals = await uow.usage.of_users(organization_id, [user_id], [(start, end)])
    active = [i for _, i in intervals if not i.idle and i.end > start and i.start < end]
    return DailySummary(
        organization_id=organization_id,
        user_id=user_id,
        day=day,
        timezone=zone_name,
        active_seconds=report.total_seconds,
        idle_seconds=report.idle_seconds,
        sessions_count=len(spans.get(user_id, ())),
        top_apps=tuple(Entry(line.key or "", line.seconds) for line in report.apps[:TOP_ENTRIES]),
        top_domains=tuple(
            Entry(line.key or "", line.seconds) for line in report.domains[:TOP_ENTRIES]
        ),
        first_activity_at=min((max(i.start, start) for i in active), default=None),
        last_activity_at=max((min(i.end, end) for i in active), default=None),
    )
