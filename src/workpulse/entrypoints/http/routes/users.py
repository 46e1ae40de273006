"""Members of the caller's organization."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from workpulse.domain.ids import UserId
from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal
from workpulse.entrypoints.http.errors import WRITES
from workpulse.entrypoints.http.schemas import UserOut, UserPatch
from workpulse.services import members

router = APIRouter(prefix="/users", tags=["users"], responses=WRITES)


@router.get("")
async def list_users(principal: CurrentPrincipal, container: ContainerDep) -> list[UserOut]:
    found = await members.list_members(principal, uow_factory=container.database)
    return [UserOut.of(user) for user in found]


@router.get("/{user_id}")
async def get_user(user_id: UUID, principal: CurrentPrincipal, container: ContainerDep) -> UserOut:
    return UserOut.of(
        await members.get_member(principal, UserId(user_id), uow_factory=container.database)
    )


@router.patch("/{user_id}")
async def update_user(
    user_id: UUID, body: UserPatch, principal: CurrentPrincipal, container: ContainerDep
) -> UserOut:
    changed = await members.update_member(
        principal,
        UserId(user_id),
        role=body.role,
        active=body.active,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    return UserOut.of(changed)
