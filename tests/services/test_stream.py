"""Stream mode (PostgreSQL + Redis): the API appends to a Redis Stream, workers in a consumer
group store and derive; processed entries leave Redis; a dead worker's entries are claimed; an
entry that keeps failing is dead-lettered with its reason and can be replayed."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import test_settings
from tests.services.test_ingest import APPS, checked, expected, new_caller, point, stored
from workpulse import bootstrap
from workpulse.adapters.ping_stream import DeadLetters, StreamConsumer, decode, encode
from workpulse.bootstrap import Container
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.pings import Ping
from workpulse.entrypoints.worker import run_worker
from workpulse.services import ingest
from workpulse.services.ingest import Outcome, PingInput
from workpulse.services.ports import Backlogged, OwnedPing


@pytest.fixture
async def streamed(postgresql_url: str, redis_url: str) -> AsyncIterator[Container]:
    settings = test_settings(
        postgresql_url,
        redis_url=redis_url,
        ingest_claim_idle_seconds=0.3,
        ingest_max_deliveries=2,
        ingest_backlog_entries=1000,
    )
    async with bootstrap.build(settings) as container:
        yield container
        assert container.redis is not None
        await container.redis.delete(container.redis_keys.stream, container.redis_keys.dead_letters)


@asynccontextmanager
async def workers(container: Container, count: int = 2) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(container, stopping)) for _ in range(count)]
    try:
        yield
    finally:
        stopping.set()
        await asyncio.gather(*tasks)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within 10 s: {what}")


async def backlog(container: Container) -> int:
    assert container.redis is not None
    return int(await container.redis.xlen(container.redis_keys.stream))


async def test_streamed_pings_are_stored_once_and_leave_redis(streamed: Container) -> None:
    rng = random.Random(3)
    caller = await new_caller(streamed, ("laptop", "desktop"))
    start = streamed.clock.now().replace(microsecond=0) - timedelta(hours=2)
    items = [
        point(rng.choice(APPS), start + timedelta(seconds=rng.randint(0, 3600)), device)
        for device in ("laptop", "desktop")
        for _ in range(120)
    ]
    sent = items + rng.sample(items, 30)
    rng.shuffle(sent)
    outcomes: list[Outcome] = []
    async with workers(streamed):
        for offset in range(0, len(sent), 25):
            results = await ingest.track(
                caller,
                sent[offset : offset + 25],
                settings_of=streamed.settings_of,
                queue=streamed.ping_queue,
                clock=streamed.clock,
            )
            outcomes += [r.outcome for r in results]
        valid = await checked(streamed, caller, items)
        want = expected(valid)

        async def derived() -> bool:
            return await backlog(streamed) == 0 and await stored(streamed, caller, start) == want

        await eventually(derived, "every entry processed and intervals derived")
    distinct = {(p.device_id, p.event_id) for p in valid}
    assert outcomes.count(Outcome.ACCEPTED) == len(distinct)
    assert outcomes.count(Outcome.DUPLICATE) == len(sent) - len(distinct)
    async with streamed.engine.connect() as conn:
        rows = await conn.scalar(
            sa.text("SELECT count(*) FROM pings WHERE user_id = :u"),
            {"u": caller.principal.user_id},
        )
    assert rows == len(distinct)


async def test_a_full_backlog_refuses_instead_of_growing(
    postgresql_url: str, redis_url: str
) -> None:
    settings = test_settings(postgresql_url, redis_url=redis_url, ingest_backlog_entries=3)
    async with bootstrap.build(settings) as container:
        caller = await new_caller(container, ("laptop",))
        at = container.clock.now() - timedelta(minutes=5)
        for k in range(3):  # no worker runs: the stream only grows
            await ingest.track(
                caller,
                [point(APPS[0], at + timedelta(seconds=k), "laptop")],
                settings_of=container.settings_of,
                queue=container.ping_queue,
                clock=container.clock,
            )
        with pytest.raises(Backlogged):
            await ingest.track(
                caller,
                [point(APPS[0], at + timedelta(seconds=9), "laptop")],
                settings_of=container.settings_of,
                queue=container.ping_queue,
                clock=container.clock,
            )
        assert container.redis is not None
        await container.redis.delete(container.redis_keys.stream)


async def test_a_dead_workers_entries_are_claimed_by_another(streamed: Container) -> None:
    assert streamed.redis is not None
    caller = await new_caller(streamed, ("laptop",))
    at = streamed.clock.now().replace(microsecond=0) - timedelta(minutes=30)
    items = [point(APPS[0], at + timedelta(seconds=10 * k), "laptop") for k in range(6)]
    await ingest.track(
        caller,
        items,
        settings_of=streamed.settings_of,
        queue=streamed.ping_queue,
        clock=streamed.clock,
    )
    crashed = StreamConsumer(streamed.redis, streamed.redis_keys, name="crashed")
    await crashed.join()
    taken = await crashed.read(count=10, block_ms=100)  # read, then never acknowledged
    assert taken
    async with workers(streamed, count=1):

        async def claimed() -> bool:
            return await backlog(streamed) == 0

        await eventually(claimed, "the stale entry claimed and processed")
    assert await stored(streamed, caller, at) == expected(await checked(streamed, caller, items))


async def test_an_entry_that_keeps_failing_is_dead_lettered_and_can_be_replayed(
    streamed: Container,
) -> None:
    assert streamed.redis is not None
    caller = await new_caller(streamed, ("laptop",))
    at = streamed.clock.now().replace(microsecond=0) - timedelta(minutes=10)
    good = (await checked(streamed, caller, [point(APPS[0], at, "laptop")]))[0]
    # A ping of an organization that does not exist: the database refuses it every time.
    orphan = OwnedPing(OrganizationId(uuid.uuid4()), UserId(uuid.uuid4()), good)
    await streamed.redis.xadd(streamed.redis_keys.stream, {"p": f"[{encode(orphan)}]"})
    await streamed.redis.xadd(streamed.redis_keys.stream, {"p": "not json"})
    letters = DeadLetters(streamed.redis, streamed.redis_keys)
    async with workers(streamed, count=1):

        async def dead() -> bool:
            return await letters.count() == 2 and await backlog(streamed) == 0

        await eventually(dead, "both entries dead-lettered")
    reasons = sorted(fields["reason"] for _, fields in await letters.list())
    assert "ForeignKeyViolation" in reasons[0] or "IntegrityError" in reasons[0]
    assert "undecodable" in reasons[1]
    assert await letters.replay() == 2
    assert await letters.count() == 0
    assert await backlog(streamed) == 2


async def test_stream_payloads_round_trip(streamed: Container) -> None:
    caller = await new_caller(streamed, ("laptop",))
    span = PingInput(
        app_name="Ärger",
        url="https://bücher.de/x",
        title="t",
        start_time=streamed.clock.now() - timedelta(hours=1),
        end_time=streamed.clock.now() - timedelta(minutes=30),
        idle=True,
    )
    ping: Ping = (await checked(streamed, caller, [span]))[0]
    owned = OwnedPing(caller.principal.organization_id, caller.principal.user_id, ping)
    assert decode(f"[{encode(owned)}]") == [owned]


async def test_concurrent_submissions_share_round_trips_and_each_ping_is_accepted_once(
    streamed: Container,
) -> None:
    """Requests submitted at the same moment go to Redis together (one pipeline), each still
    its own atomic script: of many concurrent copies of one ping exactly one is accepted, every
    other request gets its own answers, and one stream entry per accepted request is added."""
    caller = await new_caller(streamed, ("laptop",))
    at = streamed.clock.now().replace(microsecond=0) - timedelta(minutes=10)
    same = point(("Editor", None), at, "laptop")
    others = [point(("Slack", None), at + timedelta(seconds=n + 1), "laptop") for n in range(40)]

    async def submit(items: list[PingInput]) -> list[Outcome]:
        results = await ingest.track(
            caller,
            items,
            settings_of=streamed.settings_of,
            queue=streamed.ping_queue,
            clock=streamed.clock,
        )
        return [r.outcome for r in results]

    before = await backlog(streamed)
    answers = await asyncio.gather(
        *(submit([same]) for _ in range(40)), *(submit([other]) for other in others)
    )
    copies, distinct = answers[:40], answers[40:]
    assert sorted(a[0] for a in copies).count(Outcome.ACCEPTED) == 1
    assert all(a == [Outcome.DUPLICATE] for a in copies if a != [Outcome.ACCEPTED])
    assert all(a == [Outcome.ACCEPTED] for a in distinct)
    assert await backlog(streamed) - before == 1 + len(others)
