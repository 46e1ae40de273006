"""Who receives an event, and how a stored presence reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.organizations import OrganizationSettings
from workpulse.domain.presence import (
    Record,
    Sighting,
    Status,
    current_app,
    event_rooms,
    rooms_of,
    sees_presence_of,
    status_of,
)
from workpulse.domain.roles import Principal, Role

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ORG = OrganizationId(uuid.uuid4())
TEAM_VISIBLE = OrganizationSettings(employees_see_team=True)


def member(role: Role, organization: OrganizationId = ORG) -> Principal:
    return Principal(UserId(uuid.uuid4()), organization, role, DeviceSessionId(uuid.uuid4()))


def receives(
    principal: Principal, settings: OrganizationSettings, event: str, about: UserId
) -> bool:
    rooms = rooms_of(principal, settings)
    return any(room in rooms for room in event_rooms(event, ORG, about))


@given(event=st.text(min_size=1, max_size=30))
def test_any_event_reaches_the_user_and_the_managers_and_never_other_employees(event: str) -> None:
    alice, bob = member(Role.EMPLOYEE), member(Role.EMPLOYEE)
    stranger = member(Role.OWNER, OrganizationId(uuid.uuid4()))
    settings = OrganizationSettings()
    assert receives(alice, settings, event, alice.user_id)
    for role in (Role.MANAGER, Role.ADMIN, Role.OWNER):
        assert receives(member(role), settings, event, alice.user_id)
    assert not receives(bob, settings, event, alice.user_id)
    assert not receives(bob, TEAM_VISIBLE, event, alice.user_id) or event in {
        "USER_ONLINE",
        "USER_OFFLINE",
    }
    assert not receives(stranger, TEAM_VISIBLE, event, alice.user_id)


@pytest.mark.parametrize("event", ["USER_ONLINE", "USER_OFFLINE"])
def test_employees_get_team_presence_only_when_the_organization_lets_them(event: str) -> None:
    alice, bob = member(Role.EMPLOYEE), member(Role.EMPLOYEE)
    assert not receives(bob, OrganizationSettings(), event, alice.user_id)
    assert receives(bob, TEAM_VISIBLE, event, alice.user_id)
    assert not receives(bob, TEAM_VISIBLE, "SESSION_UPDATE", alice.user_id)
    assert not receives(bob, TEAM_VISIBLE, "OVERTIME_ALERT", alice.user_id)


def test_presence_is_visible_to_whoever_sees_the_data_or_the_team() -> None:
    alice, bob = member(Role.EMPLOYEE), member(Role.EMPLOYEE)
    assert sees_presence_of(bob, bob.user_id, OrganizationSettings())
    assert not sees_presence_of(bob, alice.user_id, OrganizationSettings())
    assert sees_presence_of(bob, alice.user_id, TEAM_VISIBLE)
    assert sees_presence_of(member(Role.MANAGER), alice.user_id, OrganizationSettings())


def sighting(idle: bool = False) -> Sighting:
    return Sighting(app_name="Firefox", domain="example.org", idle=idle, at=NOW)


def test_status_reads_online_idle_and_offline() -> None:
    alive = NOW + timedelta(minutes=1)
    assert status_of(None, NOW) is Status.OFFLINE
    assert status_of(Record(online=False, last_seen=NOW), NOW) is Status.OFFLINE
    assert status_of(Record(online=True, last_seen=NOW), NOW) is Status.ONLINE
    idle = Record(online=True, last_seen=NOW, agent_until=alive, sighting=sighting(idle=True))
    assert status_of(idle, NOW) is Status.IDLE
    # An idle ping from an agent that has stopped does not make a connected user idle.
    stale = Record(online=True, last_seen=NOW, agent_until=NOW, sighting=sighting(idle=True))
    assert status_of(stale, NOW) is Status.ONLINE


def test_the_current_app_follows_the_privacy_settings() -> None:
    record = Record(
        online=True, last_seen=NOW, agent_until=NOW + timedelta(minutes=1), sighting=sighting()
    )
    assert current_app(record, NOW, OrganizationSettings()) == ("Firefox", "example.org")
    no_urls = OrganizationSettings().with_changes({"privacy": {"urls": "none"}})
    assert current_app(record, NOW, no_urls) == ("Firefox", None)
    excluded = OrganizationSettings().with_changes({"privacy": {"excluded_apps": ["fire*"]}})
    assert current_app(record, NOW, excluded) is None
    assert current_app(record, NOW + timedelta(minutes=1), OrganizationSettings()) is None
