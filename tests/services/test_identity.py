"""Identity use cases on the real databases (each test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from workpulse.bootstrap import Container
from workpulse.domain.errors import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidInvite,
    InvalidToken,
    LastOwner,
    OrganizationRequired,
    RoleNotAllowed,
    SessionRevoked,
    SignupClosed,
)
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.roles import Principal, Role
from workpulse.services import authentication, identity, members, organizations
from workpulse.services.identity import Device, Registration, TokenPair

PASSWORD = "a long enough password"


def email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@Example.com"


async def register(container: Container, registration: Registration, **device: Any) -> TokenPair:
    return await identity.register(
        registration,
        Device(**device),
        uow_factory=container.database,
        hasher=container.hasher,
        tokens=container.tokens,
        clock=container.clock,
        policy=container.auth_policy,
    )


async def login(
    container: Container,
    address: str,
    organization_id: OrganizationId | None = None,
    password: str = PASSWORD,
    hasher: Any = None,
) -> TokenPair:
    return await identity.login(
        address,
        password,
        organization_id,
        Device(device_name="laptop", address="10.0.0.1"),
        uow_factory=container.database,
        hasher=hasher or container.hasher,
        tokens=container.tokens,
        throttle=container.throttle,
        clock=container.clock,
        policy=container.auth_policy,
        dummy_hash=container.dummy_hash,
    )


async def authenticate(container: Container, access_token: str) -> Principal:
    found = await authentication.authenticate(
        access_token,
        uow_factory=container.database,
        tokens=container.tokens,
        cache=container.session_cache,
        clock=container.clock,
    )
    return found.principal


async def refresh(container: Container, token: str) -> TokenPair:
    return await identity.refresh(
        token,
        uow_factory=container.database,
        tokens=container.tokens,
        cache=container.session_cache,
        clock=container.clock,
        policy=container.auth_policy,
    )


async def new_owner(container: Container) -> tuple[TokenPair, Principal]:
    pair = await register(
        container,
        Registration(email=email("owner"), password=PASSWORD, name="Owner", organization_name="O"),
    )
    return pair, await authenticate(container, pair.access_token)


async def join(container: Container, owner: Principal, role: Role, name: str = "M") -> TokenPair:
    """A new member of the owner's organization, through an invite for `role`."""
    issued = await organizations.invite(
        owner, role, uow_factory=container.database, clock=container.clock
    )
    return await register(
        container,
        Registration(
            email=email(),
            password=PASSWORD,
            name=name,
            organization_id=owner.organization_id,
            invite_token=issued.invite_token,
        ),
    )


async def raw_organization(container: Container) -> OrganizationId:
    async with container.engine.begin() as conn:
        found = await conn.execute(
            sa.text(
                "INSERT INTO organizations (name, plan_type) VALUES ('Raw', 'free') RETURNING id"
            )
        )
        return OrganizationId(uuid.UUID(str(found.scalar_one())))


async def test_registering_without_an_organization_creates_one_owned_by_the_user(
    container: Container,
) -> None:
    address = email()
    pair = await register(
        container,
        Registration(email=address, password=PASSWORD, name="Ann", organization_name="Ann Co"),
    )
    assert pair.user.role is Role.OWNER
    assert pair.user.email == address.lower()
    principal = await authenticate(container, pair.access_token)
    assert principal.organization_id == pair.user.organization_id


async def test_the_first_member_of_a_hand_made_organization_becomes_its_owner(
    container: Container,
) -> None:
    org = await raw_organization(container)
    first = await register(
        container, Registration(email=email(), password=PASSWORD, name="F", organization_id=org)
    )
    assert first.user.role is Role.OWNER
    with pytest.raises(SignupClosed):
        await register(
            container, Registration(email=email(), password=PASSWORD, name="S", organization_id=org)
        )


async def test_racing_first_members_make_exactly_one_owner(container: Container) -> None:
    org = await raw_organization(container)
    outcomes = await asyncio.gather(
        *(
            register(
                container,
                Registration(email=email(), password=PASSWORD, name="R", organization_id=org),
            )
            for _ in range(6)
        ),
        return_exceptions=True,
    )
    owners = [o for o in outcomes if isinstance(o, TokenPair)]
    assert len(owners) == 1
    assert all(isinstance(o, SignupClosed) for o in outcomes if not isinstance(o, TokenPair))


