"""Work sessions on SQLite and PostgreSQL: exact counters under concurrency, idempotent
events, bounds, and SESSION_UPDATE only after a commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.services.test_identity import PASSWORD, authenticate, email, join, register
from workpulse.adapters.db.tables import pings
from workpulse.adapters.notifier import Event
from workpulse.bootstrap import Container
from workpulse.domain.errors import ProjectNotFound
from workpulse.domain.ids import ProjectId
from workpulse.domain.roles import Principal, Role
from workpulse.domain.sessions import (
    ActivityOutOfBounds,
    SessionAlreadyActive,
    SessionNotFound,
    SessionStopped,
    WorkSession,
)
from workpulse.services import activity, ingest, projects, sessions
from workpulse.services.activity import ActivityInput, Status
from workpulse.services.activity_groups import ActivityGroups
from workpulse.services.identity import Registration

BACK = timedelta(hours=3)


async def member(container: Container) -> Principal:
    pair = await register(
        container,
        Registration(email=email(), password=PASSWORD, name="S", organization_name="Sessions"),
        device_id="laptop",
    )
    return await authenticate(container, pair.access_token)


async def started(container: Container, principal: Principal) -> WorkSession:
    return await sessions.start(
        principal,
        project_id=None,
        start_time=container.clock.now() - BACK,
        deps=container.session_deps,
    )


async def add(
    container: Container,
    principal: Principal,
    session: WorkSession,
    *events: ActivityInput,
) -> tuple[WorkSession, list[activity.ActivityResult]]:
    return await activity.record(
        principal, "laptop", session.id, list(events), deps=container.session_deps
    )


def active(seconds: int, event_id: str | None = None, **extra: object) -> ActivityInput:
    return ActivityInput("active", seconds, event_id=event_id, **extra)  # type: ignore[arg-type]


def announced(container: Container) -> list[Event]:
    """Every event the container's notifier publishes from now on."""
    seen: list[Event] = []

    async def listener(event: Event) -> None:
        seen.append(event)

    container.notifier.listen(listener)
    return seen


async def totals(
    container: Container, principal: Principal, session_id: object
) -> tuple[int, int, int]:
    current = await sessions.get(principal, session_id, deps=container.session_deps)  # type: ignore[arg-type]
    return current.total_active_seconds, current.total_idle_seconds, current.version


async def test_a_hundred_parallel_minutes_add_up_to_exactly_six_thousand_seconds(
    container: Container,
) -> None:
    principal = await member(container)
    session = await started(container, principal)
    await asyncio.gather(*(add(container, principal, session, active(60)) for _ in range(100)))
    assert await totals(container, principal, session.id) == (6000, 0, 101)
    async with container.database(readonly=True) as uow:
        current = await uow.sessions.get(principal.organization_id, session.id)
        assert current is not None
        assert await uow.sessions.ledger_totals(current) == (6000, 0)


async def test_racing_starts_leave_exactly_one_active_session(container: Container) -> None:
    principal = await member(container)
    outcomes = await asyncio.gather(
        *(started(container, principal) for _ in range(8)), return_exceptions=True
    )
    assert sum(isinstance(o, WorkSession) for o in outcomes) == 1
    assert all(
        isinstance(o, SessionAlreadyActive) for o in outcomes if not isinstance(o, WorkSession)
    )
    assert len(await sessions.active(principal, deps=container.session_deps)) == 1


async def test_a_retried_event_counts_once_even_when_the_retries_race(
    container: Container,
) -> None:
    principal = await member(container)
    session = await started(container, principal)
    results = await asyncio.gather(
        *(add(container, principal, session, active(60, "evt-1")) for _ in range(10))
    )
    statuses = sorted(r[1][0].status.value for r in results)
    assert statuses == ["accepted"] + ["duplicate"] * 9
    _, again = await add(container, principal, session, active(60, "evt-1"))
    assert again[0].status is Status.DUPLICATE
    assert (await totals(container, principal, session.id))[:2] == (60, 0)


