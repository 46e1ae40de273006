"""Reports: where a user's time went, per app, domain, project and local day.

Time comes from the merged intervals (domain/intervals.py). Several devices at one moment count
once (`flatten_devices`), idle time is kept apart from app time, and a moment belongs to the
project of the user's work session covering it (the one that started last, if several do).

`tally(...)` turns intervals into `Usage` rows per UTC hour; the workers store those rows as
hourly rollups, and reports add rollups for whole hours to `tally` over the partial hours at a
local day's edges (e.g. Asia/Kathmandu, +05:45). A local day runs from local midnight to the
next one in its time zone: 23 or 25 hours on DST days.

Example: `local_day(date(2026, 3, 8), ZoneInfo("America/New_York"))` is
`[2026-03-08 05:00 UTC, 2026-03-09 04:00 UTC)`, 23 hours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import ProjectId
from workpulse.domain.intervals import Interval, flatten_devices

HOUR = timedelta(hours=1)
MICROS = 1_000_000
MAX_RANGE_DAYS = 366  # a year of days per request; longer ranges are asked for in pieces


class GroupBy(StrEnum):
    DAY = "day"
    APP = "app"
    DOMAIN = "domain"
    PROJECT = "project"
    USER = "user"


@dataclass(frozen=True, slots=True)
class ProjectSpan:
    """A work session's time: `[start, end)`, open while the session runs."""

    start: datetime
    end: datetime | None
    project_id: ProjectId | None


@dataclass(frozen=True, slots=True)
class Usage:
    """Time of one user in one UTC hour for one (app, domain, idle, project), in microseconds."""

    hour: datetime
    app_name: str
    domain: str | None
    idle: bool
    project_id: ProjectId | None
    micros: int


# --- Calendar -------------------------------------------------------------------------------


def local_day(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """`[local midnight, next local midnight)` in UTC. A midnight that does not exist (a DST
    gap at 00:00) starts the day at the gap's end; an ambiguous one takes its first occurrence."""
    return (_midnight(day, zone), _midnight(day + timedelta(days=1), zone))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def days_between(first: date, last: date) -> list[date]:
    """`first` to `last`, both included; refuses reversed or over-long ranges."""
    if last < first:
        raise InvalidInput("from must not be after to")
    count = (last - first).days + 1
    if count > MAX_RANGE_DAYS:
        raise InvalidInput(f"a range covers at most {MAX_RANGE_DAYS} days")
    return [first + timedelta(days=offset) for offset in range(count)]


def floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


@dataclass(frozen=True, slots=True)
class Split:
    """A window cut into whole UTC hours (read from rollups) and partial edges (tallied from
    intervals)."""

    whole: tuple[datetime, datetime] | None
    partial: tuple[tuple[datetime, datetime], ...]


def split_window(start: datetime, end: datetime) -> Split:
    first, last = ceil_hour(start), floor_hour(end)
    if first >= last:  # no whole hour inside
        return Split(None, ((start, end),) if start < end else ())
    partial = []
    if start < first:
        partial.append((start, first))
    if last < end:
        partial.append((last, end))
    return Split((first, last), tuple(partial))


# --- Tallying -------------------------------------------------------------------------------


def tally(
    intervals: Iterable[Interval],
    sessions: Sequence[ProjectSpan],
    start: datetime,
    end: datetime,
) -> list[Usage]:
    """One user's time in `[start, end)`, per UTC hour, app, domain, idle and project.

    `intervals` are the user's intervals from all devices (at least those touching the window),
    `sessions` the user's work sessions touching it."""
    totals: dict[tuple[datetime, str, str | None, bool, ProjectId | None], int] = defaultdict(int)
    ordered = sorted(sessions, key=lambda s: s.start)
    for piece in flatten_devices(i for i in intervals if i.end > start and i.start < end):
        piece_start, piece_end = max(piece.start, start), min(piece.end, end)
        if piece_start >= piece_end:  # a part of a touching interval that lies outside
            continue
        for part_start, part_end, project in _by_project(piece_start, piece_end, ordered):
            moment = part_start
            while moment < part_end:
                hour = floor_hour(moment)
                stop = min(part_end, hour + HOUR)
                key = (hour, piece.app_name, piece.domain, piece.idle, project)
                totals[key] += _micros(stop - moment)
                moment = stop
    return [
        Usage(hour, app_name, domain, idle, project, micros)
        for (hour, app_name, domain, idle, project), micros in sorted(
            totals.items(), key=lambda item: _sort_key(item[0])
        )
        if micros > 0
    ]


def _sort_key(
    key: tuple[datetime, str, str | None, bool, ProjectId | None],
) -> tuple[datetime, str, str, bool, str]:
    hour, app_name, domain, idle, project = key
    return (hour, app_name, domain or "", idle, str(project or ""))


def _by_project(
    start: datetime, end: datetime, sessions: Sequence[ProjectSpan]
) -> list[tuple[datetime, datetime, ProjectId | None]]:
    """`[start, end)` cut where the covering session changes; the latest-started covering
    session gives the project, no session gives None."""
    cuts = {start, end}
    for session in sessions:
        for moment in (session.start, session.end):
            if moment is not None and start < moment < end:
                cuts.add(moment)
    bounds = sorted(cuts)
    parts: list[tuple[datetime, datetime, ProjectId | None]] = []
    for part_start, part_end in pairwise(bounds):
        covering = [
            s for s in sessions if s.start <= part_start and (s.end is None or s.end >= part_end)
        ]
        project = covering[-1].project_id if covering else None
        if parts and parts[-1][2] == project and parts[-1][1] == part_start:
            parts[-1] = (parts[-1][0], part_end, project)
        else:
            parts.append((part_start, part_end, project))
    return parts


def _micros(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * MICROS + span.microseconds


def seconds(micros: int) -> int:
    """Whole seconds, half up: what reports show."""
    return (micros + MICROS // 2) // MICROS


def duration(total_seconds: int) -> str:
    """`HH:MM:SS`; hours keep counting past 24 (`"25:00:00"` on a fall-back day)."""
    hours_, rest = divmod(total_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours_:02d}:{minutes:02d}:{secs:02d}"


def parse_day(text: str, name: str) -> date:
    message = f"{name} must be a date YYYY-MM-DD"
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise InvalidInput(message)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(message) from exc
