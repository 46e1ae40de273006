"""Members of the caller's organization: listing them and changing role or active state."""

from __future__ import annotations

from collections.abc import Sequence

from workpulse.domain.errors import Forbidden, LastOwner, RoleNotAllowed, UserNotFound
from workpulse.domain.ids import UserId
from workpulse.domain.roles import (
    Principal,
    Role,
    can_administer,
    can_change_member,
    can_view,
    sees_organization,
)
from workpulse.domain.users import User
from workpulse.services.ports import Clock, SessionStateCache, UnitOfWorkFactory


async def get_member(
    principal: Principal, user_id: UserId, *, uow_factory: UnitOfWorkFactory
) -> User:
    if not can_view(principal, user_id):
        raise UserNotFound()
    async with uow_factory(readonly=True) as uow:
        user = await uow.users.get(principal.organization_id, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def list_members(principal: Principal, *, uow_factory: UnitOfWorkFactory) -> Sequence[User]:
    if not sees_organization(principal):
        raise Forbidden("managers and up list the organization's members")
    async with uow_factory(readonly=True) as uow:
        return await uow.users.list(principal.organization_id)


async def update_member(
    principal: Principal,
    user_id: UserId,
    *,
    role: Role | None,
    active: bool | None,
    uow_factory: UnitOfWorkFactory,
    cache: SessionStateCache,
    clock: Clock,
) -> User:
    if not can_administer(principal):
        # Someone who cannot see the member learns nothing about their existence.
        if not can_view(principal, user_id):
            raise UserNotFound()
        raise Forbidden("only admins and owners change members")
    async with uow_factory() as uow:
        # Lock the organization: two admins demoting the last two owners at once must not
        # both pass the last-owner check.
        await uow.organizations.lock(principal.organization_id)
        user = await uow.users.get(principal.organization_id, user_id)
        if user is None:
            raise UserNotFound()
        new_role = user.role if role is None else role
        new_active = user.is_active if active is None else active
        if (new_role, new_active) != (user.role, user.is_active):
            if not can_change_member(principal.role, user.role, new_role):
                raise RoleNotAllowed()
            loses_owner = user.role is Role.OWNER and user.is_active
            stops_owning = new_role is not Role.OWNER or not new_active
            if (
                loses_owner
                and stops_owning
                and await uow.users.count_active_owners(principal.organization_id) <= 1
            ):
                raise LastOwner()
            await uow.users.update(
                principal.organization_id, user.id, role=new_role, is_active=new_active
            )
            if not new_active:
                await uow.device_sessions.revoke_all(
                    principal.organization_id, user.id, clock.now()
                )
            uow.after_commit(lambda: cache.forget_user(user.id))
            await uow.commit()
    return User(
        id=user.id,
        organization_id=user.organization_id,
        email=user.email,
        name=user.name,
        role=new_role,
        is_active=new_active,
        timezone=user.timezone,
        created_at=user.created_at,
    )