async def test_a_batch_applies_what_fits_and_explains_the_rest(container: Container) -> None:
    principal = await member(container)
    session = await started(container, principal)
    now = container.clock.now()
    updated, results = await add(
        container,
        principal,
        session,
        active(60, "a"),
        ActivityInput("idle", 30, event_id="b"),
        active(0, "zero"),
        active(99_999, "too-long"),
        ActivityInput("asleep", 10, event_id="bad-type"),
        active(60, "before-start", timestamp=now - BACK - timedelta(hours=1)),
        active(60, "future", timestamp=now + timedelta(hours=1)),
        active(60, "a"),  # a repeat inside the batch
    )
    assert [r.status.value for r in results] == [
        "accepted",
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "duplicate",
    ]
    assert (updated.total_active_seconds, updated.total_idle_seconds) == (60, 30)


async def test_counters_cannot_outrun_the_wall_clock(container: Container) -> None:
    principal = await member(container)
    session = await sessions.start(
        principal,
        project_id=None,
        start_time=container.clock.now() - timedelta(minutes=10),
        deps=container.session_deps,
    )
    _, results = await add(container, principal, session, *(active(3600 // 12) for _ in range(12)))
    accepted = [r for r in results if r.status is Status.ACCEPTED]
    # 10 minutes of wall clock plus 5 of tolerance: 3 of the 5-minute events fit.
    assert len(accepted) == 3
    assert (await totals(container, principal, session.id))[0] == 900


async def test_a_stopped_session_takes_no_activity_and_stops_once(container: Container) -> None:
    principal = await member(container)
    session = await started(container, principal)
    stopped = await sessions.stop(principal, session.id, deps=container.session_deps)
    assert stopped.end_time is not None
    assert stopped.status.value == "stopped"
    with pytest.raises(SessionStopped):
        await sessions.stop(principal, session.id, deps=container.session_deps)
    with pytest.raises(SessionStopped):
        await add(container, principal, session, active(60))


async def test_another_users_session_does_not_exist_for_them(container: Container) -> None:
    owner = await member(container)
    employee_pair = await join(container, owner, Role.EMPLOYEE, "E")
    employee = await authenticate(container, employee_pair.access_token)
    stranger = await member(container)
    session = await started(container, owner)
    for outsider in (employee, stranger):
        with pytest.raises(SessionNotFound):
            await sessions.get(outsider, session.id, deps=container.session_deps)
        with pytest.raises(SessionNotFound):
            await add(container, outsider, session, active(60))
        with pytest.raises(SessionNotFound):
            await sessions.stop(outsider, session.id, deps=container.session_deps)
    employees_session = await started(container, employee)
    seen_by_owner = await sessions.get(owner, employees_session.id, deps=container.session_deps)
    assert seen_by_owner.user_id == employee.user_id  # managers and up read the organization's
    with pytest.raises(SessionNotFound):
        await add(container, owner, employees_session, active(60))  # but write only their own


async def test_a_project_of_another_organization_is_refused(container: Container) -> None:
    principal, other = await member(container), await member(container)
    theirs = await projects.create_project(
        other,
        name="Theirs",
        description=None,
        uow_factory=container.database,
        clock=container.clock,
    )
    with pytest.raises(ProjectNotFound):
        await sessions.start(
            principal, project_id=ProjectId(theirs.id), start_time=None, deps=container.session_deps
        )


async def test_updates_are_announced_after_commit_only(container: Container) -> None:
    seen = announced(container)
    principal = await member(container)
    session = await started(container, principal)
    await add(container, principal, session, active(60))
    await sessions.stop(principal, session.id, deps=container.session_deps)
    with pytest.raises(SessionStopped):  # rolled back: nothing announced
        await sessions.stop(principal, session.id, deps=container.session_deps)
    await started(container, principal)
    with pytest.raises(SessionAlreadyActive):  # rolled back: nothing announced
        await started(container, principal)
    mine = [e for e in seen if e.user_id == principal.user_id]
    assert [e.payload["change"] for e in mine] == ["start", "activity", "stop", "start"]
    assert mine[1].payload["session"]["total_active_seconds"] == 60


async def test_activity_with_an_app_becomes_usage(container: Container) -> None:
    principal = await member(container)
    session = await started(container, principal)
    now = container.clock.now().replace(microsecond=0)
    await add(
        container,
        principal,
        session,
        active(120, "app", timestamp=now, app_name="Editor"),
        active(60, "web", timestamp=now - timedelta(minutes=5), url="https://www.github.com/a"),
    )
    while await ingest.derive_pending(
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
    ):
        pass
    rows = await ingest.intervals(
        principal,
        user_id=None,
        start=now - timedelta(hours=1),
        end=now + timedelta(hours=1),
        uow_factory=container.database,
    )
    assert [(i.app_name, i.domain, i.end - i.start) for _, i in rows] == [
        ("Browser", "github.com", timedelta(seconds=60)),
        ("Editor", None, timedelta(seconds=120)),
    ]
    async with container.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).where(pings.c.user_id == principal.user_id)
        )
    assert count == 2


async def test_silent_sessions_are_closed_at_their_last_sign_of_life(container: Container) -> None:
    principal = await member(container)
    session = await started(container, principal)  # three hours ago
    last = container.clock.now().replace(microsecond=0) - timedelta(hours=2, minutes=30)
    await add(container, principal, session, active(60, "old", timestamp=last))
    closed = await sessions.close_stale(principal.organization_id, deps=container.session_deps)
    assert [(s.id, s.status.value, s.end_time) for s in closed] == [(session.id, "stopped", last)]
    again = await sessions.close_stale(principal.organization_id, deps=container.session_deps)
    assert again == []
    fresh = await started(container, principal)  # a new start is possible again
    await add(container, principal, fresh, active(60))
    assert await sessions.close_stale(principal.organization_id, deps=container.session_deps) == []


async def test_one_event_that_does_not_fit_writes_nothing_but_a_retry_still_answers(
    container: Container,
) -> None:
    principal = await member(container)
    session = await sessions.start(
        principal,
        project_id=None,
        start_time=container.clock.now() - timedelta(minutes=10),
        deps=container.session_deps,
    )
    _, (first,) = await add(container, principal, session, active(600, "first"))
    assert first.status is Status.ACCEPTED
    # 10 minutes of wall clock plus 5 of tolerance: 600 s are in, 301 more do not fit.
    _, (late,) = await add(container, principal, session, active(301, "late"))
    assert late.status is Status.REJECTED
    assert isinstance(late.error, ActivityOutOfBounds)
    _, (again,) = await add(container, principal, session, active(600, "first"))
    assert again.status is Status.DUPLICATE
    assert again.activity is not None
    assert again.activity.duration_seconds == 600
    assert await totals(container, principal, session.id) == (600, 0, 2)
    async with container.database(readonly=True) as uow:
        current = await uow.sessions.get(principal.organization_id, session.id)
        assert current is not None
        assert await uow.sessions.ledger_totals(current) == (600, 0)


async def test_one_event_with_an_app_is_counted_and_becomes_usage_in_one_transaction(
    container: Container,
) -> None:
    principal = await member(container)
    session = await started(container, principal)
    now = container.clock.now().replace(microsecond=0)
    results = await asyncio.gather(
        *(
            add(container, principal, session, active(30, "e", timestamp=now, app_name="Editor"))
            for _ in range(5)
        ),
        add(container, principal, session, ActivityInput("idle", 20, app_name="Editor")),
    )
    statuses = sorted(r[1][0].status.value for r in results)
    assert statuses == ["accepted", "accepted"] + ["duplicate"] * 4
    assert await totals(container, principal, session.id) == (30, 20, 3)
    async with container.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).where(pings.c.user_id == principal.user_id)
        )
    assert count == 2


