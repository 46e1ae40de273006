"""Projects of the caller's organization."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from workpulse.domain.ids import ProjectId
from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal
from workpulse.entrypoints.http.errors import WRITES
from workpulse.entrypoints.http.schemas import ProjectIn, ProjectOut, ProjectPatch
from workpulse.services import projects

router = APIRouter(prefix="/projects", tags=["projects"], responses=WRITES)


@router.get("")
async def list_projects(
    principal: CurrentPrincipal, container: ContainerDep, include_archived: bool = False
) -> list[ProjectOut]:
    found = await projects.list_projects(
        principal, include_archived=include_archived, uow_factory=container.database
    )
    return [ProjectOut.of(p) for p in found]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_project(
    body: ProjectIn, principal: CurrentPrincipal, container: ContainerDep
) -> ProjectOut:
    project = await projects.create_project(
        principal,
        name=body.name,
        description=body.description,
        uow_factory=container.database,
        clock=container.clock,
    )
    return ProjectOut.of(project)


@router.get("/{project_id}")
async def get_project(
    project_id: UUID, principal: CurrentPrincipal, container: ContainerDep
) -> ProjectOut:
    return ProjectOut.of(
        await projects.get_project(principal, ProjectId(project_id), uow_factory=container.database)
    )


@router.patch("/{project_id}")
async def update_project(
    project_id: UUID, body: ProjectPatch, principal: CurrentPrincipal, container: ContainerDep
) -> ProjectOut:
    project = await projects.update_project(
        principal,
        ProjectId(project_id),
        name=body.name,
        description=body.description,
        uow_factory=container.database,
    )
    return ProjectOut.of(project)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    project_id: UUID, principal: CurrentPrincipal, container: ContainerDep
) -> None:
    await projects.archive_project(
        principal, ProjectId(project_id), uow_factory=container.database, clock=container.clock
    )
