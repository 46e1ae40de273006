"""Reports over HTTP on both databases: golden days written by hand (DST, midnights, a +05:45
zone, overlapping devices), 422s, the tenant rules, CSV, and freshness after new usage.

Usage is stored through the worker's own use case (`ingest.store_and_derive`), which derives
intervals and hourly rollups exactly as a worker does; the HTTP ping endpoint would refuse these
golden days as older than the ping horizon.
"""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api import Member, add_member, register_owner
from tests.conftest import test_settings
from tests.http.contract import assert_error, serve
from workpulse import bootstrap
from workpulse.bootstrap import Container
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.pings import Ping
from workpulse.entrypoints.http.app import create_app
from workpulse.services import ingest
from workpulse.services.ports import OwnedPing

_events = itertools.count()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def use(
    container: Container,
    member: Member,
    app_name: str,
    start: str,
    end: str,
    *,
    domain: str | None = None,
    device: str = "laptop",
    idle: bool = False,
) -> None:
    """A span of usage, stored and derived as a worker does."""
    ping = Ping(
        device_id=device,
        app_name=app_name,
        url=None,
        domain=domain,
        title=None,
        idle=idle,
        start=at(start).astimezone(UTC),
        end=at(end).astimezone(UTC),
        event_id=f"golden-{next(_events)}",
    )
    owned = OwnedPing(
        OrganizationId(uuid.UUID(member.organization_id)), UserId(uuid.UUID(member.id)), ping
    )
    await ingest.store_and_derive(
        [owned],
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
    )


async def get(
    client: httpx.AsyncClient, member: Member, path: str, **params: str
) -> httpx.Response:
    return await client.get(path, params=params, headers=member.headers)