async def test_activity_racing_a_stop_is_counted_exactly_or_refused(
    container: Container,
) -> None:
    principal = await member(container)
    session = await started(container, principal)

    async def one(k: int) -> object:
        try:
            return await add(container, principal, session, active(10, f"r{k}"))
        except SessionStopped as exc:
            return exc

    outcomes = await asyncio.gather(
        *(one(k) for k in range(20)),
        sessions.stop(principal, session.id, deps=container.session_deps),
        *(one(k) for k in range(20, 40)),
    )
    accepted = [o for o in outcomes if isinstance(o, tuple) and o[1][0].status is Status.ACCEPTED]
    refused = [o for o in outcomes if isinstance(o, SessionStopped)]
    assert len(accepted) + len(refused) == 40
    async with container.database(readonly=True) as uow:
        final = await uow.sessions.get(principal.organization_id, session.id)
        assert final is not None
        assert final.status.value == "stopped"
        assert final.total_active_seconds == 10 * len(accepted)
        assert await uow.sessions.ledger_totals(final) == (10 * len(accepted), 0)


async def test_single_events_and_batches_racing_on_one_session_all_count(
    container: Container,
) -> None:
    """Batches and single events (with and without an app) interleaved on one session: every
    request succeeds (a deadlock victim is retried, never reported) and the counters equal the
    ledger. Batches lock the session row before the ledger, as the one-event statement does."""
    principal = await member(container)
    session = await started(container, principal)

    async def single(n: int) -> None:
        extra = {"app_name": "Editor"} if n % 3 == 0 else {}
        await add(container, principal, session, active(2, f"s{n}", **extra))

    async def batch(n: int) -> None:
        await add(container, principal, session, *(active(1, f"b{n}-{k}") for k in range(4)))

    await asyncio.gather(*(single(n) if n % 2 else batch(n) for n in range(240)))
    expected = 120 * 2 + 120 * 4
    assert (await totals(container, principal, session.id))[:2] == (expected, 0)
    async with container.database(readonly=True) as uow:
        current = await uow.sessions.get(principal.organization_id, session.id)
        assert current is not None
        assert await uow.sessions.ledger_totals(current) == (expected, 0)


