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


def of_tenant(
    table: sa.Table, organization_id: UUID | None, *, column: str = "organization_id"
) -> sa.ColumnElement[bool]:
    if not isinstance(organization_id, UUID):
        raise MissingTenant(f"query on {table.name} without an organization id")
    tenant_column: sa.Column[Any] = table.c[column]
    return tenant_column == organization_id