async def test_an_invite_fixes_the_role_and_works_once(container: Container) -> None:
    _, owner = await new_owner(container)
    issued = await organizations.invite(
        owner, Role.MANAGER, uow_factory=container.database, clock=container.clock
    )

    async def join_with_the_invite() -> TokenPair:
        return await register(
            container,
            Registration(
                email=email(),
                password=PASSWORD,
                name="M",
                organization_id=owner.organization_id,
                invite_token=issued.invite_token,
            ),
        )

    joined = await join_with_the_invite()
    assert joined.user.role is Role.MANAGER
    with pytest.raises(InvalidInvite):
        await join_with_the_invite()


async def test_asking_for_more_than_the_invite_grants_is_refused(container: Container) -> None:
    _, owner = await new_owner(container)
    issued = await organizations.invite(
        owner, Role.EMPLOYEE, uow_factory=container.database, clock=container.clock
    )
    with pytest.raises(RoleNotAllowed):
        await register(
            container,
            Registration(
                email=email(),
                password=PASSWORD,
                name="E",
                organization_id=owner.organization_id,
                invite_token=issued.invite_token,
                role=Role.ADMIN,
            ),
        )


async def test_open_signup_admits_employees_only(container: Container) -> None:
    _, owner = await new_owner(container)
    await organizations.update_current(
        owner,
        name=None,
        timezone=None,
        settings={"open_signup": True},
        uow_factory=container.database,
    )
    joined = await register(
        container,
        Registration(
            email=email(), password=PASSWORD, name="E", organization_id=owner.organization_id
        ),
    )
    assert joined.user.role is Role.EMPLOYEE
    with pytest.raises(RoleNotAllowed):
        await register(
            container,
            Registration(
                email=email(),
                password=PASSWORD,
                name="E2",
                organization_id=owner.organization_id,
                role=Role.MANAGER,
            ),
        )


async def test_an_email_is_unique_per_organization_whatever_its_case(container: Container) -> None:
    org = await raw_organization(container)
    address = email()
    await register(
        container, Registration(email=address, password=PASSWORD, name="A", organization_id=org)
    )
    async with container.database() as uow:
        settings = (await uow.organizations.get(org)).settings  # type: ignore[union-attr]
        await uow.organizations.update(
            org, name="Raw", timezone="UTC", settings=settings.with_changes({"open_signup": True})
        )
        await uow.commit()
    with pytest.raises(EmailAlreadyRegistered):
        await register(
            container,
            Registration(email=address.upper(), password=PASSWORD, name="B", organization_id=org),
        )


async def test_login_verifies_one_password_whether_or_not_the_email_exists(
    container: Container,
) -> None:
    class CountingHasher:
        def __init__(self) -> None:
            self.verifies = 0

        async def hash(self, password: str) -> str:
            return await container.hasher.hash(password)

        async def verify(self, password_hash: str, password: str) -> bool:
            self.verifies += 1
            return await container.hasher.verify(password_hash, password)

    pair, _ = await new_owner(container)
    known, unknown = CountingHasher(), CountingHasher()
    with pytest.raises(InvalidCredentials):
        await login(container, pair.user.email, password="wrong password", hasher=known)
    with pytest.raises(InvalidCredentials):
        await login(container, email("nobody"), password="wrong password", hasher=unknown)
    assert known.verifies == unknown.verifies == 1


async def test_an_email_in_two_organizations_needs_the_organization_id(
    container: Container,
) -> None:
    address = email()
    first = await register(
        container, Registration(email=address, password=PASSWORD, name="A", organization_name="1")
    )
    second = await register(
        container, Registration(email=address, password=PASSWORD, name="A", organization_name="2")
    )
    with pytest.raises(OrganizationRequired):
        await login(container, address)
    chosen = await login(container, address, organization_id=second.user.organization_id)
    assert chosen.user.organization_id == second.user.organization_id != first.user.organization_id


async def test_each_login_is_its_own_device_session(container: Container) -> None:
    pair, _ = await new_owner(container)
    one = await login(container, pair.user.email)
    two = await login(container, pair.user.email)
    assert len({pair.device_session_id, one.device_session_id, two.device_session_id}) == 3
    principal = await authenticate(container, two.access_token)
    listed = await identity.list_device_sessions(principal, uow_factory=container.database)
    assert {s.id for s in listed} == {
        pair.device_session_id,
        one.device_session_id,
        two.device_session_id,
    }


