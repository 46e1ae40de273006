"""`GET /presence`: who in the caller's organization is online, idle or offline."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal
from workpulse.entrypoints.http.errors import AUTHENTICATED
from workpulse.services import presence

router = APIRouter(prefix="/presence", tags=["presence"], responses=AUTHENTICATED)


class CurrentAppOut(BaseModel):
    app_name: str
    domain: str | None


class PresenceOut(BaseModel):
    user_id: UUID
    name: str
    status: Literal["online", "idle", "offline"]
    last_seen: datetime | None
    current_app: CurrentAppOut | None


class OrganizationPresenceOut(BaseModel):
    as_of: datetime
    users: list[PresenceOut]


@router.get("")
async def organization_presence(
    principal: CurrentPrincipal, container: ContainerDep
) -> OrganizationPresenceOut:
    """Managers and up see every active member; employees see themselves (every member, when
    the organization's `employees_see_team` is on, but the current app only of themselves).
    `current_app` is shown while the user's agent is sending pings, within the organization's
    privacy settings."""
    views = await presence.organization_presence(
        principal,
        uow_factory=container.database,
        store=container.presence,
        settings_of=container.settings_of,
        clock=container.clock,
    )
    return OrganizationPresenceOut(
        as_of=container.clock.now(),
        users=[
            PresenceOut(
                user_id=v.user_id,
                name=v.name,
                status=v.status.value,
                last_seen=v.last_seen,
                current_app=None
                if v.app_name is None
                else CurrentAppOut(app_name=v.app_name, domain=v.domain),
            )
            for v in views
        ],
    )
