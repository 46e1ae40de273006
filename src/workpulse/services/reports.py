"""Reports: time per app, domain, project, user and local day (domain/reports.py has the rules).

Whole UTC hours come from the hourly rollups the workers keep (services/rollups.py, called in the
same transaction that re-derives intervals); the partial hours at the edges of a local day in a
zone with a non-hour offset are tallied from the intervals themselves. Both go through the same
domain function, so the two agree to the microsecond.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from workpulse.domain.errors import InvalidInput, RoleNotAllowed, UserNotFound
from workpulse.domain.ids import OrganizationId, ProjectId, UserId
from workpulse.domain.intervals import Interval
from workpulse.domain.reports import (
    GroupBy,
    Usage,
    days_between,
    local_day,
    seconds,
    split_window,
    tally,
)
from workpulse.domain.roles import Principal, can_view, sees_organization
from workpulse.domain.timezones import parse_timezone
from workpulse.services.ports import UnitOfWork, UnitOfWorkFactory, UserUsage

# --- What reports answer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a report table: `key` is what it groups by (an app, a domain, a date, a
    project or user id), `label` a name to show where the key is an id."""

    key: str | None
    seconds: int
    label: str | None = None


@dataclass(frozen=True, slots=True)
class DayReport:
    day: date
    tz: str
    user_id: UserId
    total_seconds: int  # app time: active, devices flattened
    domain_seconds: int  # the part of it with a domain (browsers)
    idle_seconds: int
    apps: list[Line]
    domains: list[Line]
    projects: list[Line]


@dataclass(frozen=True, slots=True)
class RangeReport:
    first: date
    last: date
    tz: str
    group_by: GroupBy
    user_id: UserId | None  # None: the organization
    total_seconds: int
    idle_seconds: int
    lines: list[Line]


@dataclass(frozen=True, slots=True)
class TeamLine:
    user_id: UserId
    name: str
    seconds: int
    idle_seconds: int
    top_app: str | None


@dataclass(frozen=True, slots=True)
class TeamReport:
    day: date
    tz: str
    total_seconds: int
    users: list[TeamLine]


# What each report groups on, summed by the database for whole hours.
_DAY_DIMENSIONS = frozenset({"user_id", "app_name", "domain", "project_id"})
_TEAM_DIMENSIONS = frozenset({"user_id", "app_name"})
_RANGE_DIMENSIONS: dict[GroupBy, frozenset[str]] = {
    GroupBy.DAY: frozenset(),
    GroupBy.APP: frozenset({"app_name"}),
    GroupBy.DOMAIN: frozenset({"domain"}),
    GroupBy.PROJECT: frozenset({"project_id"}),
    GroupBy.USER: frozenset({"user_id"}),
}

# --- Use cases --------------------------------------------------------------------------------


async def day_report(
    principal: Principal,
    *,
    day: date,
    tz: str | None,
    user_id: UserId | None,
    uow_factory: UnitOfWorkFactory,
    with_projects: bool = True,
) -> DayReport:
    """`with_projects=False` skips reading project names (for answers that show none)."""
    async with uow_factory(readonly=True) as uow:
        subject, zone_name, zone = await _subject_and_zone(uow, principal, user_id, tz)
        return await user_day(
            uow,
            principal.organization_id,
            subject,
            day,
            zone_name,
            zone,
            with_projects=with_projects,
        )


async def user_day(
    uow: UnitOfWork,
    organization_id: OrganizationId,
    user_id: UserId,
    day: date,
    zone_name: str,
    zone: ZoneInfo,
    *,
    with_projects: bool = True,
) -> DayReport:
    """One user's local day, inside the caller's transaction and without an access check (the
    body of `day_report`)."""
    start, end = local_day(day, zone)
    usage = (await usage_in(uow, organization_id, [user_id], [(start, end)], _DAY_DIMENSIONS))[0]
    names = await _project_names(uow, organization_id) if with_projects else {}
    return day_report_of(day, zone_name, user_id, usage, names)


def day_report_of(
    day: date,
    zone_name: str,
    user_id: UserId,
    usage: Sequence[UserUsage],
    names: dict[ProjectId, str],
) -> DayReport:
    """The day report of one user's usage of that local day (as `usage_in` reads it): shared by
    `user_day` and the summaries, which read many users' days at once."""
    active = [u.usage for u in usage if not u.usage.idle]
    return DayReport(
        day=day,
        tz=zone_name,
        user_id=user_id,
        total_seconds=seconds(sum(u.micros for u in active)),
        domain_seconds=seconds(sum(u.micros for u in active if u.domain is not None)),
        idle_seconds=seconds(sum(u.usage.micros for u in usage if u.usage.idle)),
        apps=_lines(active, lambda u: u.app_name),
        domains=_lines([u for u in active if u.domain is not None], lambda u: u.domain),
        projects=_project_lines(active, names),
    )


