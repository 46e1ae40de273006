"""Projects of the caller's organization: everyone reads, managers and up write."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from workpulse.domain.errors import Forbidden, ProjectNameTaken, ProjectNotFound
from workpulse.domain.ids import ProjectId
from workpulse.domain.projects import Project, check_project_name
from workpulse.domain.roles import Principal, can_write_projects
from workpulse.services.ports import Clock, UnitOfWorkFactory


def _require_writer(principal: Principal) -> None:
    if not can_write_projects(principal):
        raise Forbidden("managers and up change projects")


async def list_projects(
    principal: Principal, *, include_archived: bool, uow_factory: UnitOfWorkFactory
) -> Sequence[Project]:
    async with uow_factory(readonly=True) as uow:
        return await uow.projects.list(principal.organization_id, include_archived=include_archived)


async def get_project(
    principal: Principal, project_id: ProjectId, *, uow_factory: UnitOfWorkFactory
) -> Project:
    async with uow_factory(readonly=True) as uow:
        project = await uow.projects.get(principal.organization_id, project_id)
    if project is None:
        raise ProjectNotFound()
    return project


async def create_project(
    principal: Principal,
    *,
    name: str,
    description: str | None,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
) -> Project:
    _require_writer(principal)
    project = Project(
        id=ProjectId(uuid.uuid4()),
        organization_id=principal.organization_id,
        name=check_project_name(name),
        description=description,
        created_at=clock.now(),
        archived_at=None,
    )
    async with uow_factory() as uow:
        if await uow.projects.name_taken(project.organization_id, project.name, other_than=None):
            raise ProjectNameTaken()
        await uow.projects.add(project)
        await uow.commit()
    return project


async def update_project(
    principal: Principal,
    project_id: ProjectId,
    *,
    name: str | None,
    description: str | None,
    uow_factory: UnitOfWorkFactory,
) -> Project:
    async with uow_factory() as uow:
        project = await uow.projects.get(principal.organization_id, project_id)
        if project is None:
            raise ProjectNotFound()
        _require_writer(principal)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = check_project_name(name)
            if await uow.projects.name_taken(
                principal.organization_id, changes["name"], other_than=project_id
            ):
                raise ProjectNameTaken()
        if description is not None:
            changes["description"] = description
        if changes:
            await uow.projects.update(principal.organization_id, project_id, changes)
            await uow.commit()
    return Project(
        id=project.id,
        organization_id=project.organization_id,
        name=changes.get("name", project.name),
        description=changes.get("description", project.description),
        created_at=project.created_at,
        archived_at=project.archived_at,
    )


async def archive_project(
    principal: Principal,
    project_id: ProjectId,
    *,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
) -> None:
    async with uow_factory() as uow:
        project = await uow.projects.get(principal.organization_id, project_id)
        if project is None or project.archived_at is not None:
            raise ProjectNotFound()
        _require_writer(principal)
        await uow.projects.update(
            principal.organization_id, project_id, {"archived_at": clock.now()}
        )
        await uow.commit()
