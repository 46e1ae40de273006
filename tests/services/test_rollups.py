"""Hourly rollups kept by the worker equal a tally of the stored intervals, for random usage
arriving in random batches and orders (late pings re-derive earlier hours), on both databases."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from workpulse.bootstrap import Container
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.organizations import Organization, OrganizationSettings
from workpulse.domain.pings import Ping
from workpulse.domain.reports import Usage, tally
from workpulse.domain.roles import Role
from workpulse.domain.users import User
from workpulse.services import ingest
from workpulse.services.ports import HourlyRows, OwnedPing, UserKey

Key = tuple[int, UserId | None, str | None, str | None, bool]
ORIGIN = datetime(2026, 5, 31, 20, 0, tzinfo=UTC)  # crosses a UTC midnight and a month bound
SPREAD = timedelta(hours=30)


async def _organization_with_users(
    container: Container, count: int
) -> tuple[OrganizationId, list[UserId]]:
    organization = Organization(
        id=OrganizationId(uuid.uuid4()),
        name="Rollups",
        plan_type="free",
        timezone="UTC",
        settings=OrganizationSettings(),
        created_at=ORIGIN,
    )
    users = [
        User(
            id=UserId(uuid.uuid4()),
            organization_id=organization.id,
            email=f"r{n}-{uuid.uuid4().hex[:8]}@example.com",
            name=f"User {n}",
            role=Role.EMPLOYEE,
            is_active=True,
            timezone=None,
            created_at=ORIGIN,
        )
        for n in range(count)
    ]
    async with container.database() as uow:
        await uow.organizations.add(organization)
        for user in users:
            await uow.users.add(user, "not-a-hash")
        await uow.commit()
    return organization.id, [u.id for u in users]


def _random_ping(rng: random.Random, n: int) -> Ping:
    start = ORIGIN + timedelta(seconds=rng.randrange(int(SPREAD.total_seconds())))
    span = rng.random() < 0.3
    return Ping(
        device_id=rng.choice(["laptop", "desktop", "phone"]),
        app_name=rng.choice(["Editor", "Browser", "Slack"]),
        url=None,
        domain=rng.choice([None, "github.com", "docs.python.org"]),
        title=None,
        idle=rng.random() < 0.15,
        start=start,
        end=start + timedelta(seconds=rng.randrange(1, 4 * 3600)) if span else None,
        event_id=f"p{n}",
    )


@pytest.mark.parametrize("seed", [1, 2])
async def test_rollups_equal_a_tally_of_the_intervals(container: Container, seed: int) -> None:
    rng = random.Random(seed)
    organization_id, user_ids = await _organization_with_users(container, 2)
    owned = [
        OwnedPing(organization_id, rng.choice(user_ids), _random_ping(rng, n)) for n in range(600)
    ]
    rng.shuffle(owned)
    for offset in range(0, len(owned), 50):  # batches, in random order: late data re-derives
        await ingest.store_and_derive(
            owned[offset : offset + 50],
            uow_factory=container.database,
            settings_of=container.settings_of,
            partitions=container.partitions,
        )

    start, end = ORIGIN - timedelta(days=1), ORIGIN + SPREAD + timedelta(days=1)
    async with container.database(readonly=True) as uow:
        rollups = await uow.rollups.read(organization_id, None, start, end)
        intervals = await uow.usage.of_users(organization_id, None, [(start, end)])
    stored = Counter(
        {
            (
                r.user_id,
                r.usage.hour,
                r.usage.app_name,
                r.usage.domain,
                r.usage.idle,
            ): r.usage.micros
            for r in rollups
        }
    )
    assert len(stored) == len(rollups), "one row per user, hour and key"
    expected: Counter[tuple[UserId, datetime, str, str | None, bool]] = Counter()
    for user_id in user_ids:
        own = [i for owner, i in intervals if owner == user_id]
        for usage in tally(own, [], start, end):
            expected[(user_id, usage.hour, usage.app_name, usage.domain, usage.idle)] += (
                usage.micros
            )
    assert stored == expected
    assert sum(expected.values()) > 0
    # Devices flattened: no hour holds more than an hour of time for one user.
    per_hour = Counter[tuple[UserId, datetime]]()
    for (user_id, hour, *_), micros in stored.items():
        per_hour[(user_id, hour)] += micros
    assert max(per_hour.values()) <= 3600 * 1_000_000


@pytest.mark.parametrize(
    "by",
    [frozenset(), frozenset({"app_name"}), frozenset({"user_id", "app_name", "domain"})],
)
async def test_sums_in_the_database_equal_sums_of_the_hourly_rows(
    container: Container, by: frozenset[str]
) -> None:
    rng = random.Random(7)
    organization_id, user_ids = await _organization_with_users(container, 2)
    owned = [
        OwnedPing(organization_id, rng.choice(user_ids), _random_ping(rng, n)) for n in range(200)
    ]
    await ingest.store_and_derive(
        owned,
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
    )
    # Windows with a gap between them: hours in the gap belong to no window.
    windows = [
        (ORIGIN, ORIGIN + timedelta(hours=5)),
        (ORIGIN + timedelta(hours=6), ORIGIN + timedelta(hours=20)),
        (ORIGIN + timedelta(hours=20), ORIGIN + SPREAD),
    ]
    async with container.database(readonly=True) as uow:
        summed = await uow.rollups.totals(organization_id, None, windows, by)
        hourly = await uow.rollups.read(organization_id, None, ORIGIN, ORIGIN + SPREAD)

    def key(index: int, user: UserId, usage_app: str, domain: str | None, idle: bool) -> Key:
        return (
            index,
            user if "user_id" in by else None,
            usage_app if "app_name" in by else None,
            domain if "domain" in by else None,
            idle,
        )

    expected: Counter[Key] = Counter()
    for row in hourly:
        for index, (start, end) in enumerate(windows):
            if start <= row.usage.hour < end:
                u = row.usage
                expected[key(index, row.user_id, u.app_name, u.domain, u.idle)] += u.micros
    got: Counter[Key] = Counter()
    for index, row in summed:
        u = row.usage
        assert u.hour == windows[index][0]
        got[key(index, row.user_id, u.app_name, u.domain, u.idle)] += u.micros
    assert got == expected
    assert sum(got.values()) > 0


async def test_rollups_out_of_step_with_their_intervals_are_recomputed(
    container: Container,
) -> None:
    """The worker adds the difference a batch makes to each hour's rows; a row that the
    difference would take below zero (rollups out of step with the intervals) has its hours
    recomputed from the intervals instead."""
    organization_id, (user_id,) = await _organization_with_users(container, 1)
    user = UserKey(organization_id, user_id)
    hour = ORIGIN + timedelta(hours=2)

    def point(n: int, at: datetime, app: str) -> OwnedPing:
        ping = Ping("laptop", app, None, None, None, False, at, None, f"o{n}")
        return OwnedPing(organization_id, user_id, ping)

    async def derive(batch: list[OwnedPing]) -> None:
        await ingest.store_and_derive(
            batch,
            uow_factory=container.database,
            settings_of=container.settings_of,
            partitions=container.partitions,
        )

    async def rollups_and_tally() -> tuple[
        Counter[tuple[str, datetime]], Counter[tuple[str, datetime]]
    ]:
        window = [(hour, hour + timedelta(hours=1))]
        async with container.database(readonly=True) as uow:
            rows = await uow.rollups.read(organization_id, [user_id], *window[0])
            intervals = await uow.usage.of_users(organization_id, [user_id], window)
        stored = Counter({(r.usage.app_name, r.usage.hour): r.usage.micros for r in rows})
        expected: Counter[tuple[str, datetime]] = Counter()
        for usage in tally([i for _, i in intervals], [], *window[0]):
            expected[(usage.app_name, usage.hour)] += usage.micros
        return stored, expected

    await derive([point(n, hour + timedelta(seconds=20 * n), "Editor") for n in range(60)])
    stored, expected = await rollups_and_tally()
    assert stored == expected
    assert expected
    async with container.database() as uow:  # out of step: a second of Editor in that hour
        editor = Usage(hour, "Editor", None, False, None, 1_000_000)
        await uow.rollups.replace([HourlyRows(user, hour, hour + timedelta(hours=1), [editor])])
        await uow.commit()
    # A late Slack ping takes 10 s from Editor: the difference would leave Editor below zero.
    await derive([point(100, hour + timedelta(seconds=605), "Slack")])
    stored, expected = await rollups_and_tally()
    assert stored == expected
    assert expected[("Slack", hour)] == 10_000_000
