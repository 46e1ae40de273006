"""Roles and who may do what inside one organization.

Ranks: owner > admin > manager > employee. An employee sees only their own data; managers and up
see their organization's. Nobody grants a role above their own, only an owner touches an owner,
and the last active owner cannot be demoted or deactivated.

Example: `can_grant(Role.ADMIN, Role.OWNER)` is False; `can_view(manager, someone_in_org)` is True.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId


class Role(StrEnum):
    EMPLOYEE = "employee"
    MANAGER = "manager"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {Role.EMPLOYEE: 0, Role.MANAGER: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: always built from a verified access token, never from a request body."""

    user_id: UserId
    organization_id: OrganizationId
    role: Role
    device_session_id: DeviceSessionId


def sees_organization(principal: Principal) -> bool:
    """Managers and up see every member's data in their organization."""
    return principal.role.at_least(Role.MANAGER)


def can_view(principal: Principal, subject: UserId) -> bool:
    return subject == principal.user_id or sees_organization(principal)


def can_administer(principal: Principal) -> bool:
    return principal.role.at_least(Role.ADMIN)


def can_write_projects(principal: Principal) -> bool:
    return principal.role.at_least(Role.MANAGER)


def can_grant(granter: Role, role: Role) -> bool:
    """Admins invite or promote up to admin; owners up to owner."""
    return granter.at_least(Role.ADMIN) and granter.rank >= role.rank


def can_change_member(actor: Role, current: Role, new: Role) -> bool:
    """An admin may change members below owner; only an owner changes an owner."""
    if not actor.at_least(Role.ADMIN):
        return False
    if current is Role.OWNER and actor is not Role.OWNER:
        return False
    return can_grant(actor, new)
