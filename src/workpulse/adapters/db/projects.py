"""Project rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.tables import projects
from workpulse.adapters.db.tenancy import of_tenant
from workpulse.domain.ids import OrganizationId, ProjectId
from workpulse.domain.projects import Project

_CHANGEABLE = frozenset({"name", "description", "archived_at"})


def _project(row: sa.Row[Any]) -> Project:
    return Project(
        id=ProjectId(row.id),
        organization_id=OrganizationId(row.organization_id),
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        archived_at=row.archived_at,
    )


class SqlProjectStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, project: Project) -> None:
        await self._conn.execute(
            projects.insert().values(
                id=project.id,
                organization_id=project.organization_id,
                name=project.name,
                description=project.description,
                created_at=project.created_at,
                archived_at=project.archived_at,
            )
        )

    async def get(self, organization_id: OrganizationId, project_id: ProjectId) -> Project | None:
        row = (
            await self._conn.execute(
                sa.select(projects).where(
                    of_tenant(projects, organization_id), projects.c.id == project_id
                )
            )
        ).first()
        return None if row is None else _project(row)

    async def list(
        self, organization_id: OrganizationId, *, include_archived: bool
    ) -> Sequence[Project]:
        query = sa.select(projects).where(of_tenant(projects, organization_id))
        if not include_archived:
            query = query.where(projects.c.archived_at.is_(None))
        rows = await self._conn.execute(query.order_by(projects.c.name, projects.c.id))
        return [_project(row) for row in rows]

    async def name_taken(
        self, organization_id: OrganizationId, name: str, *, other_than: ProjectId | None
    ) -> bool:
        query = sa.select(projects.c.id).where(
            of_tenant(projects, organization_id),
            projects.c.name == name,
            projects.c.archived_at.is_(None),
        )
        if other_than is not None:
            query = query.where(projects.c.id != other_than)
        return await self._conn.scalar(query.limit(1)) is not None

    async def update(
        self, organization_id: OrganizationId, project_id: ProjectId, changes: Mapping[str, Any]
    ) -> None:
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise ValueError(f"not changeable: {sorted(unknown)}")
        await self._conn.execute(
            projects.update()
            .where(of_tenant(projects, organization_id), projects.c.id == project_id)
            .values(**changes)
        )
