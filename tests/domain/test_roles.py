from __future__ import annotations

import uuid

import pytest

from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.roles import (
    Principal,
    Role,
    can_change_member,
    can_grant,
    can_view,
    sees_organization,
)


def principal(role: Role) -> Principal:
    return Principal(
        user_id=UserId(uuid.uuid4()),
        organization_id=OrganizationId(uuid.uuid4()),
        role=role,
        device_session_id=DeviceSessionId(uuid.uuid4()),
    )


def test_an_employee_sees_only_themselves() -> None:
    employee = principal(Role.EMPLOYEE)
    assert can_view(employee, employee.user_id)
    assert not can_view(employee, UserId(uuid.uuid4()))
    assert not sees_organization(employee)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN, Role.OWNER])
def test_managers_and_up_see_their_organization(role: Role) -> None:
    assert can_view(principal(role), UserId(uuid.uuid4()))


@pytest.mark.parametrize(
    ("granter", "role", "allowed"),
    [
        (Role.EMPLOYEE, Role.EMPLOYEE, False),
        (Role.MANAGER, Role.EMPLOYEE, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.OWNER, Role.OWNER, True),
    ],
)
def test_nobody_grants_a_role_above_their_own(granter: Role, role: Role, allowed: bool) -> None:
    assert can_grant(granter, role) is allowed


def test_only_an_owner_changes_an_owner() -> None:
    assert not can_change_member(Role.ADMIN, Role.OWNER, Role.ADMIN)
    assert can_change_member(Role.OWNER, Role.OWNER, Role.ADMIN)
    assert can_change_member(Role.ADMIN, Role.EMPLOYEE, Role.MANAGER)
    assert not can_change_member(Role.MANAGER, Role.EMPLOYEE, Role.EMPLOYEE)