async def range_report(
    principal: Principal,
    *,
    first: date,
    last: date,
    tz: str | None,
    group_by: GroupBy,
    user_id: UserId | None,
    uow_factory: UnitOfWorkFactory,
) -> RangeReport:
    days = days_between(first, last)
    async with uow_factory(readonly=True) as uow:
        whole_organization = (
            group_by is GroupBy.USER and user_id is None and sees_organization(principal)
        )
        if whole_organization:
            zone_name, zone = await _organization_zone(uow, principal.organization_id, tz)
            subjects: list[UserId] | None = None
        else:
            subject, zone_name, zone = await _subject_and_zone(uow, principal, user_id, tz)
            subjects = [subject]
        windows = [local_day(d, zone) for d in days]
        per_day = await usage_in(
            uow, principal.organization_id, subjects, windows, _RANGE_DIMENSIONS[group_by]
        )
        labels: dict[str, str] = {}
        if group_by is GroupBy.PROJECT:
            labels = {
                str(k): v for k, v in (await _project_names(uow, principal.organization_id)).items()
            }
        elif group_by is GroupBy.USER:
            labels = {str(u.id): u.name for u in await uow.users.list(principal.organization_id)}
    active: list[tuple[date, UserUsage]] = [
        (d, u) for d, found in zip(days, per_day, strict=True) for u in found if not u.usage.idle
    ]
    idle = sum(u.usage.micros for found in per_day for u in found if u.usage.idle)
    totals: dict[str | None, int] = defaultdict(int)
    for d, u in active:
        totals[_group_key(group_by, d, u)] += u.usage.micros
    if group_by is GroupBy.DAY:
        lines = [Line(d.isoformat(), seconds(totals.get(d.isoformat(), 0))) for d in days]
    else:
        lines = _sorted_lines(totals, labels)
    return RangeReport(
        first=first,
        last=last,
        tz=zone_name,
        group_by=group_by,
        user_id=None if subjects is None else subjects[0],
        total_seconds=seconds(sum(u.usage.micros for _, u in active)),
        idle_seconds=seconds(idle),
        lines=lines,
    )


