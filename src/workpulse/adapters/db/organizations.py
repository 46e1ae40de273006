"""Organization rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.tables import organizations
from workpulse.adapters.db.tenancy import of_tenant
from workpulse.domain.ids import OrganizationId
from workpulse.domain.organizations import Organization, OrganizationSettings


def _organization(row: sa.Row[Any]) -> Organization:
    return Organization(
        id=OrganizationId(row.id),
        name=row.name,
        plan_type=row.plan_type,
        timezone=row.timezone,
        settings=OrganizationSettings.from_mapping(row.settings or {}),
        created_at=row.created_at,
    )


class SqlOrganizationStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, organization: Organization) -> None:
        await self._conn.execute(
            organizations.insert().values(
                id=organization.id,
                name=organization.name,
                plan_type=organization.plan_type,
                timezone=organization.timezone,
                settings=organization.settings.to_mapping(),
                created_at=organization.created_at,
            )
        )

    async def get(self, organization_id: OrganizationId) -> Organization | None:
        row = (
            await self._conn.execute(
                sa.select(organizations).where(
                    of_tenant(organizations, organization_id, column="id")
                )
            )
        ).first()
        return None if row is None else _organization(row)

    async def lock(self, organization_id: OrganizationId) -> Organization | None:
        # FOR UPDATE on PostgreSQL; SQLite writers already hold the database lock.
        row = (
            await self._conn.execute(
                sa.select(organizations)
                .where(of_tenant(organizations, organization_id, column="id"))
                .with_for_update()
            )
        ).first()
        return None if row is None else _organization(row)

    async def update(
        self,
        organization_id: OrganizationId,
        *,
        name: str,
        timezone: str,
        settings: OrganizationSettings,
    ) -> None:
        await self._conn.execute(
            organizations.update()
            .where(of_tenant(organizations, organization_id, column="id"))
            .values(name=name, timezone=timezone, settings=settings.to_mapping())
        )
