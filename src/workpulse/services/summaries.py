"""Daily summaries: the scheduler's job writes one per user and ended local day
(domain/summaries.py), made by the same computation as the day report, so the two agree.

Late data: the job also recomputes the ended days of every rollup hour written since the
organization's summaries were last computed (less `LATE_MARGIN`, for transactions that were
still open then). The read is one range on an index of `usage_hourly(organization_id,
written_at)`: the hours that changed, not every day of every user.

Summaries are computed a zone and day at a time for up to `CHUNK` users (three reads), and
written by an upsert on (user_id, date) in one transaction per chunk: a run that stops half-way
leaves whole summaries, and the next run writes the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.intervals import Interval
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
from workpulse.services.ports import UnitOfWork, UnitOfWorkFactory, UserUsage

LATE_MARGIN = timedelta(minutes=10)
CHUNK = 200  # user-days read and written per transaction


async def summarize(
    organization: Organization,
    *,
    uow_factory: UnitOfWorkFactory,
    now: datetime,
    late_margin: timedelta = LATE_MARGIN,
    chunk: int = CHUNK,
) -> list[tuple[UserId, date]]:
    """Write the organization's due summaries and recompute those with late data. Returns the
    user-days written, in the order they were written."""
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
    groups: dict[tuple[str, date], list[UserId]] = defaultdict(list)
    for user_id, day in ordered:
        groups[(zones[user_id][0], day)].append(user_id)
    written: list[tuple[UserId, date]] = []
    for (zone_name, day), user_ids in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        zone = zones[user_ids[0]][1]
        for offset in range(0, len(user_ids), chunk):
            part = user_ids[offset : offset + chunk]
            async with uow_factory() as uow:
                await uow.summaries.upsert(
                    await compute(uow, organization.id, part, day, zone_name, zone)
                )
                await uow.commit()
            written.extend((user_id, day) for user_id in part)
    return written


async def compute(
    uow: UnitOfWork,
    organization_id: OrganizationId,
    user_ids: Sequence[UserId],
    day: date,
    zone_name: str,
    zone: ZoneInfo,
) -> list[DailySummary]:
    """The users' local day (one zone): the day report's totals and top lines (the same
    function makes both), the work sessions that touched the day, and its first and last
    moments of active (not idle) time. Three reads, however many users."""
    start, end = local_day(day, zone)
    window = [(start, end)]
    usage = (await reports.usage_in(uow, organization_id, user_ids, window))[0]
    spans = await uow.rollups.project_spans(organization_id, user_ids, window)
    intervals = await uow.usage.of_users(organization_id, user_ids, window)
    usage_of: dict[UserId, list[UserUsage]] = defaultdict(list)
    for row in usage:
        usage_of[row.user_id].append(row)
    active_of: dict[UserId, list[Interval]] = defaultdict(list)
    for owner, interval in intervals:
        if not interval.idle and interval.end > start and interval.start < end:
            active_of[owner].append(interval)
    found = []
    for user_id in user_ids:
        report = reports.day_report_of(day, zone_name, user_id, usage_of[user_id], {})
        active = active_of[user_id]
        found.append(
            DailySummary(
                organization_id=organization_id,
                user_id=user_id,
                day=day,
                timezone=zone_name,
                active_seconds=report.total_seconds,
                idle_seconds=report.idle_seconds,
                sessions_count=len(spans.get(user_id, ())),
                top_apps=tuple(
                    Entry(line.key or "", line.seconds) for line in report.apps[:TOP_ENTRIES]
                ),
                top_domains=tuple(
                    Entry(line.key or "", line.seconds) for line in report.domains[:TOP_ENTRIES]
                ),
                first_activity_at=min((max(i.start, start) for i in active), default=None),
                last_activity_at=max((min(i.end, end) for i in active), default=None),
            )
        )
    return found
