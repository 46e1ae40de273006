"""Organization settings for the hot paths (ingestion), cached for a few seconds per process.

A change by an admin reaches ingestion within `ttl_seconds`.
"""

from __future__ import annotations

from cachetools import TTLCache

from workpulse.adapters.db.uow import SqlDatabase
from workpulse.domain.errors import OrganizationNotFound
from workpulse.domain.ids import OrganizationId
from workpulse.domain.organizations import OrganizationSettings


class CachedOrganizationSettings:
    def __init__(self, database: SqlDatabase, *, ttl_seconds: float = 5.0) -> None:
        self._database = database
        self._cache: TTLCache[OrganizationId, OrganizationSettings] = TTLCache(
            maxsize=10_000, ttl=ttl_seconds
        )

    async def __call__(self, organization_id: OrganizationId) -> OrganizationSettings:
        found = self._cache.get(organization_id)
        if found is None:
            async with self._database(readonly=True) as uow:
                organization = await uow.organizations.get(organization_id)
            if organization is None:
                raise OrganizationNotFound()
            found = self._cache[organization_id] = organization.settings
        return found