async def test_single_events_arriving_together_are_written_in_groups_with_the_same_answers(
    container: Container,
) -> None:
    """Concurrent single events share groups (activity_groups.py); every one of them still gets
    the answer the one-event path gives: accepted, duplicate, 404, 409 or 422."""
    groups = container.session_deps.groups
    assert groups is not None
    owner = await member(container)
    stranger = await member(container)
    session = await started(container, owner)
    short = await sessions.start(  # 10 minutes of wall clock plus 5 of tolerance
        stranger,
        project_id=None,
        start_time=container.clock.now() - timedelta(minutes=10),
        deps=container.session_deps,
    )
    await add(container, owner, session, active(60, "stored"))
    stopped_owner = await member(container)
    stopped = await started(container, stopped_owner)
    await sessions.stop(stopped_owner, stopped.id, deps=container.session_deps)
    now = container.clock.now()
    before = groups.groups, groups.events
    outcomes = await asyncio.gather(
        *(add(container, owner, session, active(10, f"new-{k}")) for k in range(20)),
        add(container, owner, session, active(10, "twice")),
        add(container, owner, session, active(10, "twice")),
        add(container, owner, session, active(60, "stored")),
        add(container, owner, session, active(10, "early", timestamp=now - BACK - BACK)),
        add(container, stranger, session, active(10, "not-theirs")),
        add(container, stopped_owner, stopped, active(10, "too-late")),
        add(container, stranger, short, active(600, "fits")),
        add(container, stranger, short, active(600, "no-room")),
        return_exceptions=True,
    )
    statuses = [
        o[1][0].status.value if isinstance(o, tuple) else type(o).__name__ for o in outcomes
    ]
    assert statuses[:20] == ["accepted"] * 20
    assert sorted(statuses[20:22]) == ["accepted", "duplicate"]
    assert statuses[22:26] == ["duplicate", "rejected", "SessionNotFound", "SessionStopped"]
    assert sorted(statuses[26:28]) == ["accepted", "rejected"]  # either 600 s event may win
    stored = outcomes[22]
    assert isinstance(stored, tuple)
    assert stored[1][0].activity is not None
    assert stored[1][0].activity.duration_seconds == 60
    assert groups.groups - before[0] < groups.events - before[1]  # some groups held several
    assert await totals(container, owner, session.id) == (60 + 20 * 10 + 10, 0, 23)
    async with container.database(readonly=True) as uow:
        for principal, one, seconds in ((owner, session, 270), (stranger, short, 600)):
            current = await uow.sessions.get(principal.organization_id, one.id)
            assert current is not None
            assert current.total_active_seconds == seconds
            assert await uow.sessions.ledger_totals(current) == (seconds, 0)


