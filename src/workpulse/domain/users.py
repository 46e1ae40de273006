"""Members of an organization and the identity records that belong to them.

Emails are unique per organization and compared in a normalized form (trimmed, lower case):
`normalize_email("  Ann@Example.COM ")` is `"ann@example.com"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import DeviceSessionId, InviteId, OrganizationId, UserId
from workpulse.domain.roles import Role

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password(password: str) -> None:
    """At least 8 characters, no composition rules (NIST SP 800-63B)."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    organization_id: OrganizationId
    email: str
    name: str
    role: Role
    is_active: bool
    timezone: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user with the password hash: only the login path reads this."""

    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """One login on one device; its refresh tokens rotate, its access tokens name it."""

    id: DeviceSessionId
    organization_id: OrganizationId
    user_id: UserId
    device_id: str
    device_name: str | None
    created_at: datetime
    last_used_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Invite:
    id: InviteId
    organization_id: OrganizationId
    role: Role
    expires_at: datetime
    used_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at
