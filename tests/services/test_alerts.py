"""Idle and overtime checks with a clock the test drives, on both databases: one alert per idle
episode (not one a minute), one overtime alert per local day, each announced once after its
commit, however many schedulers run the check at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.services.test_jobs import Clock, Recorder, organization_with, session_deps
from tests.services.test_jobs_summaries import span, store
from workpulse.bootstrap import Container
from workpulse.domain.alerts import Alert, AlertType
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.organizations import Organization
from workpulse.domain.reports import local_day
from workpulse.domain.roles import Principal, Role
from workpulse.domain.users import User
from workpulse.services import activity, alerts, sessions
from workpulse.services.activity import ActivityInput
from workpulse.services.ports import OwnedPing

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def principal_of(user: User) -> Principal:
    return Principal(user.id, user.organization_id, user.role, DeviceSessionId(uuid.uuid4()))


async def alerts_of(
    container: Container, organization_id: OrganizationId, user_id: UserId
) -> list[Alert]:
    async with container.database(readonly=True) as uow:
        found = await uow.alerts.between(
            organization_id, user_id, T0 - timedelta(days=2), T0 + timedelta(days=3)
        )
    return list(found)


async def check_idle(
    container: Container, organization: Organization, clock: Clock, recorder: Recorder
) -> int:
    return await alerts.check_idle(
        organization, uow_factory=container.database, notifier=recorder.notifier, now=clock.now()
    )


async def test_one_idle_alert_per_episode_not_one_a_minute(container: Container) -> None:
    organization, (user,) = await organization_with(container, [None], created_at=T0)
    clock, recorder = Clock(T0), Recorder()
    deps = session_deps(container, clock, recorder)
    session = await sessions.start(principal_of(user), project_id=None, start_time=None, deps=deps)

    raised = []
    for _ in range(12):  # 09:00 to 09:11, nothing reported: one episode from 09:00
        raised.append(await check_idle(container, organization, clock, recorder))
        clock.advance(MINUTE)
    assert raised == [0] * 5 + [1] + [0] * 6, "alerted once, after the 5 idle minutes"

    # 09:12: active again for a minute; silent after it: a new episode from 09:12.
    await activity.record(
        principal_of(user),
        "laptop",
        session.id,
        [ActivityInput("active", 60, timestamp=clock.now())],
        deps=deps,
    )
    raised = []
    for minute in range(12, 25):
        if minute == 19:  # idle events do not end the episode
            await activity.record(
                principal_of(user),
                "laptop",
                session.id,
                [ActivityInput("idle", 60, timestamp=clock.now())],
                deps=deps,
            )
        raised.append(await check_idle(container, organization, clock, recorder))
        clock.advance(MINUTE)
    assert raised == [0] * 5 + [1] + [0] * 7

    found = await alerts_of(container, organization.id, user.id)
    assert [(a.type, a.data["idle_since"]) for a in found] == [
        (AlertType.INACTIVE, T0.isoformat()),
        (AlertType.INACTIVE, (T0 + 12 * MINUTE).isoformat()),
    ]
    assert [a.created_at for a in found] == [T0 + 5 * MINUTE, T0 + 17 * MINUTE]
    assert all(a.data["session_id"] == str(session.id) for a in found)

    events = [e for e in recorder.events if e.name == "INACTIVE_ALERT"]
    assert [e.payload["alert"]["id"] for e in events] == [str(a.id) for a in found]
    assert events[0].payload == {"alert": alerts.alert_payload(found[0])}
    assert {(e.organization_id, e.user_id) for e in events} == {(organization.id, user.id)}


async def test_schedulers_checking_at_once_raise_and_announce_an_idle_episode_once(
    container: Container,
) -> None:
    organization, users = await organization_with(container, [None, None, None], created_at=T0)
    clock, recorder = Clock(T0), Recorder()
    deps = session_deps(container, clock, recorder)
    for user in users:
        await sessions.start(principal_of(user), project_id=None, start_time=None, deps=deps)
    clock.advance(10 * MINUTE)

    raised = await asyncio.gather(
        *(check_idle(container, organization, clock, recorder) for _ in range(4))
    )
    assert sum(raised) == len(users)
    for user in users:
        assert len(await alerts_of(container, organization.id, user.id)) == 1
    assert len([e for e in recorder.events if e.name == "INACTIVE_ALERT"]) == len(users)


async def test_a_session_silent_past_the_timeout_is_closed_after_its_idle_alert(
    container: Container,
) -> None:
    organization, (user,) = await organization_with(container, [None], created_at=T0)
    clock, recorder = Clock(T0), Recorder()
    deps = session_deps(container, clock, recorder)
    session = await sessions.start(principal_of(user), project_id=None, start_time=None, deps=deps)
    clock.advance(6 * MINUTE)
    assert await check_idle(container, organization, clock, recorder) == 1
    assert await sessions.close_stale(organization.id, deps=deps) == []

    clock.advance(timedelta(minutes=organization.settings.session_timeout_minutes))
    (closed,) = await sessions.close_stale(organization.id, deps=deps)
    assert closed.id == session.id
    assert await check_idle(container, organization, clock, recorder) == 0, "no session left"


async def test_one_overtime_alert_per_local_day(container: Container) -> None:
    zone_name = "Asia/Kathmandu"
    zone = ZoneInfo(zone_name)
    organization, (worker, part_timer) = await organization_with(
        container, [zone_name, zone_name], created_at=T0
    )
    clock, recorder = Clock(T0), Recorder()
    first_day = T0.astimezone(zone).date()
    raised = []
    for offset, minutes in ((0, 9 * 60 + 10), (1, 9 * 60 + 30)):
        start, _ = local_day(first_day + timedelta(days=offset), zone)
        morning = start + timedelta(hours=7)
        await store(
            container,
            organization.id,
            [
                OwnedPing(organization.id, worker.id, span("Editor", None, morning, minutes)),
                OwnedPing(organization.id, part_timer.id, span("Editor", None, morning, 8 * 60)),
            ],
        )
        clock.current = morning
        for _ in range(24):  # every 30 minutes through the working day and the evening
            raised.append(
                await alerts.check_overtime(
                    organization,
                    uow_factory=container.database,
                    notifier=recorder.notifier,
                    now=clock.now(),
                )
            )
            clock.advance(timedelta(minutes=30))
    assert sum(raised) == 2
    assert raised.index(1) == 19, "alerted at the first check past 9 hours (07:00 + 9:30)"

    found = await alerts_of(container, organization.id, worker.id)
    assert [(a.type, a.data["date"]) for a in found] == [
        (AlertType.OVERTIME, first_day.isoformat()),
        (AlertType.OVERTIME, (first_day + timedelta(days=1)).isoformat()),
    ]
    assert found[0].data["active_seconds"] == (9 * 60 + 10) * 60
    assert await alerts_of(container, organization.id, part_timer.id) == []
    events = [e for e in recorder.events if e.name == "OVERTIME_ALERT"]
    assert [e.payload["alert"]["id"] for e in events] == [str(a.id) for a in found]
    assert events[1].payload["alert"]["type"] == "overtime"


async def test_listing_and_acknowledging_follow_the_roles(container: Container) -> None:
    organization, (employee, colleague) = await organization_with(
        container, ["America/New_York", None], created_at=T0
    )
    clock, recorder = Clock(T0), Recorder()
    deps = session_deps(container, clock, recorder)
    for user in (employee, colleague):
        await sessions.start(principal_of(user), project_id=None, start_time=None, deps=deps)
    clock.advance(10 * MINUTE)
    await check_idle(container, organization, clock, recorder)

    mine = principal_of(employee)
    day, zone, listed = await alerts.list_alerts(
        mine, day=None, user_id=None, uow_factory=container.database, clock=clock
    )
    assert day == clock.now().astimezone(ZoneInfo("America/New_York")).date()
    assert zone == "America/New_York"
    assert [a.user_id for a in listed] == [employee.id]

    (theirs,) = await alerts_of(container, organization.id, colleague.id)
    manager = Principal(
        UserId(uuid.uuid4()), organization.id, Role.MANAGER, DeviceSessionId(uuid.uuid4())
    )
    _, zone, everyone = await alerts.list_alerts(
        manager, day=None, user_id=None, uow_factory=container.database, clock=clock
    )
    assert zone == "UTC"
    assert {a.user_id for a in everyone} == {employee.id, colleague.id}

    acknowledged = await alerts.acknowledge(
        manager, theirs.id, uow_factory=container.database, clock=clock
    )
    assert (acknowledged.acknowledged_at, acknowledged.acknowledged_by) == (
        clock.now(),
        manager.user_id,
    )
    clock.advance(MINUTE)
    again = await alerts.acknowledge(
        principal_of(colleague), theirs.id, uow_factory=container.database, clock=clock
    )
    assert again.acknowledged_by == manager.user_id, "the first acknowledgement stays"