async def test_refresh_rotates_and_a_spent_token_revokes_the_device_session(
    container: Container,
) -> None:
    pair, _ = await new_owner(container)
    rotated = await refresh(container, pair.refresh_token)
    assert rotated.refresh_token != pair.refresh_token
    assert rotated.device_session_id == pair.device_session_id
    await authenticate(container, rotated.access_token)

    with pytest.raises(SessionRevoked):
        await refresh(container, pair.refresh_token)  # replayed: the session is compromised
    with pytest.raises(SessionRevoked):
        await refresh(container, rotated.refresh_token)
    with pytest.raises(SessionRevoked):
        await authenticate(container, rotated.access_token)


async def test_racing_refreshes_of_one_token_yield_one_new_pair(container: Container) -> None:
    pair, _ = await new_owner(container)
    outcomes = await asyncio.gather(
        *(refresh(container, pair.refresh_token) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(o, TokenPair) for o in outcomes) <= 1
    assert all(isinstance(o, TokenPair | SessionRevoked) for o in outcomes), outcomes


async def test_an_unknown_refresh_token_is_refused(container: Container) -> None:
    with pytest.raises(InvalidToken):
        await refresh(container, "not-a-token")


async def test_logout_stops_the_access_token_at_once(container: Container) -> None:
    pair, principal = await new_owner(container)
    other = await login(container, pair.user.email)
    await identity.logout(
        principal,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    with pytest.raises(SessionRevoked):
        await authenticate(container, pair.access_token)
    await authenticate(container, other.access_token)  # another device is untouched


async def test_logout_all_stops_every_device(container: Container) -> None:
    pair, principal = await new_owner(container)
    other = await login(container, pair.user.email)
    await authenticate(container, other.access_token)  # cached before the revocation
    await identity.logout_all(
        principal,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    for token in (pair.access_token, other.access_token):
        with pytest.raises(SessionRevoked):
            await authenticate(container, token)


async def test_an_expired_access_token_is_refused(container: Container) -> None:
    pair, _ = await new_owner(container)

    class Later:
        def now(self) -> Any:
            return container.clock.now() + container.auth_policy.access_ttl + timedelta(seconds=1)

    with pytest.raises(InvalidToken):
        await authentication.authenticate(
            pair.access_token,
            uow_factory=container.database,
            tokens=container.tokens,
            cache=container.session_cache,
            clock=Later(),
        )


async def test_a_demotion_applies_before_the_token_expires(container: Container) -> None:
    _, owner = await new_owner(container)
    admin_pair = await join(container, owner, Role.ADMIN, "Adm")
    assert (await authenticate(container, admin_pair.access_token)).role is Role.ADMIN
    await members.update_member(
        owner,
        admin_pair.user.id,
        role=Role.EMPLOYEE,
        active=None,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    assert (await authenticate(container, admin_pair.access_token)).role is Role.EMPLOYEE


async def test_the_last_owner_cannot_be_demoted_or_deactivated(container: Container) -> None:
    pair, owner = await new_owner(container)
    for change in ({"role": Role.ADMIN, "active": None}, {"role": None, "active": False}):
        with pytest.raises(LastOwner):
            await members.update_member(
                owner,
                UserId(pair.user.id),
                uow_factory=container.database,
                cache=container.session_cache,
                clock=container.clock,
                **change,
            )


async def test_an_admin_cannot_demote_an_owner(container: Container) -> None:
    pair, owner = await new_owner(container)
    admin_pair = await join(container, owner, Role.ADMIN, "Adm")
    admin = await authenticate(container, admin_pair.access_token)
    with pytest.raises(RoleNotAllowed):
        await members.update_member(
            admin,
            pair.user.id,
            role=Role.EMPLOYEE,
            active=None,
            uow_factory=container.database,
            cache=container.session_cache,
            clock=container.clock,
        )


async def test_deactivating_a_member_ends_their_sessions(container: Container) -> None:
    _, owner = await new_owner(container)
    employee = await join(container, owner, Role.EMPLOYEE, "E")
    await authenticate(container, employee.access_token)
    await members.update_member(
        owner,
        employee.user.id,
        role=None,
        active=False,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    with pytest.raises(SessionRevoked):
        await authenticate(container, employee.access_token)
    with pytest.raises(InvalidCredentials):
        await login(container, employee.user.email)
