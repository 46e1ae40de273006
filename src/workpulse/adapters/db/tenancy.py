"""Tenant scoping: every tenant query goes through `of_tenant`, which refuses a missing tenant.

A filter such as `organization_id == None` would quietly match nothing or, written another way,
everything; this raises instead, so a bug can never widen a query to other organizations.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import sqlalchemy as sa


class MissingTenant(RuntimeError):
    """A programming error: a tenant query was built without an organization id."""


def tenant(organization_id: UUID | None, what: str) -> UUID:
    """The organization id for a tenant query, refused when missing: for statements built once
    with the tenant as a bound parameter, which `of_tenant` cannot build."""
    if not isinstance(organization_id, UUID):
        raise MissingTenant(f"{what} without an organization id")
    return organization_id


def of_tenant(
    table: sa.Table, organization_id: UUID | None, *, column: str = "organization_id"
) -> sa.ColumnElement[bool]:
    tenant_column: sa.Column[Any] = table.c[column]
    return tenant_column == tenant(organization_id, f"query on {table.name}")
