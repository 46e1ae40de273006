"""Daily summaries: one row per user and local day, written once the day has ended.

A local day (the user's zone, else the organization's; see domain/reports.py) has ended when the
local date of "now" is past it, so the day before a DST change ends at its real local midnight,
after 23 or 25 hours, and is summarized once. The job looks back from the day after the user's
latest summary (at most `LOOKBACK_DAYS`, never before the user existed) to yesterday, so a day
missed while no scheduler ran is summarized by the next run, and a day already summarized is
only recomputed when its data changed (late pings).

Example: a user in America/New_York; at 2026-03-09 04:00 UTC (local midnight after the 23-hour
DST day) with a latest summary for March 7, `days_due` gives [March 8].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.reports import HOUR

LOOKBACK_DAYS = 31
TOP_ENTRIES = 10


@dataclass(frozen=True, slots=True)
class Entry:
    """An app or domain and its seconds in the day."""

    name: str
    seconds: int


@dataclass(frozen=True, slots=True)
class DailySummary:
    organization_id: OrganizationId
    user_id: UserId
    day: date
    timezone: str
    active_seconds: int
    idle_seconds: int
    sessions_count: int
    top_apps: tuple[Entry, ...]
    top_domains: tuple[Entry, ...]
    first_activity_at: datetime | None
    last_activity_at: datetime | None
    computed_at: datetime | None = None  # set by the database on every write


def today(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def days_due(latest: date | None, *, now: datetime, zone: ZoneInfo, since: datetime) -> list[date]:
    """The ended local days without a summary: after `latest` (or from the local day of
    `since`, when the user came), at most LOOKBACK_DAYS back, up to yesterday."""
    current = today(now, zone)
    first = max(current - timedelta(days=LOOKBACK_DAYS), since.astimezone(zone).date())
    if latest is not None:
        first = max(first, latest + timedelta(days=1))
    return [first + timedelta(days=k) for k in range((current - first).days)]


def days_of_hour(hour: datetime, zone: ZoneInfo) -> set[date]:
    """The local days a UTC hour `[hour, hour + 1 h)` touches (two where the zone's offset is
    not whole hours and midnight falls inside)."""
    last = hour + HOUR - timedelta(microseconds=1)
    return {hour.astimezone(zone).date(), last.astimezone(UTC).astimezone(zone).date()}
