"""The caller's profile, organization and invites."""

from __future__ import annotations

from fastapi import APIRouter, status

from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal, IdentityDep
from workpulse.entrypoints.http.errors import AUTHENTICATED
from workpulse.entrypoints.http.schemas import (
    InviteIn,
    InviteOut,
    OrganizationOut,
    OrganizationPatch,
    UserOut,
)
from workpulse.services import organizations

router = APIRouter(tags=["organizations"], responses=AUTHENTICATED)


@router.get("/me")
async def me(found: IdentityDep) -> UserOut:
    return UserOut.of(found.user)


@router.get("/organizations/current")
async def current(principal: CurrentPrincipal, container: ContainerDep) -> OrganizationOut:
    return OrganizationOut.of(
        await organizations.current(principal, uow_factory=container.database)
    )


@router.patch("/organizations/current")
async def update_current(
    body: OrganizationPatch, principal: CurrentPrincipal, container: ContainerDep
) -> OrganizationOut:
    settings = None if body.settings is None else body.settings.model_dump(exclude_unset=True)
    changed = await organizations.update_current(
        principal,
        name=body.name,
        timezone=body.timezone,
        settings=settings,
        uow_factory=container.database,
    )
    return OrganizationOut.of(changed)


@router.post("/organizations/current/invites", status_code=status.HTTP_201_CREATED)
async def invite(body: InviteIn, principal: CurrentPrincipal, container: ContainerDep) -> InviteOut:
    issued = await organizations.invite(
        principal, body.role, uow_factory=container.database, clock=container.clock
    )
    return InviteOut(
        invite_token=issued.invite_token, role=issued.role, expires_at=issued.expires_at
    )
