"""Ingestion at the use-case level, on SQLite and PostgreSQL: whatever the order, batching and
duplicates, the stored intervals are what the domain's merge computes from the set of valid
pings, and every item's result adds up."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.services.test_identity import PASSWORD, authenticate, email, register
from workpulse.bootstrap import Container
from workpulse.domain.errors import UserNotFound
from workpulse.domain.ids import UserId
from workpulse.domain.intervals import Interval, merge, split_at
from workpulse.domain.months import day_bounds
from workpulse.domain.pings import Ping
from workpulse.services import ingest
from workpulse.services.identity import Registration
from workpulse.services.ingest import Caller, Outcome, PingInput
from workpulse.services.ports import OwnedPing

PULSE, JOIN_GAP = timedelta(seconds=10), timedelta(seconds=30)
APPS = [
    ("Editor", None),
    ("Browser", "https://github.com/x"),
    ("Browser", "https://docs.python.org"),
]


async def new_caller(container: Container, devices: tuple[str, ...]) -> Caller:
    pair = await register(
        container,
        Registration(email=email(), password=PASSWORD, name="P", organization_name="Pings"),
        device_id=devices[0],
    )
    principal = await authenticate(container, pair.access_token)
    return Caller(principal=principal, device_id=devices[0], device_ids=frozenset(devices))


async def track(container: Container, caller: Caller, items: list[PingInput]) -> list[Outcome]:
    results = await ingest.track(
        caller,
        items,
        settings_of=container.settings_of,
        queue=container.ping_queue,
        clock=container.clock,
    )
    return [r.outcome for r in results]


async def drain(container: Container) -> None:
    while await ingest.derive_pending(
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
        limit=150,
    ):
        pass


async def stored(container: Container, caller: Caller, start: datetime) -> list[Interval]:
    rows = await ingest.intervals(
        caller.principal,
        user_id=None,
        start=start - timedelta(days=1),
        end=start + timedelta(days=1),
        uow_factory=container.database,
    )
    return sorted((i for _, i in rows), key=lambda i: (i.start, i.device_id))


async def checked(container: Container, caller: Caller, items: list[PingInput]) -> list[Ping]:
    """The pings the server keeps of `items`, as the domain checks them."""
    settings = await container.settings_of(caller.principal.organization_id)
    now = container.clock.now()
    found = (ingest.check_item(i, caller, settings, now) for i in items)
    return [p for p in found if isinstance(p, Ping)]


def expected(pings: list[Ping]) -> list[Interval]:
    merged = merge(pings, pulse=PULSE, join_gap=JOIN_GAP)
    first = min(p.start for p in pings)
    bounds = day_bounds(first - timedelta(days=1), first + timedelta(days=2))
    return sorted(split_at(merged, bounds), key=lambda i: (i.start, i.device_id))


def point(app: tuple[str, str | None], at: datetime, device: str, idle: bool = False) -> PingInput:
    return PingInput(app_name=app[0], url=app[1], timestamp=at, device_id=device, idle=idle)


async def test_shuffled_batches_with_duplicates_store_exactly_the_merged_intervals(
    container: Container,
) -> None:
    rng = random.Random(7)
    devices = ("laptop", "desktop")
    caller = await new_caller(container, devices)
    start = container.clock.now().replace(microsecond=0) - timedelta(hours=3)
    items: list[PingInput] = []
    for device in devices:
        at = start
        for _ in range(150):
            at += timedelta(seconds=rng.choice([3, 5, 10, 12, 25, 45, 90]))
            items.append(point(rng.choice(APPS), at, device, idle=rng.random() < 0.1))
    items.append(
        PingInput(
            app_name="Long span",
            start_time=start,
            end_time=start + timedelta(minutes=2),
            device_id="laptop",
        )
    )
    duplicates = rng.sample(items, 40)
    invalid = [PingInput(app_name=""), PingInput(app_name="x", device_id="someone-elses")]
    sent = items + duplicates + invalid
    rng.shuffle(sent)
    outcomes: list[Outcome] = []
    for offset in range(0, len(sent), 37):
        outcomes += await track(container, caller, sent[offset : offset + 37])
        if rng.random() < 0.3:
            await drain(container)  # the worker runs between some batches, not others
    await drain(container)

    assert outcomes.count(Outcome.REJECTED) == len(invalid)
    assert outcomes.count(Outcome.DUPLICATE) == len(duplicates)
    assert outcomes.count(Outcome.ACCEPTED) == len(items)
    assert await stored(container, caller, start) == expected(
        await checked(container, caller, items)
    )


async def test_a_late_ping_splits_the_interval_it_lands_in(container: Container) -> None:
    caller = await new_caller(container, ("laptop",))
    start = container.clock.now().replace(microsecond=0) - timedelta(hours=1)
    editor = [point(APPS[0], start + timedelta(seconds=s), "laptop") for s in range(0, 70, 10)]
    await track(container, caller, editor)
    await drain(container)
    assert [(i.app_name, i.start, i.end) for i in await stored(container, caller, start)] == [
        ("Editor", start, start + timedelta(seconds=70))
    ]
    await track(container, caller, [point(APPS[1], start + timedelta(seconds=35), "laptop")])
    await drain(container)
    assert [(i.app_name, i.start, i.end) for i in await stored(container, caller, start)] == [
        ("Editor", start, start + timedelta(seconds=35)),
        ("Browser", start + timedelta(seconds=35), start + timedelta(seconds=40)),
        ("Editor", start + timedelta(seconds=40), start + timedelta(seconds=70)),
    ]


async def test_a_batch_delivered_twice_changes_nothing(container: Container) -> None:
    caller = await new_caller(container, ("laptop",))
    start = container.clock.now().replace(microsecond=0) - timedelta(hours=2)
    pings = await checked(
        container,
        caller,
        [point(APPS[0], start + timedelta(seconds=s), "laptop") for s in range(0, 100, 10)],
    )
    principal = caller.principal
    batch = [OwnedPing(principal.organization_id, principal.user_id, p) for p in pings]

    async def deliver() -> int:
        return await ingest.store_and_derive(
            batch,
            uow_factory=container.database,
            settings_of=container.settings_of,
            partitions=container.partitions,
        )

    first = await deliver()
    before = await stored(container, caller, start)
    again = await deliver()
    assert (first, again) == (10, 0)
    assert await stored(container, caller, start) == before


async def test_workers_racing_over_one_device_agree_with_the_merge(container: Container) -> None:
    caller = await new_caller(container, ("laptop",))
    rng = random.Random(11)
    start = container.clock.now().replace(microsecond=0) - timedelta(hours=4)
    items = [
        point(rng.choice(APPS), start + timedelta(seconds=7 * k), "laptop") for k in range(300)
    ]
    rng.shuffle(items)
    for offset in range(0, len(items), 50):
        await track(container, caller, items[offset : offset + 50])
    await asyncio.gather(*(drain(container) for _ in range(4)))
    assert await stored(container, caller, start) == expected(
        await checked(container, caller, items)
    )


@pytest.mark.parametrize("part", [timedelta(hours=6), timedelta(minutes=10)])
async def test_one_batch_over_many_users_devices_and_times_derives_each_device_apart(
    container: Container, monkeypatch: pytest.MonkeyPatch, part: timedelta
) -> None:
    """A batch is derived with a few statements for all its devices: devices of different users
    with the same name, of several organizations, and windows hours and days apart (which the
    store queries separately) each get exactly their own merge, whether the pings are loaded
    for all devices at once or a few devices at a time."""
    monkeypatch.setattr(ingest, "PART_DEVICE_TIME", part)
    rng = random.Random(5)
    devices = ("laptop", "desktop")
    callers = [await new_caller(container, devices) for _ in range(4)]
    now = container.clock.now().replace(microsecond=0)
    origins = [now - timedelta(hours=h) for h in (1, 1, 7, 50)]
    sent: dict[int, list[PingInput]] = {}
    for n, origin in enumerate(origins):
        sent[n] = []
        for device in devices:
            at = origin + timedelta(seconds=rng.randrange(60))
            for _ in range(60):
                at += timedelta(seconds=rng.choice([4, 5, 6, 20, 40]))
                sent[n].append(point(rng.choice(APPS), at, device, idle=rng.random() < 0.1))
    batch = [
        OwnedPing(c.principal.organization_id, c.principal.user_id, p)
        for n, c in enumerate(callers)
        for p in await checked(container, c, sent[n])
    ]
    rng.shuffle(batch)
    # Two deliveries of interleaved halves: the second re-derives next to stored intervals.
    for half in (batch[::2], batch[1::2]):
        await ingest.store_and_derive(
            half,
            uow_factory=container.database,
            settings_of=container.settings_of,
            partitions=container.partitions,
        )
    for n, caller in enumerate(callers):
        assert await stored(container, caller, origins[n]) == expected(
            await checked(container, caller, sent[n])
        )


async def test_an_employee_cannot_read_another_users_intervals(container: Container) -> None:
    caller = await new_caller(container, ("laptop",))
    other = await new_caller(container, ("laptop",))
    with pytest.raises(UserNotFound):
        await ingest.intervals(
            caller.principal,
            user_id=UserId(other.principal.user_id),
            start=datetime(2026, 1, 1, tzinfo=UTC),
            end=datetime(2026, 1, 2, tzinfo=UTC),
            uow_factory=container.database,
        )
