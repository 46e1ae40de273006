"""Users, device sessions with their refresh tokens, and invites."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.tables import device_sessions, invites, refresh_tokens, users
from workpulse.adapters.db.tenancy import of_tenant
from workpulse.domain.ids import DeviceSessionId, InviteId, OrganizationId, UserId
from workpulse.domain.roles import Role
from workpulse.domain.users import Credentials, DeviceSession, Invite, User

_USER_COLUMNS = [c for c in users.c if c.name != "password_hash"]


def _user(row: sa.Row[Any]) -> User:
    return User(
        id=UserId(row.id),
        organization_id=OrganizationId(row.organization_id),
        email=row.email,
        name=row.name,
        role=Role(row.role),
        is_active=row.is_active,
        timezone=row.timezone,
        created_at=row.created_at,
    )


def _device_session(row: sa.Row[Any]) -> DeviceSession:
    return DeviceSession(
        id=DeviceSessionId(row.id),
        organization_id=OrganizationId(row.organization_id),
        user_id=UserId(row.user_id),
        device_id=row.device_id,
        device_name=row.device_name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class SqlUserStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, user: User, password_hash: str) -> None:
        await self._conn.execute(
            users.insert().values(
                id=user.id,
                organization_id=user.organization_id,
                email=user.email,
                name=user.name,
                password_hash=password_hash,
                role=user.role.value,
                is_active=user.is_active,
                timezone=user.timezone,
                created_at=user.created_at,
            )
        )

    async def get(self, organization_id: OrganizationId, user_id: UserId) -> User | None:
        row = (
            await self._conn.execute(
                sa.select(*_USER_COLUMNS).where(
                    of_tenant(users, organization_id), users.c.id == user_id
                )
            )
        ).first()
        return None if row is None else _user(row)

    async def list(self, organization_id: OrganizationId) -> Sequence[User]:
        rows = await self._conn.execute(
            sa.select(*_USER_COLUMNS)
            .where(of_tenant(users, organization_id))
            .order_by(users.c.created_at, users.c.id)
        )
        return [_user(row) for row in rows]

    async def count(self, organization_id: OrganizationId) -> int:
        result = await self._conn.scalar(
            sa.select(sa.func.count()).where(of_tenant(users, organization_id))
        )
        return int(result or 0)

    async def count_active_owners(self, organization_id: OrganizationId) -> int:
        result = await self._conn.scalar(
            sa.select(sa.func.count()).where(
                of_tenant(users, organization_id),
                users.c.role == Role.OWNER.value,
                users.c.is_active.is_(True),
            )
        )
        return int(result or 0)

    async def email_taken(self, organization_id: OrganizationId, email: str) -> bool:
        found = await self._conn.scalar(
            sa.select(users.c.id).where(of_tenant(users, organization_id), users.c.email == email)
        )
        return found is not None

    async def credentials_by_email(
        self, email: str, organization_id: OrganizationId | None
    ) -> Sequence[Credentials]:
        # The one lookup that is not scoped to a tenant: before login there is no identity yet,
        # and an email may belong to several organizations.
        query = sa.select(users).where(users.c.email == email)
        if organization_id is not None:
            query = query.where(of_tenant(users, organization_id))
        rows = await self._conn.execute(query.limit(10))
        return [Credentials(user=_user(row), password_hash=row.password_hash) for row in rows]

    async def update(
        self, organization_id: OrganizationId, user_id: UserId, *, role: Role, is_active: bool
    ) -> None:
        await self._conn.execute(
            users.update()
            .where(of_tenant(users, organization_id), users.c.id == user_id)
            .values(role=role.value, is_active=is_active)
        )


class SqlDeviceSessionStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: DeviceSession) -> None:
        await self._conn.execute(
            device_sessions.insert().values(
                id=session.id,
                organization_id=session.organization_id,
                user_id=session.user_id,
                device_id=session.device_id,
                device_name=session.device_name,
                created_at=session.created_at,
                last_used_at=session.last_used_at,
                revoked_at=session.revoked_at,
            )
        )

    async def get(
        self, organization_id: OrganizationId, session_id: DeviceSessionId
    ) -> DeviceSession | None:
        row = (
            await self._conn.execute(
                sa.select(device_sessions).where(
                    of_tenant(device_sessions, organization_id),
                    device_sessions.c.id == session_id,
                )
            )
        ).first()
        return None if row is None else _device_session(row)

    async def list_active(
        self, organization_id: OrganizationId, user_id: UserId
    ) -> Sequence[DeviceSession]:
        rows = await self._conn.execute(
            sa.select(device_sessions)
            .where(
                of_tenant(device_sessions, organization_id),
                device_sessions.c.user_id == user_id,
                device_sessions.c.revoked_at.is_(None),
            )
            .order_by(device_sessions.c.last_used_at.desc())
        )
        return [_device_session(row) for row in rows]

    async def device_ids(self, organization_id: OrganizationId, user_id: UserId) -> frozenset[str]:
        rows = await self._conn.execute(
            sa.select(device_sessions.c.device_id)
            .where(
                of_tenant(device_sessions, organization_id),
                device_sessions.c.user_id == user_id,
            )
            .distinct()
        )
        return frozenset(row.device_id for row in rows)

    async def touch(
        self, organization_id: OrganizationId, session_id: DeviceSessionId, now: datetime
    ) -> None:
        await self._conn.execute(
            device_sessions.update()
            .where(
                of_tenant(device_sessions, organization_id),
                device_sessions.c.id == session_id,
            )
            .values(last_used_at=now)
        )

    async def revoke(
        self, organization_id: OrganizationId, session_id: DeviceSessionId, now: datetime
    ) -> bool:
        result = await self._conn.execute(
            device_sessions.update()
            .where(
                of_tenant(device_sessions, organization_id),
                device_sessions.c.id == session_id,
                device_sessions.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    async def revoke_all(
        self, organization_id: OrganizationId, user_id: UserId, now: datetime
    ) -> Sequence[DeviceSessionId]:
        rows = await self._conn.execute(
            device_sessions.update()
            .where(
                of_tenant(device_sessions, organization_id),
                device_sessions.c.user_id == user_id,
                device_sessions.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(device_sessions.c.id)
        )
        return [DeviceSessionId(row.id) for row in rows]

    async def add_refresh_token(
        self, session_id: DeviceSessionId, token_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        await self._conn.execute(
            refresh_tokens.insert().values(
                device_session_id=session_id,
                token_hash=token_hash,
                created_at=now,
                expires_at=expires_at,
            )
        )

    async def spend_refresh_token(
        self, token_hash: str, now: datetime
    ) -> tuple[DeviceSession | None, bool]:
        # One conditional UPDATE: of two racing refreshes with the same token, one spends it.
        spent = (
            await self._conn.execute(
                refresh_tokens.update()
                .where(
                    refresh_tokens.c.token_hash == token_hash,
                    refresh_tokens.c.spent_at.is_(None),
                    refresh_tokens.c.expires_at > now,
                )
                .values(spent_at=now)
                .returning(refresh_tokens.c.device_session_id)
            )
        ).first()
        if spent is not None:
            session_id = spent.device_session_id
        else:
            session_id = await self._conn.scalar(
                sa.select(refresh_tokens.c.device_session_id).where(
                    refresh_tokens.c.token_hash == token_hash
                )
            )
            if session_id is None:
                return None, False
        row = (
            await self._conn.execute(
                sa.select(device_sessions).where(device_sessions.c.id == session_id)
            )
        ).first()
        return (None if row is None else _device_session(row)), spent is not None


class SqlInviteStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, invite: Invite, token_hash: str, created_by: UserId) -> None:
        await self._conn.execute(
            invites.insert().values(
                id=invite.id,
                organization_id=invite.organization_id,
                token_hash=token_hash,
                role=invite.role.value,
                created_by=created_by,
                expires_at=invite.expires_at,
            )
        )

    async def claim(
        self, organization_id: OrganizationId, token_hash: str, user_id: UserId, now: datetime
    ) -> Invite | None:
        row = (
            await self._conn.execute(
                invites.update()
                .where(
                    of_tenant(invites, organization_id),
                    invites.c.token_hash == token_hash,
                    invites.c.used_at.is_(None),
                    invites.c.expires_at > now,
                )
                .values(used_at=now, used_by=user_id)
                .returning(invites)
            )
        ).first()
        if row is None:
            return None
        return Invite(
            id=InviteId(row.id),
            organization_id=OrganizationId(row.organization_id),
            role=Role(row.role),
            expires_at=row.expires_at,
            used_at=row.used_at,
        )
