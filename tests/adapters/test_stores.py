"""Store behaviour that must be identical on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from workpulse.adapters.db.tenancy import MissingTenant
from workpulse.bootstrap import Container
from workpulse.domain.ids import DeviceSessionId, OrganizationId, ProjectId, UserId
from workpulse.domain.organizations import Organization, OrganizationSettings
from workpulse.domain.projects import Project


async def new_organization(container: Container) -> Organization:
    organization = Organization(
        id=OrganizationId(uuid.uuid4()),
        name="Stores",
        plan_type="free",
        timezone="Europe/Berlin",
        settings=OrganizationSettings().with_changes({"idle_minutes": 7}),
        created_at=datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=2))),
    )
    async with container.database() as uow:
        await uow.organizations.add(organization)
        await uow.commit()
    return organization


async def test_datetimes_come_back_aware_and_in_utc(container: Container) -> None:
    organization = await new_organization(container)
    async with container.database(readonly=True) as uow:
        found = await uow.organizations.get(organization.id)
    assert found is not None
    assert found.created_at == organization.created_at
    assert found.created_at.tzinfo is not None
    assert found.created_at.utcoffset() == timedelta(0)
    assert found.settings.idle_minutes == 7


async def test_an_uncommitted_unit_of_work_leaves_nothing(container: Container) -> None:
    organization = await new_organization(container)
    project = Project(
        id=ProjectId(uuid.uuid4()),
        organization_id=organization.id,
        name="Draft",
        description=None,
        created_at=datetime.now(UTC),
        archived_at=None,
    )
    async with container.database() as uow:
        await uow.projects.add(project)
    async with container.database(readonly=True) as uow:
        assert await uow.projects.get(organization.id, project.id) is None


@pytest.mark.parametrize(
    ("store", "call"),
    [
        ("users", lambda s: s.list(None)),
        ("users", lambda s: s.get(None, UserId(uuid.uuid4()))),
        ("projects", lambda s: s.list(None, include_archived=True)),
        ("device_sessions", lambda s: s.get(None, DeviceSessionId(uuid.uuid4()))),
        ("organizations", lambda s: s.get(None)),
    ],
)
async def test_a_tenant_query_without_a_tenant_raises_instead_of_widening(
    container: Container, store: str, call: Any
) -> None:
    async with container.database(readonly=True) as uow:
        with pytest.raises(MissingTenant):
            await call(getattr(uow, store))


async def test_another_organizations_rows_are_invisible(container: Container) -> None:
    mine, theirs = await new_organization(container), await new_organization(container)
    project = Project(
        id=ProjectId(uuid.uuid4()),
        organization_id=theirs.id,
        name="Theirs",
        description=None,
        created_at=datetime.now(UTC),
        archived_at=None,
    )
    async with container.database() as uow:
        await uow.projects.add(project)
        await uow.commit()
    async with container.database(readonly=True) as uow:
        assert await uow.projects.get(mine.id, project.id) is None
        assert await uow.projects.list(mine.id, include_archived=True) == []
        assert (await uow.projects.get(theirs.id, project.id)) == project
