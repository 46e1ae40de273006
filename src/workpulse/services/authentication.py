"""Authentication: from an access token to the verified caller.

The token is decoded (with a cache of verified tokens), then its device session is checked
through a short-lived cache that revocations invalidate in every process; a miss reads the
database. The role used is the member's current one, not the one in the token.
"""

from __future__ import annotations

from dataclasses import dataclass

from workpulse.domain.errors import InvalidToken, SessionRevoked
from workpulse.domain.roles import Principal
from workpulse.domain.users import User
from workpulse.services.ports import (
    Clock,
    SessionState,
    SessionStateCache,
    TokenCodec,
    UnitOfWorkFactory,
)


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified caller: who, in which organization and role, on which device."""

    principal: Principal
    user: User
    device_id: str
    device_ids: frozenset[str]


async def authenticate(
    access_token: str,
    *,
    uow_factory: UnitOfWorkFactory,
    tokens: TokenCodec,
    cache: SessionStateCache,
    clock: Clock,
) -> Identity:
    now = clock.now()
    claims = tokens.decode(access_token, now)

    async def load() -> SessionState:
        async with uow_factory(readonly=True) as uow:
            session = await uow.device_sessions.get(
                claims.organization_id, claims.device_session_id
            )
            user = await uow.users.get(claims.organization_id, claims.user_id)
            device_ids = (
                await uow.device_sessions.device_ids(claims.organization_id, user.id)
                if user is not None
                else frozenset()
            )
        if session is None or user is None or session.user_id != user.id:
            raise InvalidToken()
        return SessionState(
            user=user,
            active=session.active and user.is_active,
            device_id=session.device_id,
            device_ids=device_ids,
        )

    state = cache.get(claims.device_session_id, now) or await cache.get_or_load(
        claims.device_session_id, now, load
    )
    user = state.user
    if user.id != claims.user_id or user.organization_id != claims.organization_id:
        raise InvalidToken()
    if not state.active:
        raise SessionRevoked()
    # The role is the member's current one: a demotion takes effect before the token expires.
    principal = Principal(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        device_session_id=claims.device_session_id,
    )
    return Identity(
        principal=principal, user=user, device_id=state.device_id, device_ids=state.device_ids
    )
