"""Daily summaries with a clock the test drives, on both databases: each user's local day is
summarized once, at its local midnight, in three zones and over DST nights (23- and 25-hour
days); a summary equals the day report; late data recomputes a summarized day; a run that
crashes half-way leaves whole summaries and the next run writes the rest."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.services.test_jobs import Clock, organization_with
from workpulse.bootstrap import Container
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.pings import Ping
from workpulse.domain.reports import local_day
from workpulse.domain.summaries import DailySummary, Entry
from workpulse.domain.users import User
from workpulse.services import ingest, reports, summaries
from workpulse.services.ports import OwnedPing, UnitOfWork

ORGANIZATION_ZONE = "Europe/Berlin"
# New York changes to DST on 2026-03-08 and back on 2026-11-01; Kathmandu is +05:45 all year;
# the third user has no zone and follows the organization's (Berlin: back on 2026-10-25).
ZONES = ["America/New_York", "Asia/Kathmandu", None]
TICK = timedelta(minutes=15)


def span(
    app: str, domain: str | None, start: datetime, minutes: int, *, idle: bool = False
) -> Ping:
    return Ping(
        device_id="laptop",
        app_name=app,
        url=None,
        domain=domain,
        title=None,
        idle=idle,
        start=start,
        end=start + timedelta(minutes=minutes),
        event_id=f"e-{uuid.uuid4().hex}",
    )


async def store(
    container: Container, organization_id: OrganizationId, owned: list[OwnedPing]
) -> None:
    await ingest.store_and_derive(
        owned,
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
    )


def daily_usage(
    organization_id: OrganizationId, user: User, first: date, days: int
) -> list[OwnedPing]:
    """Every UTC day: 90 min in an editor, 75 min in a browser across UTC midnight (so across
    some local midnights too), 20 idle minutes."""
    owned = []
    for offset in range(days):
        noon = datetime.combine(first + timedelta(days=offset), time(12), UTC)
        for ping in (
            span("Editor", None, noon + timedelta(hours=1), 90),
            span("Browser", "github.com", noon + timedelta(hours=11, minutes=30), 75),
            span("Editor", None, noon + timedelta(hours=3), 20, idle=True),
        ):
            owned.append(OwnedPing(organization_id, user.id, ping))
    return owned


async def report_of(container: Container, summary: DailySummary) -> reports.DayReport:
    zone = ZoneInfo(summary.timezone)
    async with container.database(readonly=True) as uow:
        return await reports.user_day(
            uow, summary.organization_id, summary.user_id, summary.day, summary.timezone, zone
        )


async def summary_of(
    container: Container, organization_id: OrganizationId, user_id: UserId, day: date
) -> DailySummary | None:
    async with container.database(readonly=True) as uow:
        return await uow.summaries.get(organization_id, user_id, day)


def agrees(summary: DailySummary, report: reports.DayReport) -> bool:
    return (
        summary.active_seconds == report.total_seconds
        and summary.idle_seconds == report.idle_seconds
        and summary.top_apps == tuple(Entry(line.key or "", line.seconds) for line in report.apps)
        and summary.top_domains
        == tuple(Entry(line.key or "", line.seconds) for line in report.domains)
    )


@pytest.mark.parametrize(
    "first",
    [date(2026, 3, 6), date(2026, 10, 23), date(2026, 10, 30)],
    ids=["new-york-springs-forward", "berlin-falls-back", "new-york-falls-back"],
)
async def test_each_local_day_is_summarized_once_at_its_local_midnight(
    container: Container, first: date
) -> None:
    days = 4
    begin = datetime.combine(first, time(0), UTC)
    finish = begin + timedelta(days=days)
    organization, users = await organization_with(
        container, ZONES, timezone=ORGANIZATION_ZONE, created_at=begin
    )
    for user in users:
        await store(container, organization.id, daily_usage(organization.id, user, first, days))

    clock = Clock(begin)
    written: dict[tuple[UserId, date], list[datetime]] = defaultdict(list)
    while clock.now() <= finish:
        # No margin for late data: nothing changes after the usage above was derived, so any
        # second write of a day would be a day run twice.
        for key in await summaries.summarize(
            organization,
            uow_factory=container.database,
            now=clock.now(),
            late_margin=timedelta(0),
        ):
            written[key].append(clock.now())
        clock.advance(TICK)

    expected: dict[tuple[UserId, date], list[datetime]] = {}
    lengths = set()
    for user in users:
        zone = ZoneInfo(user.timezone or ORGANIZATION_ZONE)
        day = begin.astimezone(zone).date()
        while local_day(day, zone)[1] <= finish:
            start, end = local_day(day, zone)
            expected[(user.id, day)] = [end]  # written once, at the local midnight ending it
            lengths.add(end - start)
            day += timedelta(days=1)
    assert dict(written) == expected
    assert timedelta(hours=23) in lengths or timedelta(hours=25) in lengths, "no DST day"

    active = 0
    for user_id, day in expected:
        summary = await summary_of(container, organization.id, user_id, day)
        assert summary is not None
        assert agrees(summary, await report_of(container, summary)), summary
        active += summary.active_seconds
    assert active > 0


async def test_a_summary_holds_the_day_report_its_sessions_and_first_and_last_activity(
    container: Container,
) -> None:
    organization, (user,) = await organization_with(
        container, ["Asia/Kathmandu"], created_at=datetime(2026, 4, 1, tzinfo=UTC)
    )
    zone = ZoneInfo("Asia/Kathmandu")
    day = date(2026, 4, 2)
    start, end = local_day(day, zone)  # 2026-04-01 18:15 UTC to 2026-04-02 18:15 UTC
    pings = [
        span("Editor", None, start - timedelta(minutes=30), 45),  # 15 minutes inside the day
        span("Browser", "docs.python.org", start + timedelta(hours=2), 60),
        span("Browser", "github.com", start + timedelta(hours=3), 30),
        span("Slack", None, end - timedelta(minutes=10), 25),  # 10 minutes inside
        span("Editor", None, start + timedelta(hours=5), 30, idle=True),
    ]
    await store(container, organization.id, [OwnedPing(organization.id, user.id, p) for p in pings])

    written = await summaries.summarize(
        organization, uow_factory=container.database, now=end + timedelta(minutes=1)
    )
    assert (user.id, day) in written
    summary = await summary_of(container, organization.id, user.id, day)
    assert summary is not None
    assert summary.timezone == "Asia/Kathmandu"
    assert summary.active_seconds == (15 + 60 + 30 + 10) * 60
    assert summary.idle_seconds == 30 * 60
    assert summary.top_apps == (Entry("Browser", 5400), Entry("Editor", 900), Entry("Slack", 600))
    assert summary.top_domains == (Entry("docs.python.org", 3600), Entry("github.com", 1800))
    assert summary.first_activity_at == start
    assert summary.last_activity_at == end
    assert summary.sessions_count == 0
    assert agrees(summary, await report_of(container, summary))


async def test_late_data_for_a_summarized_day_recomputes_it(container: Container) -> None:
    organization, (user,) = await organization_with(
        container, ["America/New_York"], created_at=datetime(2026, 3, 7, tzinfo=UTC)
    )
    zone = ZoneInfo("America/New_York")
    day = date(2026, 3, 8)  # the 23-hour day
    start, end = local_day(day, zone)
    await store(
        container,
        organization.id,
        [OwnedPing(organization.id, user.id, span("Editor", None, start + timedelta(hours=9), 60))],
    )
    clock = Clock(end)
    await summaries.summarize(organization, uow_factory=container.database, now=clock.now())
    before = await summary_of(container, organization.id, user.id, day)
    assert before is not None
    assert before.active_seconds == 3600

    # Two hours more arrive late, after the day was summarized.
    late = span("Browser", "github.com", start + timedelta(hours=14), 120)
    await store(container, organization.id, [OwnedPing(organization.id, user.id, late)])
    clock.advance(TICK)
    written = await summaries.summarize(
        organization, uow_factory=container.database, now=clock.now()
    )

    assert (user.id, day) in written
    after = await summary_of(container, organization.id, user.id, day)
    assert after is not None
    assert after.active_seconds == 3 * 3600
    assert after.top_apps[0] == Entry("Browser", 7200)
    assert after.last_activity_at == start + timedelta(hours=16)
    assert agrees(after, await report_of(container, after))


class Crash(Exception):
    """The process dies here."""


def crashing(
    factory: Callable[..., AbstractAsyncContextManager[UnitOfWork]], at_commit: int
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """The real units of work, except that the `at_commit`-th commit never happens: the
    scheduler "dies" just before it, with that transaction open."""
    commits = 0

    @asynccontextmanager
    async def open_uow(**options: Any) -> AsyncIterator[UnitOfWork]:
        async with factory(**options) as uow:
            real_commit = uow.commit

            async def commit() -> None:
                nonlocal commits
                commits += 1
                if commits == at_commit:
                    raise Crash()
                await real_commit()

            uow.commit = commit  # type: ignore[method-assign]
            yield uow

    return open_uow


async def test_a_run_that_crashes_midway_leaves_whole_summaries_and_the_next_run_completes_it(
    container: Container,
) -> None:
    begin = datetime(2026, 5, 4, tzinfo=UTC)
    organization, users = await organization_with(container, ["UTC"] * 4, created_at=begin)
    for user in users:
        await store(container, organization.id, daily_usage(organization.id, user, begin.date(), 1))
    now = begin + timedelta(days=1)

    with pytest.raises(Crash):
        await summaries.summarize(
            organization,
            uow_factory=crashing(container.database, at_commit=3),
            now=now,
            chunk=1,  # a transaction per user-day, so that two are committed before the crash
        )
    present = [
        s
        for u in users
        if (s := await summary_of(container, organization.id, u.id, begin.date())) is not None
    ]
    assert len(present) == 2, "the two committed user-days, and nothing of the third"
    for summary in present:
        assert agrees(summary, await report_of(container, summary))
        assert summary.active_seconds == (90 + 30) * 60  # 23:30 to 00:00 of the browser span

    # No margin for late data: the rerun writes exactly what the crash left undone.
    completed = await summaries.summarize(
        organization, uow_factory=container.database, now=now, late_margin=timedelta(0)
    )
    assert sorted(completed) == sorted(
        (u.id, begin.date()) for u in users if u.id not in {s.user_id for s in present}
    )
    for user in users:
        rerun = await summary_of(container, organization.id, user.id, begin.date())
        assert rerun is not None
        assert agrees(rerun, await report_of(container, rerun))