async def team_report(
    principal: Principal,
    *,
    day: date,
    tz: str | None,
    uow_factory: UnitOfWorkFactory,
) -> TeamReport:
    if not sees_organization(principal):
        raise RoleNotAllowed("the team report is for managers, admins and owners")
    async with uow_factory(readonly=True) as uow:
        zone_name, zone = await _organization_zone(uow, principal.organization_id, tz)
        start, end = local_day(day, zone)
        usage = (
            await usage_in(uow, principal.organization_id, None, [(start, end)], _TEAM_DIMENSIONS)
        )[0]
        members = await uow.users.list(principal.organization_id)
    active: dict[UserId, int] = defaultdict(int)
    idle: dict[UserId, int] = defaultdict(int)
    per_app: dict[UserId, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for u in usage:
        if u.usage.idle:
            idle[u.user_id] += u.usage.micros
        else:
            active[u.user_id] += u.usage.micros
            per_app[u.user_id][u.usage.app_name] += u.usage.micros
    users = [
        TeamLine(
            user_id=m.id,
            name=m.name,
            seconds=seconds(active.get(m.id, 0)),
            idle_seconds=seconds(idle.get(m.id, 0)),
            top_app=min(per_app[m.id].items(), key=lambda kv: (-kv[1], kv[0]))[0]
            if per_app.get(m.id)
            else None,
        )
        for m in members
        if m.is_active or m.id in active or m.id in idle
    ]
    users.sort(key=lambda line: (-line.seconds, line.name, str(line.user_id)))
    return TeamReport(
        day=day,
        tz=zone_name,
        total_seconds=seconds(sum(active.values())),
        users=users,
    )


# --- Helpers ----------------------------------------------------------------------------------


async def _subject_and_zone(
    uow: UnitOfWork, principal: Principal, user_id: UserId | None, tz: str | None
) -> tuple[UserId, str, ZoneInfo]:
    """Whose report (one's own unless allowed to see `user_id`) and in which zone: `tz`, else
    the user's, else the organization's. Someone one may not see is reported as not found."""
    subject = principal.user_id if user_id is None else user_id
    if not can_view(principal, subject):
        raise UserNotFound()
    if tz is not None:
        zone = parse_timezone(tz)
    user = await uow.users.get(principal.organization_id, subject)
    if user is None:
        raise UserNotFound()
    if tz is not None:
        return subject, tz, zone
    if user.timezone:
        return subject, user.timezone, parse_timezone(user.timezone)
    zone_name, zone = await _organization_zone(uow, principal.organization_id, None)
    return subject, zone_name, zone


async def _organization_zone(
    uow: UnitOfWork, organization_id: OrganizationId, tz: str | None
) -> tuple[str, ZoneInfo]:
    if tz is not None:
        return tz, parse_timezone(tz)
    organization = await uow.organizations.get(organization_id)
    name = organization.timezone if organization is not None else "UTC"
    return name, parse_timezone(name)


async def usage_in(
    uow: UnitOfWork,
    organization_id: OrganizationId,
    user_ids: Sequence[UserId] | None,
    windows: Sequence[tuple[datetime, datetime]],
    by: frozenset[str] | None = None,
) -> list[list[UserUsage]]:
    """The usage inside each window (consecutive, non-overlapping, in order): rollups for the
    whole hours, a tally of the intervals for the partial ones.

    `by`: the dimensions the caller groups on (of "user_id", "app_name", "domain",
    "project_id"); the database then sums the whole hours per window and those dimensions, and
    the rest is left empty. None: hourly rows with every dimension."""
    found: list[list[UserUsage]] = [[] for _ in windows]
    splits = [split_window(start, end) for start, end in windows]
    wholes = [(index, split.whole) for index, split in enumerate(splits) if split.whole]
    if wholes and by is not None:
        summed = await uow.rollups.totals(
            organization_id, user_ids, [whole for _, whole in wholes], by
        )
        for position, row in summed:
            found[wholes[position][0]].append(row)
    elif wholes:
        starts = [whole[0] for _, whole in wholes]
        rows = await uow.rollups.read(organization_id, user_ids, starts[0], wholes[-1][1][1])
        for row in rows:
            at = bisect_right(starts, row.usage.hour) - 1
            if at < 0:
                continue
            index, (_, whole_end) = wholes[at]
            if row.usage.hour < whole_end:
                found[index].append(row)
    partials = [(index, part) for index, split in enumerate(splits) for part in split.partial]
    if partials:
        ranges = [part for _, part in partials]
        intervals = await uow.usage.of_users(organization_id, user_ids, ranges)
        spans = await uow.rollups.project_spans(organization_id, user_ids, ranges)
        by_user: dict[UserId, list[Interval]] = defaultdict(list)
        for owner, interval in intervals:
            by_user[owner].append(interval)
        for owner, own in by_user.items():
            for index, (start, end) in partials:
                for usage in tally(own, spans.get(owner, ()), start, end):
                    found[index].append(UserUsage(owner, usage))
    return found


async def _project_names(uow: UnitOfWork, organization_id: OrganizationId) -> dict[ProjectId, str]:
    return {p.id: p.name for p in await uow.projects.list(organization_id, include_archived=True)}


def _lines(usage: Iterable[Usage], key_of: Callable[[Usage], str | None]) -> list[Line]:
    totals: dict[str | None, int] = defaultdict(int)
    for u in usage:
        totals[key_of(u)] += u.micros
    return _sorted_lines(totals, {})


def _project_lines(usage: Iterable[Usage], names: dict[ProjectId, str]) -> list[Line]:
    totals: dict[str | None, int] = defaultdict(int)
    for u in usage:
        totals[None if u.project_id is None else str(u.project_id)] += u.micros
    return _sorted_lines(totals, {str(k): v for k, v in names.items()})


def _sorted_lines(totals: dict[str | None, int], labels: dict[str, str]) -> list[Line]:
    """Longest first; ties by key. Lines that round to zero seconds are left out."""
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0] or ""))
    return [
        Line(key, seconds(micros), None if key is None else labels.get(key))
        for key, micros in ordered
        if seconds(micros) > 0
    ]


def _group_key(group_by: GroupBy, day: date, found: UserUsage) -> str | None:
    usage = found.usage
    match group_by:
        case GroupBy.DAY:
            return day.isoformat()
        case GroupBy.APP:
            return usage.app_name
        case GroupBy.DOMAIN:
            return usage.domain
        case GroupBy.PROJECT:
            return None if usage.project_id is None else str(usage.project_id)
        case GroupBy.USER:
            return str(found.user_id)
    raise InvalidInput("group_by is day, app, domain, project or user")