async def test_a_group_announces_each_session_once_with_its_final_counters(
    container: Container,
) -> None:
    seen = announced(container)
    principal = await member(container)
    session = await started(container, principal)
    await asyncio.gather(*(add(container, principal, session, active(5)) for _ in range(10)))
    mine = [e for e in seen if e.user_id == principal.user_id]
    changes = [e.payload["change"] for e in mine]
    assert changes[0] == "start"
    assert set(changes[1:]) == {"activity"}
    updates = [e.payload["session"] for e in mine[1:]]
    assert 1 <= len(updates) < 10  # one per group, not one per event
    assert updates[-1]["total_active_seconds"] == 50
    assert updates[-1]["version"] == 11


async def test_events_with_an_app_written_in_a_group_become_usage_with_them(
    container: Container,
) -> None:
    principal = await member(container)
    session = await started(container, principal)
    now = container.clock.now().replace(microsecond=0)

    def app(k: int) -> ActivityInput:
        return active(10, f"app-{k}", timestamp=now - timedelta(seconds=10 * k), app_name="Editor")

    outcomes = await asyncio.gather(
        *(add(container, principal, session, app(k)) for k in range(6)),
        *(add(container, principal, session, active(10, f"plain-{k}")) for k in range(6)),
        add(container, principal, session, active(10, "app-0", app_name="Editor")),  # a repeat
    )
    assert sorted(o[1][0].status.value for o in outcomes) == ["accepted"] * 12 + ["duplicate"]
    assert (await totals(container, principal, session.id))[:2] == (120, 0)
    async with container.engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.select(pings.c.event_id).where(pings.c.user_id == principal.user_id)
            )
        ).scalars()
        assert sorted(stored) == sorted(f"activity:{session.id}:app-{k}" for k in range(6))


async def test_an_event_a_failing_group_wrote_after_all_still_counts_once(
    container: Container,
) -> None:
    """The group's statement committed, then the group failed: its events go the one-event
    way with the same event (the server-made id too), which finds it in the ledger."""

    @asynccontextmanager
    async def failing_after_commit(**options: bool) -> AsyncIterator[Any]:
        async with container.database(**options) as uow:
            commit = uow.commit

            async def commit_then_fail() -> None:
                await commit()
                raise RuntimeError("lost after the commit")

            uow.commit = commit_then_fail  # type: ignore[method-assign]
            yield uow

    groups = ActivityGroups(
        failing_after_commit,
        container.notifier,
        container.partitions,
        lambda: None,
    )
    deps = replace(container.session_deps, groups=groups)
    principal = await member(container)
    session = await started(container, principal)
    _, (result,) = await activity.record(principal, "laptop", session.id, [active(30)], deps=deps)
    assert result.status is Status.DUPLICATE  # written once, by the group
    assert (await totals(container, principal, session.id))[:2] == (30, 0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_group_answers_its_free_sessions_and_then_waits_for_a_held_one(
    container: Container,
) -> None:
    """PostgreSQL: a session row held by another transaction (here a bare lock; in life another
    API process's group, a stop, a batch) holds up only that session's events, which the group
    then writes waiting for the row, not one by one."""
    groups = container.session_deps.groups
    assert groups is not None
    a, b = await member(container), await member(container)
    held, free = await started(container, a), await started(container, b)
    # One event each first, so that both organizations' settings are cached and the next two
    # requests reach the groups in the same turn of the loop: one group.
    await add(container, a, held, active(10, "first-h"))
    await add(container, b, free, active(10, "first-f"))
    async with container.database() as holder:
        assert await holder.sessions.get(a.organization_id, held.id, lock=True) is not None
        unwritten, count = groups.unwritten, groups.groups
        on_held = asyncio.ensure_future(add(container, a, held, active(10, "h")))
        on_free = asyncio.ensure_future(add(container, b, free, active(10, "f")))
        _, answers = await asyncio.wait_for(on_free, timeout=5)
        assert answers[0].status is Status.ACCEPTED
        # While the group waits for the held row, the free session takes its next event.
        again = add(container, b, free, active(10, "f2"))
        _, answers = await asyncio.wait_for(again, timeout=5)
        assert answers[0].status is Status.ACCEPTED
        assert not on_held.done()
    _, answers = await asyncio.wait_for(on_held, timeout=5)
    assert answers[0].status is Status.ACCEPTED
    assert groups.unwritten == unwritten  # all written by groups
    assert groups.groups == count + 2  # "h" and "f" together, then "f2"
    assert (await totals(container, a, held.id))[:2] == (20, 0)
