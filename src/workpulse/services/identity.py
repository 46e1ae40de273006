"""Registration, login as a device session, refresh-token rotation, logout, authentication.

Refresh tokens are opaque random strings stored as SHA-256 hashes. Each use spends the token
and issues a new one; presenting a spent token again means it was stolen or replayed, so the
whole device session is revoked (reuse detection). Access tokens are short-lived JWTs naming
the device session; authentication checks that session through a short-lived cache that
revocations invalidate in every process.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workpulse.domain.errors import (
    DeviceSessionNotFound,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidInvite,
    InvalidToken,
    OrganizationNotFound,
    OrganizationRequired,
    RoleNotAllowed,
    SessionRevoked,
    SignupClosed,
    TooManyAttempts,
)
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.organizations import (
    Organization,
    OrganizationSettings,
    check_organization_name,
)
from workpulse.domain.roles import Principal, Role
from workpulse.domain.users import DeviceSession, User, check_password, normalize_email
from workpulse.services.ports import (
    AccessClaims,
    Clock,
    LoginThrottle,
    PasswordHasher,
    SessionStateCache,
    TokenCodec,
    UnitOfWork,
    UnitOfWorkFactory,
)


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    access_ttl: timedelta
    refresh_ttl: timedelta


@dataclass(frozen=True, slots=True)
class Device:
    """The device a login comes from, as the client describes it."""

    device_id: str | None = None
    device_name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class TokenPair:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    device_session_id: DeviceSessionId


@dataclass(frozen=True, slots=True)
class Registration:
    email: str
    password: str
    name: str
    organization_id: OrganizationId | None = None
    organization_name: str | None = None
    role: Role | None = None
    invite_token: str | None = None


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def register(
    registration: Registration,
    device: Device,
    *,
    uow_factory: UnitOfWorkFactory,
    hasher: PasswordHasher,
    tokens: TokenCodec,
    clock: Clock,
    policy: AuthPolicy,
) -> TokenPair:
    check_password(registration.password)
    email = normalize_email(registration.email)
    name = registration.name.strip() or email
    password_hash = await hasher.hash(registration.password)
    async with uow_factory() as uow:
        now = clock.now()
        user_id = UserId(uuid.uuid4())
        if registration.organization_id is None:
            if registration.role not in (None, Role.OWNER):
                raise RoleNotAllowed("the creator of an organization is its owner")
            organization = Organization(
                id=OrganizationId(uuid.uuid4()),
                name=check_organization_name(registration.organization_name or f"{name}'s team"),
                plan_type="free",
                timezone="UTC",
                settings=OrganizationSettings(),
                created_at=now,
            )
            await uow.organizations.add(organization)
            role = Role.OWNER
        else:
            organization_id = registration.organization_id
            # Locking the organization serializes racing registrations, so exactly one of them
            # can be its first member and owner.
            found = await uow.organizations.lock(organization_id)
            if found is None:
                raise OrganizationNotFound()
            organization = found
            if await uow.users.email_taken(organization.id, email):
                raise EmailAlreadyRegistered()
            role = await _joining_role(uow, organization, registration, user_id, now)
        user = User(
            id=user_id,
            organization_id=organization.id,
            email=email,
            name=name,
            role=role,
            is_active=True,
            timezone=None,
            created_at=now,
        )
        await uow.users.add(user, password_hash)
        pair = await _open_device_session(uow, user, device, now, tokens=tokens, policy=policy)
        await uow.commit()
    return pair


async def _joining_role(
    uow: UnitOfWork,
    organization: Organization,
    registration: Registration,
    user_id: UserId,
    now: datetime,
) -> Role:
    if await uow.users.count(organization.id) == 0:
        entitled = Role.OWNER
    elif registration.invite_token is not None:
        invite = await uow.invites.claim(
            organization.id, hash_secret(registration.invite_token), user_id, now
        )
        if invite is None:
            raise InvalidInvite()
        entitled = invite.role
    elif organization.settings.open_signup:
        entitled = Role.EMPLOYEE
    else:
        raise SignupClosed()
    requested = registration.role or entitled
    if requested.rank > entitled.rank:
        raise RoleNotAllowed(f"you may join this organization as {entitled.value} at most")
    return requested


async def _open_device_session(
    uow: UnitOfWork,
    user: User,
    device: Device,
    now: datetime,
    *,
    tokens: TokenCodec,
    policy: AuthPolicy,
) -> TokenPair:
    session = DeviceSession(
        id=DeviceSessionId(uuid.uuid4()),
        organization_id=user.organization_id,
        user_id=user.id,
        device_id=device.device_id or uuid.uuid4().hex,
        device_name=device.device_name,
        created_at=now,
        last_used_at=now,
        revoked_at=None,
    )
    await uow.device_sessions.add(session)
    return await _issue_pair(uow, user, session.id, now, tokens=tokens, policy=policy)


async def _issue_pair(
    uow: UnitOfWork,
    user: User,
    session_id: DeviceSessionId,
    now: datetime,
    *,
    tokens: TokenCodec,
    policy: AuthPolicy,
) -> TokenPair:
    refresh = new_secret()
    await uow.device_sessions.add_refresh_token(
        session_id, hash_secret(refresh), now, now + policy.refresh_ttl
    )
    claims = AccessClaims(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        device_session_id=session_id,
        expires_at=now + policy.access_ttl,
    )
    return TokenPair(
        user=user,
        access_token=tokens.issue(claims, now),
        refresh_token=refresh,
        expires_in=int(policy.access_ttl.total_seconds()),
        device_session_id=session_id,
    )


async def login(
    email: str,
    password: str,
    organization_id: OrganizationId | None,
    device: Device,
    *,
    uow_factory: UnitOfWorkFactory,
    hasher: PasswordHasher,
    tokens: TokenCodec,
    throttle: LoginThrottle,
    clock: Clock,
    policy: AuthPolicy,
    dummy_hash: str,
) -> TokenPair:
    email = normalize_email(email)
    # Keyed on the email alone: naming an organization must not buy another round of guesses.
    keys = [f"account:{email}"]
    if device.address:
        keys.append(f"address:{device.address}")
    wait = await throttle.retry_after(keys)
    if wait is not None:
        raise TooManyAttempts(wait)

    async with uow_factory(readonly=True) as uow:
        candidates = await uow.users.credentials_by_email(email, organization_id)
    # Verify a password whether or not the email exists, so that both answers take as long.
    matches: list[User] = []
    for credentials in candidates or ():
        if await hasher.verify(credentials.password_hash, password) and credentials.user.is_active:
            matches.append(credentials.user)
    if not candidates:
        await hasher.verify(dummy_hash, password)
    if not matches:
        await throttle.record_failure(keys)
        raise InvalidCredentials()
    if len(matches) > 1:
        raise OrganizationRequired()
    user = matches[0]
    await throttle.clear(keys[0])
    async with uow_factory() as uow:
        pair = await _open_device_session(
            uow, user, device, clock.now(), tokens=tokens, policy=policy
        )
        await uow.commit()
    return pair


async def refresh(
    refresh_token: str,
    *,
    uow_factory: UnitOfWorkFactory,
    tokens: TokenCodec,
    cache: SessionStateCache,
    clock: Clock,
    policy: AuthPolicy,
) -> TokenPair:
    async with uow_factory() as uow:
        now = clock.now()
        session, spent_now = await uow.device_sessions.spend_refresh_token(
            hash_secret(refresh_token), now
        )
        if session is None:
            raise InvalidToken("unknown refresh token")
        if not session.active:
            raise SessionRevoked()
        if not spent_now:
            # A spent (or expired) token came back: treat the device session as compromised.
            await uow.device_sessions.revoke(session.organization_id, session.id, now)
            uow.after_commit(lambda: cache.forget_session(session.id))
            await uow.commit()
            raise SessionRevoked("refresh token reuse detected: the device session is revoked")
        user = await uow.users.get(session.organization_id, session.user_id)
        if user is None or not user.is_active:
            raise SessionRevoked()
        await uow.device_sessions.touch(session.organization_id, session.id, now)
        pair = await _issue_pair(uow, user, session.id, now, tokens=tokens, policy=policy)
        await uow.commit()
    return pair


async def logout(
    principal: Principal,
    *,
    uow_factory: UnitOfWorkFactory,
    cache: SessionStateCache,
    clock: Clock,
) -> None:
    await revoke_device_session(
        principal, principal.device_session_id, uow_factory=uow_factory, cache=cache, clock=clock
    )


async def logout_all(
    principal: Principal,
    *,
    uow_factory: UnitOfWorkFactory,
    cache: SessionStateCache,
    clock: Clock,
) -> None:
    async with uow_factory() as uow:
        await uow.device_sessions.revoke_all(
            principal.organization_id, principal.user_id, clock.now()
        )
        uow.after_commit(lambda: cache.forget_user(principal.user_id))
        await uow.commit()


async def list_device_sessions(
    principal: Principal, *, uow_factory: UnitOfWorkFactory
) -> Sequence[DeviceSession]:
    async with uow_factory(readonly=True) as uow:
        return await uow.device_sessions.list_active(principal.organization_id, principal.user_id)


async def revoke_device_session(
    principal: Principal,
    session_id: DeviceSessionId,
    *,
    uow_factory: UnitOfWorkFactory,
    cache: SessionStateCache,
    clock: Clock,
) -> None:
    async with uow_factory() as uow:
        session = await uow.device_sessions.get(principal.organization_id, session_id)
        if session is None or session.user_id != principal.user_id:
            raise DeviceSessionNotFound()
        await uow.device_sessions.revoke(principal.organization_id, session_id, clock.now())
        uow.after_commit(lambda: cache.forget_session(session_id))
        await uow.commit()
