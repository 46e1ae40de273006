"""Reading and changing the caller's organization, and inviting members into it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workpulse.domain.errors import Forbidden, OrganizationNotFound, RoleNotAllowed
from workpulse.domain.ids import InviteId
from workpulse.domain.organizations import (
    Organization,
    check_organization_name,
    check_timezone_name,
)
from workpulse.domain.roles import Principal, Role, can_administer, can_grant
from workpulse.domain.users import Invite
from workpulse.services.identity import hash_secret, new_secret
from workpulse.services.ports import Clock, UnitOfWorkFactory

INVITE_TTL = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class IssuedInvite:
    invite_token: str
    role: Role
    expires_at: datetime


async def current(principal: Principal, *, uow_factory: UnitOfWorkFactory) -> Organization:
    async with uow_factory(readonly=True) as uow:
        organization = await uow.organizations.get(principal.organization_id)
    if organization is None:
        raise OrganizationNotFound()
    return organization


async def update_current(
    principal: Principal,
    *,
    name: str | None,
    timezone: str | None,
    settings: Mapping[str, Any] | None,
    uow_factory: UnitOfWorkFactory,
) -> Organization:
    if not can_administer(principal):
        raise Forbidden("only admins and owners change the organization")
    async with uow_factory() as uow:
        organization = await uow.organizations.lock(principal.organization_id)
        if organization is None:
            raise OrganizationNotFound()
        changed = Organization(
            id=organization.id,
            name=organization.name if name is None else check_organization_name(name),
            plan_type=organization.plan_type,
            timezone=organization.timezone if timezone is None else check_timezone_name(timezone),
            settings=organization.settings.with_changes(settings or {}),
            created_at=organization.created_at,
        )
        await uow.organizations.update(
            organization.id,
            name=changed.name,
            timezone=changed.timezone,
            settings=changed.settings,
        )
        await uow.commit()
    return changed


async def invite(
    principal: Principal,
    role: Role,
    *,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
) -> IssuedInvite:
    if not can_administer(principal):
        raise Forbidden("only admins and owners invite members")
    if not can_grant(principal.role, role):
        raise RoleNotAllowed()
    token = new_secret()
    now = clock.now()
    issued = Invite(
        id=InviteId(uuid.uuid4()),
        organization_id=principal.organization_id,
        role=role,
        expires_at=now + INVITE_TTL,
        used_at=None,
    )
    async with uow_factory() as uow:
        await uow.invites.add(issued, hash_secret(token), created_by=principal.user_id)
        await uow.commit()
    return IssuedInvite(invite_token=token, role=role, expires_at=issued.expires_at)
