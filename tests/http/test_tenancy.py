"""The tenant matrix: every route that takes an id answers 404 to a member of another
organization, and to another employee where the resource is an employee's own, exactly as it
answers for an id that does not exist; the rightful member gets through (the positive control).
Identity (user, organization, role) comes only from the access token.

A new route with an id in its path fails `test_every_route_with_an_id_is_in_the_tenant_matrix`
until it has a row in `MATRIX`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests import conftest
from tests.api import PASSWORD, Member, add_member, invite, login, register_owner, unique_email
from tests.http.contract import assert_error
from workpulse.adapters.tokens import JwtCodec
from workpulse.bootstrap import Container
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.roles import Role
from workpulse.entrypoints.http.app import create_app
from workpulse.services import alerts
from workpulse.services.ports import AccessClaims


@dataclass(frozen=True)
class World:
    """Organization A (owner, two employees, a project) and organization B (its owner)."""

    owner: Member
    employee: Member
    other_employee: Member
    outsider: Member
    project_id: str
    session_id: str
    work_session_id: str  # the employee's active work session
    alert_id: str = ""  # the employee's idle alert (build_world with a container)

    def actor(self, name: str) -> Member:
        member: Member = getattr(self, name)
        return member


async def build_world(client: httpx.AsyncClient, container: Container | None = None) -> World:
    owner = await register_owner(client, "Tenant A")
    employee = await add_member(client, owner, "employee")
    other_employee = await add_member(client, owner, "employee")
    outsider = await register_owner(client, "Tenant B")
    project = await client.post(
        "/projects", json={"name": "Apollo", "description": "A's"}, headers=owner.headers
    )
    assert project.status_code == 201, project.text
    sessions = await client.get("/auth/sessions", headers=employee.headers)
    assert sessions.status_code == 200, sessions.text
    (current,) = [s for s in sessions.json() if s["current"]]
    started = await client.post(
        "/sessions/start",
        json={"start_time": (datetime.now(UTC) - timedelta(hours=2)).isoformat()},
        headers=employee.headers,
    )
    assert started.status_code == 201, started.text
    alert_id = ""
    if container is not None:  # the idle check alerts on the employee's silent session
        async with container.database(readonly=True) as uow:
            organization = await uow.organizations.get(
                OrganizationId(uuid.UUID(owner.organization_id))
            )
        assert organization is not None
        await alerts.check_idle(
            organization,
            uow_factory=container.database,
            notifier=container.notifier,
            now=container.clock.now(),
        )
        listed = await client.get("/alerts", headers=employee.headers)
        (alert,) = listed.json()["alerts"]
        alert_id = alert["id"]
    return World(
        owner=owner,
        employee=employee,
        other_employee=other_employee,
        outsider=outsider,
        project_id=project.json()["id"],
        session_id=current["id"],
        work_session_id=started.json()["id"],
        alert_id=alert_id,
    )


@dataclass(frozen=True)
class IdRoute:
    """One route with an id: whose resource it names, who may reach it, who must get 404."""

    method: str
    template: str
    resource: Callable[[World], str]
    allowed: tuple[str, ...]  # actors that then succeed with `status` (positive control)
    status: int
    denied: tuple[str, ...]  # actors that get 404
    read_back: Callable[[World], tuple[str, str]]  # (actor, path) showing the resource
    body: dict[str, Any] | None = None

    def path(self, resource_id: str) -> str:
        name = self.template[self.template.index("{") + 1 : self.template.index("}")]
        return self.template.replace("{" + name + "}", resource_id)

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


def _user(w: World) -> str:
    return w.employee.id


def _project(w: World) -> str:
    return w.project_id


def _session(w: World) -> str:
    return w.session_id


def _work_session(w: World) -> str:
    return w.work_session_id


def _work_session_as_employee(w: World) -> tuple[str, str]:
    return "employee", f"/sessions/{w.work_session_id}"


def _user_as_owner(w: World) -> tuple[str, str]:
    return "owner", f"/users/{w.employee.id}"


def _project_as_owner(w: World) -> tuple[str, str]:
    return "owner", f"/projects/{w.project_id}"


def _sessions_as_employee(_w: World) -> tuple[str, str]:
    return "employee", "/auth/sessions"


def _alert(w: World) -> str:
    return w.alert_id


def _alerts_as_employee(_w: World) -> tuple[str, str]:
    return "employee", "/alerts"


MATRIX = [
    IdRoute(
        "GET",
        "/users/{user_id}",
        _user,
        allowed=("employee", "owner"),
        status=200,
        denied=("outsider", "other_employee"),
        read_back=_user_as_owner,
    ),
    IdRoute(
        "PATCH",
        "/users/{user_id}",
        _user,
        allowed=("owner",),
        status=200,
        denied=("outsider", "other_employee"),
        read_back=_user_as_owner,
        body={"role": "manager", "active": False},
    ),
    IdRoute(
        "GET",
        "/projects/{project_id}",
        _project,
        allowed=("employee", "owner"),
        status=200,
        denied=("outsider",),
        read_back=_project_as_owner,
    ),
    IdRoute(
        "PATCH",
        "/projects/{project_id}",
        _project,
        allowed=("owner",),
        status=200,
        denied=("outsider",),
        read_back=_project_as_owner,
        body={"name": "Renamed", "description": "changed"},
    ),
    IdRoute(
        "DELETE",
        "/projects/{project_id}",
        _project,
        allowed=("owner",),
        status=204,
        denied=("outsider",),
        read_back=_project_as_owner,
    ),
    IdRoute(
        "DELETE",
        "/auth/sessions/{session_id}",
        _session,
        allowed=("employee",),
        status=204,
        # A device session is personal: not even the organization's owner revokes it here.
        denied=("outsider", "other_employee", "owner"),
        read_back=_sessions_as_employee,
    ),
    IdRoute(
        "GET",
        "/sessions/{session_id}",
        _work_session,
        allowed=("employee", "owner"),
        status=200,
        denied=("outsider", "other_employee"),
        read_back=_work_session_as_employee,
    ),
    IdRoute(
        "POST",
        "/sessions/{session_id}/activity",
        _work_session,
        allowed=("employee",),
        status=201,
        # Managers read the organization's sessions but write only their own.
        denied=("outsider", "other_employee", "owner"),
        read_back=_work_session_as_employee,
        body={"activityType": "active", "durationSeconds": 60},
    ),
    IdRoute(
        "POST",
        "/sessions/{session_id}/stop",
        _work_session,
        allowed=("employee",),
        status=201,
        denied=("outsider", "other_employee", "owner"),
        read_back=_work_session_as_employee,
    ),
    IdRoute(
        "POST",
        "/alerts/{alert_id}/ack",
        _alert,
        allowed=("employee", "owner"),
        status=200,
        denied=("outsider", "other_employee"),
        read_back=_alerts_as_employee,
    ),
]


def test_every_route_with_an_id_is_in_the_tenant_matrix(sqlite_url: str) -> None:
    app = create_app(conftest.test_settings(sqlite_url))
    # FastAPI nests included routers; this is the walk its OpenAPI generator does.
    routes = list(iter_route_contexts(app.routes))
    assert "/users/{user_id}" in {r.path for r in routes}, "the walk missed the included routers"
    with_ids = {
        f"{method} {route.path}"
        for route in routes
        if route.path and "{" in route.path
        for method in (route.methods or {"*"}) - {"HEAD"}
    }
    missing = with_ids - {route.label for route in MATRIX}
    assert not missing, f"add these routes to the tenant matrix: {sorted(missing)}"
    stale = {route.label for route in MATRIX} - with_ids
    assert not stale, f"the tenant matrix names routes that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("route", MATRIX, ids=lambda route: route.label)
async def test_outsiders_and_other_employees_get_404_where_the_rightful_member_succeeds(
    client: httpx.AsyncClient, container: Container, route: IdRoute
) -> None:
    world = await build_world(client, container)
    reader, shown_at = route.read_back(world)
    before = await client.get(shown_at, headers=world.actor(reader).headers)
    assert before.status_code == 200, before.text

    for name in route.denied:
        actor = world.actor(name)
        denied = await client.request(
            route.method, route.path(route.resource(world)), json=route.body, headers=actor.headers
        )
        body = assert_error(denied, 404)
        # "Not yours" reads exactly like "does not exist".
        absent = await client.request(
            route.method, route.path(str(uuid.uuid4())), json=route.body, headers=actor.headers
        )
        assert assert_error(absent, 404) == body, f"{name} can tell the resource exists"

    after = await client.get(shown_at, headers=world.actor(reader).headers)
    assert after.json() == before.json(), "a denied request changed the resource"

    for name in route.allowed:
        allowed = await client.request(
            route.method,
            route.path(route.resource(world)),
            json=route.body,
            headers=world.actor(name).headers,
        )
        assert allowed.status_code == route.status, f"{name}: {allowed.text}"


async def test_an_organization_id_in_a_body_does_not_choose_where_a_project_is_created(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    created = await client.post(
        "/projects",
        json={"name": "Smuggled", "organization_id": world.outsider.organization_id},
        headers=world.owner.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["organization_id"] == world.owner.organization_id
    theirs = await client.get("/projects", headers=world.outsider.headers)
    assert "Smuggled" not in {p["name"] for p in theirs.json()}
    ours = await client.get("/projects", headers=world.owner.headers)
    assert "Smuggled" in {p["name"] for p in ours.json()}


async def test_an_organization_id_in_the_query_does_not_choose_whose_members_are_listed(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    listed = await client.get(
        "/users",
        params={"organization_id": world.outsider.organization_id},
        headers=world.owner.headers,
    )
    assert listed.status_code == 200, listed.text
    assert {u["organization_id"] for u in listed.json()} == {world.owner.organization_id}
    assert world.outsider.id not in {u["id"] for u in listed.json()}


async def test_a_user_id_in_the_query_does_not_change_whose_profile_me_returns(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    me = await client.get(
        "/me",
        params={"user_id": world.owner.id, "organization_id": world.outsider.organization_id},
        headers=world.employee.headers,
    )
    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["role"]) == (world.employee.id, "employee")


async def test_an_employee_cannot_promote_themselves_by_naming_a_role_in_a_body(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    patched = await client.patch(
        f"/users/{world.employee.id}",
        json={"role": "owner", "organization_id": world.outsider.organization_id},
        headers=world.employee.headers,
    )
    assert_error(patched, 403)
    me = await client.get("/me", headers=world.employee.headers)
    assert me.json()["role"] == "employee"


async def test_an_invite_is_for_the_inviters_organization_whatever_the_body_names(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    issued = await client.post(
        "/organizations/current/invites",
        json={"role": "employee", "organization_id": world.outsider.organization_id},
        headers=world.owner.headers,
    )
    assert issued.status_code == 201, issued.text
    token = issued.json()["invite_token"]
    into_b = await client.post(
        "/auth/register",
        json={
            "email": unique_email("smuggler"),
            "password": PASSWORD,
            "name": "Smuggler",
            "organization_id": world.outsider.organization_id,
            "invite_token": token,
        },
    )
    assert_error(into_b, 403, "InvalidInvite")
    into_a = await client.post(
        "/auth/register",
        json={
            "email": unique_email("invited"),
            "password": PASSWORD,
            "name": "Invited",
            "organization_id": world.owner.organization_id,
            "invite_token": token,
        },
    )
    assert into_a.status_code == 201, into_a.text
    assert into_a.json()["user"]["organization_id"] == world.owner.organization_id


async def test_nobody_joins_an_organization_or_takes_a_role_by_naming_it(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    uninvited = await client.post(
        "/auth/register",
        json={
            "email": unique_email("uninvited"),
            "password": PASSWORD,
            "name": "Uninvited",
            "organization_id": world.owner.organization_id,
            "role": "owner",
        },
    )
    assert_error(uninvited, 403)
    above_invite = await client.post(
        "/auth/register",
        json={
            "email": unique_email("climber"),
            "password": PASSWORD,
            "name": "Climber",
            "organization_id": world.owner.organization_id,
            "invite_token": await invite(client, world.owner, "employee"),
            "role": "admin",
        },
    )
    assert_error(above_invite, 403, "RoleNotAllowed")


async def test_a_member_cannot_log_in_to_another_organization_by_naming_it(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    elsewhere = await login(client, world.employee.email, world.outsider.organization_id)
    assert_error(elsewhere, 401, "InvalidCredentials")
    home = await login(client, world.employee.email, world.employee.organization_id)
    assert home.status_code == 200, home.text


async def test_a_token_naming_another_organization_never_yields_its_data(
    client: httpx.AsyncClient,
) -> None:
    world = await build_world(client)
    now = datetime.now(UTC)
    claims = AccessClaims(
        user_id=UserId(uuid.UUID(world.employee.id)),
        organization_id=OrganizationId(uuid.UUID(world.outsider.organization_id)),
        role=Role.OWNER,
        device_session_id=DeviceSessionId(uuid.UUID(world.session_id)),
        expires_at=now + timedelta(minutes=5),
    )
    forged = JwtCodec("not-the-server-secret-" + "y" * 40).issue(claims, now)
    refused = await client.get("/me", headers={"Authorization": f"Bearer {forged}"})
    assert_error(refused, 401)
    # Signed with the server's secret (which only the server has) but naming organization B:
    # whatever the answer, it is never organization B's data.
    mismatched = JwtCodec(conftest.TEST_SECRET).issue(claims, now)
    answer = await client.get(
        "/organizations/current", headers={"Authorization": f"Bearer {mismatched}"}
    )
    if answer.status_code != 401:
        assert answer.json()["id"] == world.owner.organization_id, answer.text
