"""The stores of organizations, members, device sessions, invites and projects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from workpulse.domain.ids import (
    DeviceSessionId,
    OrganizationId,
    ProjectId,
    UserId,
)
from workpulse.domain.organizations import Organization, OrganizationSettings
from workpulse.domain.projects import Project
from workpulse.domain.roles import Role
from workpulse.domain.users import Credentials, DeviceSession, Invite, User


class OrganizationStore(Protocol):
    async def add(self, organization: Organization) -> None: ...

    async def get(self, organization_id: OrganizationId) -> Organization | None: ...

    async def lock(self, organization_id: OrganizationId) -> Organization | None: ...

    async def update(
        self,
        organization_id: OrganizationId,
        *,
        name: str,
        timezone: str,
        settings: OrganizationSettings,
    ) -> None: ...


class UserStore(Protocol):
    async def add(self, user: User, password_hash: str) -> None: ...

    async def get(self, organization_id: OrganizationId, user_id: UserId) -> User | None: ...

    async def list(self, organization_id: OrganizationId) -> Sequence[User]: ...

    async def count(self, organization_id: OrganizationId) -> int: ...

    async def count_active_owners(self, organization_id: OrganizationId) -> int: ...

    async def email_taken(self, organization_id: OrganizationId, email: str) -> bool: ...

    async def credentials_by_email(
        self, email: str, organization_id: OrganizationId | None
    ) -> Sequence[Credentials]: ...

    async def update(
        self, organization_id: OrganizationId, user_id: UserId, *, role: Role, is_active: bool
    ) -> None: ...


class DeviceSessionStore(Protocol):
    async def add(self, session: DeviceSession) -> None: ...

    async def get(
        self, organization_id: OrganizationId, session_id: DeviceSessionId
    ) -> DeviceSession | None: ...

    async def list_active(
        self, organization_id: OrganizationId, user_id: UserId
    ) -> Sequence[DeviceSession]: ...

    async def device_ids(self, organization_id: OrganizationId, user_id: UserId) -> frozenset[str]:
        """The devices the user has logged in from (revoked sessions included: their pings
        may still arrive from an agent's buffer)."""
        ...

    async def touch(
        self, organization_id: OrganizationId, session_id: DeviceSessionId, now: datetime
    ) -> None: ...

    async def revoke(
        self, organization_id: OrganizationId, session_id: DeviceSessionId, now: datetime
    ) -> bool: ...

    async def revoke_all(
        self, organization_id: OrganizationId, user_id: UserId, now: datetime
    ) -> Sequence[DeviceSessionId]: ...

    async def add_refresh_token(
        self, session_id: DeviceSessionId, token_hash: str, now: datetime, expires_at: datetime
    ) -> None: ...

    async def spend_refresh_token(
        self, token_hash: str, now: datetime
    ) -> tuple[DeviceSession | None, bool]:
        """Mark the token spent. Returns its device session and whether this call spent it
        (False: unknown, already spent, or expired)."""
        ...


class InviteStore(Protocol):
    async def add(self, invite: Invite, token_hash: str, created_by: UserId) -> None: ...

    async def claim(
        self, organization_id: OrganizationId, token_hash: str, user_id: UserId, now: datetime
    ) -> Invite | None:
        """Spend a usable invite of this organization; None if there is none."""
        ...


class ProjectStore(Protocol):
    async def add(self, project: Project) -> None: ...

    async def get(
        self, organization_id: OrganizationId, project_id: ProjectId
    ) -> Project | None: ...

    async def list(
        self, organization_id: OrganizationId, *, include_archived: bool
    ) -> Sequence[Project]: ...

    async def name_taken(
        self, organization_id: OrganizationId, name: str, *, other_than: ProjectId | None
    ) -> bool: ...

    async def update(
        self, organization_id: OrganizationId, project_id: ProjectId, changes: Mapping[str, Any]
    ) -> None: ...