async def apps(
    client: httpx.AsyncClient, member: Member, day: str, tz: str, **params: str
) -> dict[str, Any]:
    response = await get(client, member, "/reports/apps", date=day, tz=tz, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_app(body: dict[str, Any]) -> dict[str, int]:
    return {line["app_name"]: line["seconds"] for line in body["apps"]}


# --- Golden days --------------------------------------------------------------------------------


async def test_new_york_spring_forward_day_has_23_hours_and_midnight_splits(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    # 23:30 EST on the 7th to 00:30 EST on the 8th: half an hour on each day.
    await use(container, owner, "Slack", "2026-03-07T23:30:00-05:00", "2026-03-08T00:30:00-05:00")
    # 01:00 EST to 04:00 EDT is two real hours (02:00 does not exist that night).
    await use(container, owner, "Editor", "2026-03-08T01:00:00-05:00", "2026-03-08T04:00:00-04:00")
    day = await apps(client, owner, "2026-03-08", "America/New_York")
    assert by_app(day) == {"Editor": 7200, "Slack": 1800}
    assert (day["total_seconds"], day["total_time"]) == (9000, "02:30:00")
    assert [line["app_name"] for line in day["apps"]] == ["Editor", "Slack"]  # longest first
    assert day["apps"][0]["duration"] == "02:00:00"
    before = await apps(client, owner, "2026-03-07", "America/New_York")
    assert by_app(before) == {"Slack": 1800}

    whole = await add_member(client, owner, "employee")
    await use(container, whole, "Editor", "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00")
    full = await apps(client, whole, "2026-03-08", "America/New_York")
    assert (full["total_seconds"], full["total_time"]) == (82800, "23:00:00")


async def test_new_york_fall_back_day_has_25_hours(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    await use(container, owner, "Editor", "2026-11-01T00:00:00-04:00", "2026-11-01T12:00:00-05:00")
    await use(container, owner, "Editor", "2026-11-01T12:00:00-05:00", "2026-11-02T00:00:00-05:00")
    day = await apps(client, owner, "2026-11-01", "America/New_York")
    assert by_app(day) == {"Editor": 90000}
    assert day["total_time"] == "25:00:00"
    # The same moments seen from UTC: 20 h on the 1st, 5 h on the 2nd.
    assert by_app(await apps(client, owner, "2026-11-01", "UTC")) == {"Editor": 72000}
    assert by_app(await apps(client, owner, "2026-11-02", "UTC")) == {"Editor": 18000}


async def test_berlin_local_midnight_is_not_utc_midnight(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    await use(container, owner, "Editor", "2026-06-10T23:00:00+02:00", "2026-06-11T01:00:00+02:00")
    # Spring forward in Berlin: 2026-03-29 has 23 hours; 01:30 to 03:30 local is one hour.
    await use(container, owner, "Mail", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00")
    assert by_app(await apps(client, owner, "2026-06-10", "Europe/Berlin")) == {"Editor": 3600}
    assert by_app(await apps(client, owner, "2026-06-11", "Europe/Berlin")) == {"Editor": 3600}
    assert by_app(await apps(client, owner, "2026-06-10", "UTC")) == {"Editor": 7200}
    assert by_app(await apps(client, owner, "2026-03-29", "Europe/Berlin")) == {"Mail": 3600}


async def test_kathmandu_days_start_at_a_quarter_past_the_utc_hour(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    # Kathmandu is UTC+05:45: 2026-06-10 runs from 2026-06-09T18:15Z to 2026-06-10T18:15Z.
    await use(container, owner, "Editor", "2026-06-09T18:00:00Z", "2026-06-09T18:40:00Z")
    await use(container, owner, "Editor", "2026-06-10T03:00:00Z", "2026-06-10T05:00:00Z")
    await use(
        container,
        owner,
        "Browser",
        "2026-06-10T18:00:00Z",
        "2026-06-10T18:30:00Z",
        domain="github.com",
    )
    day = await apps(client, owner, "2026-06-10", "Asia/Kathmandu")
    assert by_app(day) == {"Editor": 25 * 60 + 7200, "Browser": 15 * 60}
    assert day["total_seconds"] == 9600
    assert by_app(await apps(client, owner, "2026-06-09", "Asia/Kathmandu")) == {"Editor": 900}
    assert by_app(await apps(client, owner, "2026-06-11", "Asia/Kathmandu")) == {"Browser": 900}
    domains = await get(client, owner, "/reports/domains", date="2026-06-10", tz="Asia/Kathmandu")
    assert domains.json()["domains"] == [
        {"domain": "github.com", "seconds": 900, "duration": "00:15:00"}
    ]
    assert domains.json()["total_seconds"] == 900


async def test_overlapping_devices_count_a_moment_once_and_idle_apart(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    await use(container, owner, "Editor", "2026-06-10T10:00:00Z", "2026-06-10T11:00:00Z")
    await use(
        container,
        owner,
        "Browser",
        "2026-06-10T10:30:00Z",
        "2026-06-10T11:30:00Z",
        domain="github.com",
        device="desktop",
    )
    await use(
        container,
        owner,
        "Editor",
        "2026-06-10T10:00:00Z",
        "2026-06-10T12:00:00Z",
        device="tablet",
        idle=True,
    )
    day = await get(client, owner, "/reports/daily", date="2026-06-10", tz="UTC")
    assert day.status_code == 200, day.text
    body = day.json()
    # The later start wins a shared moment; active beats idle; idle is never app time.
    assert by_app(body) == {"Browser": 3600, "Editor": 1800}
    assert (body["total_seconds"], body["idle_seconds"]) == (5400, 1800)
    assert body["idle_time"] == "00:30:00"
    assert body["domains"] == [{"domain": "github.com", "seconds": 3600, "duration": "01:00:00"}]
    assert body["projects"] == [
        {"project_id": None, "project_name": None, "seconds": 5400, "duration": "01:30:00"}
    ]


async def test_range_by_day_over_the_dst_week_and_by_app(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    await use(container, owner, "Slack", "2026-03-07T23:30:00-05:00", "2026-03-08T00:30:00-05:00")
    await use(container, owner, "Editor", "2026-03-08T01:00:00-05:00", "2026-03-08T04:00:00-04:00")
    await use(container, owner, "Editor", "2026-03-10T09:00:00-04:00", "2026-03-10T09:00:01-04:00")
    response = await get(
        client,
        owner,
        "/reports/range",
        **{"from": "2026-03-07", "to": "2026-03-10"},
        tz="America/New_York",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(r["key"], r["seconds"]) for r in body["rows"]] == [
        ("2026-03-07", 1800),
        ("2026-03-08", 9000),
        ("2026-03-09", 0),
        ("2026-03-10", 1),
    ]
    assert (body["from"], body["to"], body["total_seconds"]) == ("2026-03-07", "2026-03-10", 10801)
    grouped = await get(
        client,
        owner,
        "/reports/range",
        **{"from": "2026-03-07", "to": "2026-03-10"},
        tz="America/New_York",
        group_by="app",
    )
    assert [(r["key"], r["seconds"]) for r in grouped.json()["rows"]] == [
        ("Editor", 7201),
        ("Slack", 3600),
    ]


async def test_project_time_follows_the_work_session_covering_it(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    project = await client.post("/projects", json={"name": "Apollo"}, headers=owner.headers)
    assert project.status_code == 201, project.text
    now = datetime.now(UTC).replace(microsecond=0)
    started = await client.post(
        "/sessions/start",
        json={
            "project_id": project.json()["id"],
            "start_time": (now - timedelta(hours=2)).isoformat(),
        },
        headers=owner.headers,
    )
    assert started.status_code == 201, started.text
    # 30 minutes before the session and 30 minutes inside it.
    await use(
        container,
        owner,
        "Editor",
        (now - timedelta(hours=2, minutes=30)).isoformat(),
        (now - timedelta(hours=1, minutes=30)).isoformat(),
    )
    day = (now - timedelta(hours=2)).date().isoformat()
    first = (now - timedelta(hours=2, minutes=30)).date().isoformat()
    response = await get(
        client, owner, "/reports/range", **{"from": first, "to": day}, tz="UTC", group_by="project"
    )
    assert response.status_code == 200, response.text
    rows = {(r["key"], r["label"]): r["seconds"] for r in response.json()["rows"]}
    assert rows == {(project.json()["id"], "Apollo"): 1800, (None, None): 1800}


async def test_a_new_interval_shows_in_the_next_report(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    await use(container, owner, "Editor", "2026-06-10T10:00:00Z", "2026-06-10T10:10:00Z")
    assert by_app(await apps(client, owner, "2026-06-10", "UTC")) == {"Editor": 600}
    await use(container, owner, "Editor", "2026-06-10T10:05:00Z", "2026-06-10T10:20:00Z")
    assert by_app(await apps(client, owner, "2026-06-10", "UTC")) == {"Editor": 1200}


async def test_time_zone_defaults_to_the_organizations(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    changed = await client.patch(
        "/organizations/current", json={"timezone": "Asia/Kathmandu"}, headers=owner.headers
    )
    assert changed.status_code == 200, changed.text
    body = (await get(client, owner, "/reports/apps", date="2026-06-10")).json()
    assert body["tz"] == "Asia/Kathmandu"


# --- Team, CSV ----------------------------------------------------------------------------------


async def test_team_report_for_managers_and_csv_matches_json(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client)
    manager = await add_member(client, owner, "manager")
    employee = await add_member(client, owner, "employee")
    await use(container, employee, "Editor", "2026-06-10T10:00:00Z", "2026-06-10T11:00:00Z")
    await use(container, owner, "Mail", "2026-06-10T10:00:00Z", "2026-06-10T10:30:00Z")
    response = await get(client, manager, "/reports/team", date="2026-06-10", tz="UTC")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(u["user_id"], u["seconds"], u["top_app"]) for u in body["users"]][:2] == [
        (employee.id, 3600, "Editor"),
        (owner.id, 1800, "Mail"),
    ]
    assert body["total_seconds"] == 5400
    assert_error(await get(client, employee, "/reports/team", date="2026-06-10"), 403)

    as_csv = await get(client, manager, "/reports/team", date="2026-06-10", tz="UTC", format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert 'filename="workpulse-team-2026-06-10.csv"' in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["user_id"], int(r["seconds"]), r["duration"]) for r in rows] == [
        (u["user_id"], u["seconds"], u["duration"]) for u in body["users"]
    ]

    json_apps = await apps(client, employee, "2026-06-10", "UTC")
    csv_apps = await get(
        client, employee, "/reports/apps", date="2026-06-10", tz="UTC", format="csv"
    )
    parsed = list(csv.DictReader(io.StringIO(csv_apps.text)))
    assert [(r["app_name"], int(r["seconds"]), r["duration"]) for r in parsed] == [
        (a["app_name"], a["seconds"], a["duration"]) for a in json_apps["apps"]
    ]
    ranged = await get(
        client,
        employee,
        "/reports/range",
        **{"from": "2026-06-09", "to": "2026-06-11"},
        tz="UTC",
        format="csv",
    )
    header, *lines = csv.reader(io.StringIO(ranged.text))
    assert header == ["day", "label", "seconds", "duration"]
    assert [line[0] for line in lines] == ["2026-06-09", "2026-06-10", "2026-06-11"]


# --- Bad input and tenants ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/reports/apps", {"date": "2026-06-10", "tz": "Mars/Base"}),
        ("/reports/apps", {"date": "2026-06-10", "tz": "../../etc/passwd"}),
        ("/reports/apps", {"date": "2026-13-01"}),
        ("/reports/apps", {"date": "20260610"}),
        ("/reports/apps", {}),
        ("/reports/apps", {"date": "2026-06-10", "format": "xml"}),
        ("/reports/domains", {"date": "yesterday"}),
        ("/reports/urls", {"date": "2026-02-30"}),
        ("/reports/daily", {"date": "2026-06-10", "user_id": "not-a-uuid"}),
        ("/reports/range", {"from": "2026-06-10", "to": "2026-06-09"}),
        ("/reports/range", {"from": "2025-01-01", "to": "2026-06-09"}),
        ("/reports/range", {"from": "2026-06-01", "to": "2026-06-09", "group_by": "hour"}),
        ("/reports/range", {"from": "2026-06-01"}),
        ("/reports/team", {"date": "2026-06-10", "tz": "Nowhere"}),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    owner = await register_owner(client)
    assert_error(await get(client, owner, path, **params), 422)


DAY_ROUTES = ("/reports/apps", "/reports/domains", "/reports/urls", "/reports/daily")


async def test_reports_of_someone_one_may_not_see_are_404(
    client: httpx.AsyncClient, container: Container
) -> None:
    owner = await register_owner(client, "Tenant A")
    employee = await add_member(client, owner, "employee")
    other = await add_member(client, owner, "employee")
    outsider = await register_owner(client, "Tenant B")
    await use(container, other, "Secret", "2026-06-10T10:00:00Z", "2026-06-10T11:00:00Z")
    day = {"date": "2026-06-10", "tz": "UTC"}
    span = {"from": "2026-06-10", "to": "2026-06-10", "tz": "UTC"}
    for path in DAY_ROUTES:
        assert_error(await get(client, employee, path, **day, user_id=other.id), 404)
        assert_error(await get(client, outsider, path, **day, user_id=other.id), 404)
        assert_error(await get(client, owner, path, **day, user_id=outsider.id), 404)
        assert_error(await get(client, owner, path, **day, user_id=str(uuid.uuid4())), 404)
        allowed = await get(client, owner, path, **day, user_id=other.id)
        assert allowed.status_code == 200, allowed.text  # the positive control
    for group_by in ("day", "app", "domain", "project", "user"):
        params = {**span, "group_by": group_by}
        assert_error(await get(client, employee, "/reports/range", **params, user_id=other.id), 404)
        assert_error(await get(client, outsider, "/reports/range", **params, user_id=other.id), 404)
        mine = await get(client, employee, "/reports/range", **params)
        assert mine.status_code == 200
        assert mine.json()["total_seconds"] == 0  # the employee's own, not the team's
    seen = await get(client, owner, "/reports/range", **span, user_id=other.id)
    assert seen.json()["total_seconds"] == 3600
    team = await get(client, outsider, "/reports/team", **day)
    assert team.status_code == 200
    assert {u["user_id"] for u in team.json()["users"]} == {outsider.id}
    assert team.json()["total_seconds"] == 0
    for path in (*DAY_ROUTES, "/reports/range", "/reports/team"):
        assert_error(await client.get(path, params=day), 401)


async def test_a_backdated_session_claims_the_time_already_recorded(
    client: httpx.AsyncClient, container: Container
) -> None:
    """The agent was offline: usage was derived first, the session started afterwards with a
    start time in the past. The rollups of those hours are recomputed at the start."""
    owner = await register_owner(client)
    project = await client.post("/projects", json={"name": "Hermes"}, headers=owner.headers)
    now = datetime.now(UTC).replace(microsecond=0)
    await use(
        container,
        owner,
        "Editor",
        (now - timedelta(hours=1, minutes=30)).isoformat(),
        (now - timedelta(minutes=30)).isoformat(),
    )
    started = await client.post(
        "/sessions/start",
        json={
            "project_id": project.json()["id"],
            "start_time": (now - timedelta(hours=1)).isoformat(),
        },
        headers=owner.headers,
    )
    assert started.status_code == 201, started.text
    first = (now - timedelta(hours=1, minutes=30)).date().isoformat()
    response = await get(
        client,
        owner,
        "/reports/range",
        **{"from": first, "to": now.date().isoformat()},
        tz="UTC",
        group_by="project",
    )
    rows = {r["key"]: r["seconds"] for r in response.json()["rows"]}
    assert rows == {project.json()["id"]: 1800, None: 1800}


async def test_reports_read_from_the_replica_when_one_is_configured(
    postgresql_url: str,
) -> None:
    """WORKPULSE_DATABASE_REPLICA_URL gives reports their own engine (here the same server, as a
    stand-in for a streaming replica); everything else keeps the primary."""
    settings = test_settings(postgresql_url, database_replica_url=postgresql_url)
    async with bootstrap.build(settings) as built:
        assert built.report_database is not built.database
        assert built.report_database.engine is not built.engine
    app = create_app(settings)
    async with serve(app) as http:
        owner = await register_owner(http)
        response = await get(http, owner, "/reports/apps", date="2026-06-10", tz="UTC")
    assert response.status_code == 200, response.text
    assert response.json()["total_seconds"] == 0
