"""Identity: the clock, passwords, tokens, the device-session cache and the login throttle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from workpulse.domain.ids import (
    DeviceSessionId,
    OrganizationId,
    UserId,
)
from workpulse.domain.roles import Role
from workpulse.domain.users import User


class Clock(Protocol):
    def now(self) -> datetime: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UserId
    organization_id: OrganizationId
    role: Role
    device_session_id: DeviceSessionId
    expires_at: datetime


class TokenCodec(Protocol):
    def issue(self, claims: AccessClaims, now: datetime) -> str: ...

    def decode(self, token: str, now: datetime) -> AccessClaims: ...


@dataclass(frozen=True, slots=True)
class SessionState:
    """What authentication needs beyond the token: is the device session alive, who is the user,
    which device it is and which other devices the user has (a ping may name any of them)."""

    user: User
    active: bool
    device_id: str
    device_ids: frozenset[str]


class SessionStateCache(Protocol):
    """Short-lived cache of device-session state, so most requests skip the database.

    `forget_*` drops entries here and, when several processes run, in every other process.
    """

    def get(self, session_id: DeviceSessionId, now: datetime) -> SessionState | None: ...

    def put(self, session_id: DeviceSessionId, state: SessionState, now: datetime) -> None: ...

    async def get_or_load(
        self,
        session_id: DeviceSessionId,
        now: datetime,
        load: Callable[[], Awaitable[SessionState]],
    ) -> SessionState:
        """The cached state, or the result of `load`, which is then cached. Concurrent misses
        for one session share a single `load`: when a busy session's entry expires, one
        request reads the database, not every request in flight."""
        ...

    async def forget_session(self, session_id: DeviceSessionId) -> None: ...

    async def forget_user(self, user_id: UserId) -> None: ...


class LoginThrottle(Protocol):
    """Counts failed logins per key (account, client address) over a window."""

    async def retry_after(self, keys: Sequence[str]) -> int | None: ...

    async def record_failure(self, keys: Sequence[str]) -> None: ...

    async def clear(self, key: str) -> None: ...
