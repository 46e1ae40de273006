"""Reports (contract: "Reports"): JSON, or CSV with `format=csv` where the answer is a table."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from workpulse.domain.ids import UserId
from workpulse.domain.reports import GroupBy, duration, parse_day
from workpulse.entrypoints.http.deps import ContainerDep, IdentityDep
from workpulse.entrypoints.http.errors import documented
from workpulse.services import reports
from workpulse.services.reports import DayReport, Line

router = APIRouter(prefix="/reports", tags=["reports"])

Format = Literal["json", "csv"]
DayQuery = Annotated[str, Query(alias="date", description="a local day, YYYY-MM-DD")]
# `format=csv` answers a CSV table with a header row, as an attachment.
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
TzQuery = Annotated[
    str | None,
    Query(description="an IANA time zone; default: the user's, then the organization's"),
]


class AppLine(BaseModel):
    app_name: str
    seconds: int
    duration: str


class DomainLine(BaseModel):
    domain: str
    seconds: int
    duration: str


class ProjectLine(BaseModel):
    project_id: UUID | None
    project_name: str | None
    seconds: int
    duration: str


class AppsReport(BaseModel):
    date: date
    tz: str
    user_id: UUID
    total_seconds: int
    total_time: str
    idle_seconds: int
    apps: list[AppLine]


class DomainsReport(BaseModel):
    date: date
    tz: str
    user_id: UUID
    total_seconds: int
    total_time: str
    domains: list[DomainLine]


class DailyReport(BaseModel):
    date: date
    tz: str
    user_id: UUID
    total_seconds: int
    total_time: str
    idle_seconds: int
    idle_time: str
    apps: list[AppLine]
    domains: list[DomainLine]
    projects: list[ProjectLine]


class RangeLine(BaseModel):
    key: str | None
    label: str | None
    seconds: int
    duration: str


class RangeReport(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    tz: str
    group_by: GroupBy
    user_id: UUID | None
    total_seconds: int
    total_time: str
    idle_seconds: int
    rows: list[RangeLine]


class TeamLine(BaseModel):
    user_id: UUID
    name: str
    seconds: int
    duration: str
    idle_seconds: int
    top_app: str | None


class TeamReport(BaseModel):
    date: date
    tz: str
    total_seconds: int
    total_time: str
    users: list[TeamLine]


def _apps(lines: Sequence[Line]) -> list[AppLine]:
    return [
        AppLine(app_name=line.key or "", seconds=line.seconds, duration=duration(line.seconds))
        for line in lines
    ]


def _domains(lines: Sequence[Line]) -> list[DomainLine]:
    return [
        DomainLine(domain=line.key or "", seconds=line.seconds, duration=duration(line.seconds))
        for line in lines
    ]


def _projects(lines: Sequence[Line]) -> list[ProjectLine]:
    return [
        ProjectLine(
            project_id=None if line.key is None else UUID(line.key),
            project_name=line.label,
            seconds=line.seconds,
            duration=duration(line.seconds),
        )
        for line in lines
    ]


def _csv(filename: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _day(
    found: IdentityDep,
    container: ContainerDep,
    day: str,
    tz: str | None,
    user_id: UUID | None,
    *,
    with_projects: bool = False,
) -> DayReport:
    return await reports.day_report(
        found.principal,
        day=parse_day(day, "date"),
        tz=tz,
        user_id=None if user_id is None else UserId(user_id),
        uow_factory=container.report_database,
        with_projects=with_projects,
    )


def _lines_csv(name: str, day: date, header: str, lines: Sequence[Line]) -> Response:
    return _csv(
        f"workpulse-{name}-{day.isoformat()}.csv",
        (header, "seconds", "duration"),
        [(line.key, line.seconds, duration(line.seconds)) for line in lines],
    )


@router.get(
    "/apps", response_model=AppsReport, responses={**documented(401, 404, 422, 503), **CSV_RESPONSE}
)
async def apps_report(
    found: IdentityDep,
    container: ContainerDep,
    day: DayQuery,
    tz: TzQuery = None,
    user_id: UUID | None = None,
    format: Format = "json",
) -> AppsReport | Response:
    report = await _day(found, container, day, tz, user_id)
    if format == "csv":
        return _lines_csv("apps", report.day, "app_name", report.apps)
    return AppsReport(
        date=report.day,
        tz=report.tz,
        user_id=report.user_id,
        total_seconds=report.total_seconds,
        total_time=duration(report.total_seconds),
        idle_seconds=report.idle_seconds,
        apps=_apps(report.apps),
    )


# `/reports/urls` is the time_tracker seed's name for the same report.
@router.get(
    "/domains",
    response_model=DomainsReport,
    responses={**documented(401, 404, 422, 503), **CSV_RESPONSE},
)
@router.get(
    "/urls",
    response_model=DomainsReport,
    responses={**documented(401, 404, 422, 503), **CSV_RESPONSE},
)
async def domains_report(
    found: IdentityDep,
    container: ContainerDep,
    day: DayQuery,
    tz: TzQuery = None,
    user_id: UUID | None = None,
    format: Format = "json",
) -> DomainsReport | Response:
    report = await _day(found, container, day, tz, user_id)
    if format == "csv":
        return _lines_csv("domains", report.day, "domain", report.domains)
    return DomainsReport(
        date=report.day,
        tz=report.tz,
        user_id=report.user_id,
        total_seconds=report.domain_seconds,
        total_time=duration(report.domain_seconds),
        domains=_domains(report.domains),
    )


@router.get("/daily", response_model=DailyReport, responses=documented(401, 404, 422, 503))
async def daily_report(
    found: IdentityDep,
    container: ContainerDep,
    day: DayQuery,
    tz: TzQuery = None,
    user_id: UUID | None = None,
) -> DailyReport:
    report = await _day(found, container, day, tz, user_id, with_projects=True)
    return DailyReport(
        date=report.day,
        tz=report.tz,
        user_id=report.user_id,
        total_seconds=report.total_seconds,
        total_time=duration(report.total_seconds),
        idle_seconds=report.idle_seconds,
        idle_time=duration(report.idle_seconds),
        apps=_apps(report.apps),
        domains=_domains(report.domains),
        projects=_projects(report.projects),
    )


@router.get(
    "/range",
    response_model=RangeReport,
    responses={**documented(401, 404, 422, 503), **CSV_RESPONSE},
)
async def range_report(
    found: IdentityDep,
    container: ContainerDep,
    first: Annotated[str, Query(alias="from", description="first local day, YYYY-MM-DD")],
    last: Annotated[str, Query(alias="to", description="last local day (included)")],
    group_by: GroupBy = GroupBy.DAY,
    tz: TzQuery = None,
    user_id: UUID | None = None,
    format: Format = "json",
) -> RangeReport | Response:
    report = await reports.range_report(
        found.principal,
        first=parse_day(first, "from"),
        last=parse_day(last, "to"),
        tz=tz,
        group_by=group_by,
        user_id=None if user_id is None else UserId(user_id),
        uow_factory=container.report_database,
    )
    if format == "csv":
        return _csv(
            f"workpulse-{group_by.value}-{report.first.isoformat()}-{report.last.isoformat()}.csv",
            (group_by.value, "label", "seconds", "duration"),
            [(line.key, line.label, line.seconds, duration(line.seconds)) for line in report.lines],
        )
    return RangeReport(
        from_=report.first,
        to=report.last,
        tz=report.tz,
        group_by=report.group_by,
        user_id=report.user_id,
        total_seconds=report.total_seconds,
        total_time=duration(report.total_seconds),
        idle_seconds=report.idle_seconds,
        rows=[
            RangeLine(
                key=line.key,
                label=line.label,
                seconds=line.seconds,
                duration=duration(line.seconds),
            )
            for line in report.lines
        ],
    )


@router.get(
    "/team",
    response_model=TeamReport,
    responses={**documented(401, 403, 404, 422, 503), **CSV_RESPONSE},
)
async def team_report(
    found: IdentityDep,
    container: ContainerDep,
    day: DayQuery,
    tz: Annotated[
        str | None, Query(description="an IANA time zone; default: the organization's")
    ] = None,
    format: Format = "json",
) -> TeamReport | Response:
    report = await reports.team_report(
        found.principal,
        day=parse_day(day, "date"),
        tz=tz,
        uow_factory=container.report_database,
    )
    if format == "csv":
        return _csv(
            f"workpulse-team-{report.day.isoformat()}.csv",
            ("user_id", "name", "seconds", "duration", "idle_seconds", "top_app"),
            [
                (u.user_id, u.name, u.seconds, duration(u.seconds), u.idle_seconds, u.top_app)
                for u in report.users
            ],
        )
    return TeamReport(
        date=report.day,
        tz=report.tz,
        total_seconds=report.total_seconds,
        total_time=duration(report.total_seconds),
        users=[
            TeamLine(
                user_id=u.user_id,
                name=u.name,
                seconds=u.seconds,
                duration=duration(u.seconds),
                idle_seconds=u.idle_seconds,
                top_app=u.top_app,
            )
            for u in report.users
        ],
    )
