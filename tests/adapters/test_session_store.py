"""`get_many` and `record_many` of the work-session store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.services.test_sessions import active, add, member, started
from workpulse.bootstrap import Container
from workpulse.domain.ids import OrganizationId
from workpulse.domain.sessions import Activity, ActivityType
from workpulse.services import sessions
from workpulse.services.ports import Entry, Written


def event(event_id: str, seconds: int, container: Container, *, app: str | None = None) -> Activity:
    return Activity(
        event_id=event_id,
        activity_type=ActivityType.IDLE if event_id.startswith("idle") else ActivityType.ACTIVE,
        duration_seconds=seconds,
        timestamp=container.clock.now(),
        app_name=app,
        url=None if app is None else f"https://{app.lower()}.example.com/page",
        domain=None if app is None else f"{app.lower()}.example.com",
    )


async def test_record_many_writes_each_new_event_once_where_it_fits(container: Container) -> None:
    a, b, c = await member(container), await member(container), await member(container)
    long_one = await started(container, a)
    await add(container, a, long_one, active(60, "stored"))
    short = await sessions.start(
        b,
        project_id=None,
        start_time=container.clock.now() - timedelta(minutes=10),
        deps=container.session_deps,
    )
    gone = await started(container, c)
    keys = [(a.organization_id, long_one.id), (b.organization_id, short.id)]
    keys += [(c.organization_id, gone.id), (OrganizationId(b.organization_id), long_one.id)]
    async with container.database(readonly=True) as uow:
        found = await uow.sessions.get_many(keys)
    # The pair (b's organization, a's session) finds nothing: the tenant is part of the key.
    assert set(found) == {long_one.id, short.id, gone.id}
    await sessions.stop(c, gone.id, deps=container.session_deps)  # stopped after the read
    entries = [
        Entry(found[long_one.id], event("one", 10, container, app="Editor"), 1_000_000),
        Entry(found[long_one.id], event("idle-two", 20, container), 1_000_000),
        Entry(found[long_one.id], event("one", 10, container), 1_000_000),  # a repeat in here
        Entry(found[long_one.id], event("stored", 60, container), 1_000_000),  # in the ledger
        Entry(found[short.id], event("no-room", 1000, container), 900),
        Entry(found[gone.id], event("too-late", 10, container), 1_000_000),
    ]
    async with container.database(autocommit=True) as uow:
        written = await uow.sessions.record_many(entries)
        await uow.commit()
    after = written.sessions[0]
    assert after is not None
    assert written.sessions == [after, after, None, None, None, None]
    assert written.held == frozenset()
    assert (after.total_active_seconds, after.total_idle_seconds) == (70, 20)
    assert after.version == found[long_one.id].version + 2
    async with container.database(readonly=True) as uow:
        for principal, one, totals in (
            (a, long_one, (70, 20)),
            (b, short, (0, 0)),
            (c, gone, (0, 0)),
        ):
            current = await uow.sessions.get(principal.organization_id, one.id)
            assert current is not None
            assert (current.total_active_seconds, current.total_idle_seconds) == totals
            assert await uow.sessions.ledger_totals(current) == totals
        stored = await uow.sessions.recorded(after, ["one", "idle-two"])
    assert stored == {"one": entries[0].activity, "idle-two": entries[1].activity}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_record_many_skips_a_held_session_or_waits_for_it(
    container: Container,
) -> None:
    """PostgreSQL: without `wait` a session row held elsewhere is skipped and reported, with
    `wait` it is waited for (SQLite has one writer at a time)."""
    a, b = await member(container), await member(container)
    held, free = await started(container, a), await started(container, b)
    async with container.database(readonly=True) as uow:
        found = await uow.sessions.get_many(
            [(a.organization_id, held.id), (b.organization_id, free.id)]
        )
    entries = [
        Entry(found[held.id], event("x", 10, container), 1_000_000),
        Entry(found[free.id], event("y", 10, container), 1_000_000),
    ]

    async def record(entries: list[Entry], *, wait: bool) -> Written:
        async with container.database(autocommit=True) as uow:
            written = await uow.sessions.record_many(entries, wait=wait)
            await uow.commit()
        return written

    async with container.database() as holder:
        assert await holder.sessions.get(a.organization_id, held.id, lock=True) is not None
        skipped = await asyncio.wait_for(record(entries, wait=False), timeout=5)
        assert skipped.sessions[0] is None
        assert skipped.held == {held.id}
        assert skipped.sessions[1] is not None
        assert skipped.sessions[1].total_active_seconds == 10
        waiting = asyncio.create_task(record(entries[:1], wait=True))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # waits for the row
    written = await asyncio.wait_for(waiting, timeout=5)  # the holder rolled back at its exit
    assert written.held == frozenset()
    assert written.sessions[0] is not None
    assert written.sessions[0].total_active_seconds == 10
