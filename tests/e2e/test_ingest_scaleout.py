"""Ping ingestion scaled out over real processes: two `workpulse api` and two `workpulse worker`
on PostgreSQL and Redis. Several users, each with two devices, send a few thousand pings in
shuffled batches of varying size to both APIs at once, with repeats (sent to the other API) and
invalid items. Every item's result, the stored pings and the merged intervals must be exactly
what the domain computes from the set of valid pings.

The scenario helpers here (users, ping plans, batches, checks) are shared by the embedded and
the fault tests (`test_ingest_embedded.py`, `test_ingest_faults.py`).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.api import PASSWORD, unique_email
from tests.conftest import (
    REDIS_URL,
    TEST_SECRET,
    create_postgres_database,
    drop_postgres_database,
)
from tests.e2e.process import Running, environment, free_port, run, started
from workpulse.adapters.db.engine import create_engine
from workpulse.domain.intervals import Interval, merge, split_at
from workpulse.domain.months import day_bounds
from workpulse.domain.organizations import OrganizationSettings, Privacy
from workpulse.domain.pings import Ping, check_ping

# The organization defaults (a new organization is created by each registration).
DEFAULTS = OrganizationSettings()
PULSE = timedelta(seconds=DEFAULTS.pulse_seconds)
JOIN_GAP = timedelta(seconds=DEFAULTS.join_gap_seconds)
HORIZON = timedelta(days=DEFAULTS.ping_horizon_days)
DEVICES = ("laptop", "phone")  # the same names for every user: devices are per user
# (app_name, url, domain): with a URL the domain comes from it; a client domain is normalized.
APPS: list[tuple[str, str | None, str | None]] = [
    ("Editor", None, None),
    ("Browser", "https://github.com/workpulse/x", None),
    ("Browser", "https://www.Python.org/doc/", None),
    ("Slack", None, "Slack.COM"),
    ("Terminal", None, None),
]
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
SETTLE_TIMEOUT = 40.0  # seconds for the workers to finish: reaching it means stuck, not slow

Key = tuple[int, str, str]  # (account index, device id, event id): one stored ping
Row = tuple[str, str, str | None, bool, datetime, datetime]  # an interval, compared as a tuple


# --- Users -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A registered user and an access token per device (one login per device)."""

    user_id: str
    tokens: dict[str, str]

    def headers(self, device: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[device]}"}


async def register(client: httpx.AsyncClient, devices: Sequence[str] = DEVICES) -> Account:
    """Registers a user (a new organization) from the first device and logs in from the rest."""
    email = unique_email("pinger")
    registered = await client.post(
        "/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "name": "Pinger",
            "organization_name": f"Pings {uuid.uuid4().hex[:6]}",
        },
        headers={"X-Device-Id": devices[0]},
    )
    assert registered.status_code == 201, registered.text
    tokens = {devices[0]: registered.json()["access_token"]}
    for device in devices[1:]:
        login = await client.post(
            "/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-Device-Id": device},
        )
        assert login.status_code == 200, login.text
        tokens[device] = login.json()["access_token"]
    return Account(registered.json()["user"]["id"], tokens)


async def register_all(client: httpx.AsyncClient, count: int) -> list[Account]:
    """All logins happen before any ping: the server caches a session's device list."""
    return list(await asyncio.gather(*(register(client) for _ in range(count))))


# --- Pings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One batch item: the JSON sent and what the server must make of it."""

    account: int
    body: dict[str, Any]
    ping: Ping | None = None  # the ping the server keeps; None for an item it must refuse
    reason: str | None = None  # the expected rejection reason

    @property
    def key(self) -> Key:
        assert self.ping is not None
        return (self.account, self.ping.device_id, self.ping.event_id)


def _instant(moment: datetime, rng: random.Random) -> str:
    """The instant written with one of several offsets (the server stores UTC)."""
    return moment.astimezone(rng.choice(OFFSETS)).isoformat()


def plan_pings(rng: random.Random, account: int, count: int, now: datetime) -> list[Item]:
    """`count` valid pings of one user, spread over its devices and ending before `now`:
    mostly point samples a few seconds apart, some idle, some spans (with points inside them),
    some with a client event id. Each device's instants only grow, so no two pings are equal."""
    items: list[Item] = []
    per_device = -(-count // len(DEVICES))
    for index, device in enumerate(DEVICES):
        # Gaps average 22 s: 30 s a ping, plus the longest span, keeps every ping in the past.
        at = now - timedelta(seconds=30 * per_device + 900) + timedelta(seconds=rng.uniform(0, 60))
        for _ in range(count // len(DEVICES) + (index < count % len(DEVICES))):
            at += timedelta(seconds=rng.choice([1, 3, 5, 10, 10, 12, 25, 40, 90]))
            at += timedelta(milliseconds=rng.randint(0, 999))
            app_name, url, domain = rng.choice(APPS)
            end = at + timedelta(seconds=rng.randint(20, 900)) if rng.random() < 0.05 else None
            idle = rng.random() < 0.06
            title = f"Window {rng.randint(1, 9)}" if rng.random() < 0.5 else None
            event_id = (
                f"client-{uuid.UUID(int=rng.getrandbits(128))}" if rng.random() < 0.1 else None
            )
            body: dict[str, Any] = {"app_name": app_name, "device_id": device, "idle": idle}
            if end is None:
                body["timestamp"] = _instant(at, rng)
            else:
                body["start_time"], body["end_time"] = _instant(at, rng), _instant(end, rng)
            for name, value in (("url", url), ("domain", domain), ("title", title)):
                if value is not None:
                    body[name] = value
            if event_id is not None:
                body["event_id"] = event_id
            ping = check_ping(
                app_name=app_name,
                device_id=device,
                start=at,
                end=end,
                url=url,
                domain=domain,
                title=title,
                idle=idle,
                event_id=event_id,
                now=now,
                horizon=HORIZON,
                privacy=Privacy(),
            )
            assert isinstance(ping, Ping), ping
            items.append(Item(account, body, ping))
    return items


def invalid_items(account: int, now: datetime) -> list[Item]:
    """Items the server must refuse, each on its own, with the reason it must give."""
    at = (now - timedelta(hours=1)).isoformat()
    bodies: list[tuple[dict[str, Any], str]] = [
        ({"app_name": "", "timestamp": at}, "invalid"),
        ({"app_name": "   ", "device_id": DEVICES[0], "timestamp": at}, "invalid"),
        ({"app_name": "Editor", "device_id": "someone-elses", "timestamp": at}, "invalid"),
        ({"app_name": "Editor", "timestamp": (now + timedelta(hours=1)).isoformat()}, "in_future"),
        ({"app_name": "Editor", "timestamp": (now - timedelta(days=30)).isoformat()}, "too_old"),
        ({"app_name": "Editor", "timestamp": "2026-01-02T10:00:00"}, "invalid"),  # no offset
        ({"app_name": "Editor", "start_time": at, "end_time": at}, "invalid"),
        ({"app_name": "Editor", "end_time": at}, "invalid"),  # a span needs its start
        ({"app_name": 42, "timestamp": at}, "invalid"),
        ({"app_name": "Edi\x00tor", "timestamp": at}, "invalid"),
    ]
    return [Item(account, body, reason=reason) for body, reason in bodies]


# --- Batches -----------------------------------------------------------------------------------


@dataclass
class Batch:
    """One request: one user's items, sent with one device's token to one API process."""

    account: int
    api: int
    device: str
    items: list[Item]
    # Items of the sending device may leave `device_id` out (it defaults to the token's).
    implicit_device: set[int] = field(default_factory=set)

    def payload(self) -> dict[str, Any]:
        bodies = []
        for position, item in enumerate(self.items):
            body = dict(item.body)
            if position in self.implicit_device:
                del body["device_id"]
            bodies.append(body)
        return {"pings": bodies}


def make_batches(
    rng: random.Random,
    items: Sequence[Item],
    *,
    apis: int,
    repeat_share: float = 0.08,
    sizes: Sequence[int] = (1, 2, 7, 20, 50, 120, 250),
) -> list[Batch]:
    """Shuffled batches of varying size per user, the API alternating between batches. A share
    of the valid items is sent once more (the same item, its device named or implied by the
    token) in a batch going to another API process than the first copy (with a single API, in
    any batch, its own included)."""
    by_account: dict[int, list[Item]] = defaultdict(list)
    for item in items:
        by_account[item.account].append(item)
    batches: list[Batch] = []
    for account, own in sorted(by_account.items()):
        own = list(own)
        rng.shuffle(own)
        first = len(batches)
        offset = 0
        while offset < len(own):
            size = rng.choice(sizes)
            batch = Batch(
                account, len(batches) % apis, rng.choice(DEVICES), own[offset : offset + size]
            )
            batches.append(batch)
            offset += size
        mine = batches[first:]
        for batch in mine:
            valid = [item for item in batch.items if item.ping is not None]
            for item in rng.sample(valid, round(len(valid) * repeat_share)):
                others = [b for b in mine if b.api != batch.api] or mine
                target = rng.choice(others)
                target.items.insert(rng.randint(0, len(target.items)), item)
    for batch in batches:
        batch.implicit_device = {
            position
            for position, item in enumerate(batch.items)
            if item.ping is not None and item.ping.device_id == batch.device and rng.random() < 0.3
        }
    rng.shuffle(batches)
    return batches


@dataclass(frozen=True)
class Sent:
    """The server's answer to one item."""

    item: Item
    status: str
    reason: str | None
    event_id: str | None


def read_results(batch: Batch, response: httpx.Response) -> list[Sent]:
    assert response.status_code == 202, response.text
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(batch.items)))
    statuses = Counter(r["status"] for r in results)
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (
        statuses["accepted"],
        statuses["duplicate"],
        statuses["rejected"],
    ), body
    return [
        Sent(item, r["status"], r.get("reason"), r.get("event_id"))
        for item, r in zip(batch.items, results, strict=True)
    ]


async def post(client: httpx.AsyncClient, account: Account, batch: Batch) -> httpx.Response:
    return await client.post(
        "/usage/track", json=batch.payload(), headers=account.headers(batch.device)
    )


async def send_all(
    clients: Sequence[httpx.AsyncClient],
    accounts: Sequence[Account],
    batches: Sequence[Batch],
    *,
    concurrency: int = 8,
    refused: list[httpx.Response] | None = None,
) -> list[Sent]:
    """Sends every batch, `concurrency` requests in flight at once; each must answer 202.

    With a `refused` list, a batch answered 503 is sent again (as a client does, though sooner
    than its Retry-After, to keep the test short), and the 503 answers are collected there."""
    gate = asyncio.Semaphore(concurrency)

    async def one(batch: Batch) -> list[Sent]:
        for _ in range(20):
            async with gate:
                response = await post(clients[batch.api], accounts[batch.account], batch)
            if refused is None or response.status_code != 503:
                break
            refused.append(response)
            await asyncio.sleep(0.1)
        return read_results(batch, response)

    answers = await asyncio.gather(*(one(batch) for batch in batches))
    return [sent for answer in answers for sent in answer]


def check_results(sent: Sequence[Sent]) -> dict[Key, Ping]:
    """Every refused item refused with its reason; every distinct valid ping accepted exactly
    once over all its copies, the other copies answered `duplicate`. Returns the accepted set."""
    copies: dict[Key, list[str]] = defaultdict(list)
    pings: dict[Key, Ping] = {}
    for s in sent:
        if s.item.ping is None:
            assert (s.status, s.reason) == ("rejected", s.item.reason), (s, s.item.body)
            continue
        assert s.status in ("accepted", "duplicate"), (s, s.item.body)
        assert s.event_id == s.item.ping.event_id, (s, s.item.body)
        copies[s.item.key].append(s.status)
        pings[s.item.key] = s.item.ping
    wrong = {
        k: v for k, v in copies.items() if sorted(v) != ["accepted"] + ["duplicate"] * (len(v) - 1)
    }
    assert not wrong, (
        f"{len(wrong)} pings not accepted exactly once, e.g. {next(iter(wrong.items()))}"
    )
    statuses = Counter(s.status for s in sent)
    valid_sends = sum(len(v) for v in copies.values())
    assert statuses["accepted"] == len(copies)
    assert statuses["duplicate"] == valid_sends - len(copies)
    assert statuses["rejected"] == sum(s.item.ping is None for s in sent)
    return pings


# --- What the server holds ---------------------------------------------------------------------


def query_range(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(days=1), now + timedelta(days=1)


def expected_intervals(pings: Sequence[Ping], now: datetime) -> list[Row]:
    """What the domain's merge rule makes of the set, split where the store splits."""
    first, last = query_range(now)
    merged = merge(pings, pulse=PULSE, join_gap=JOIN_GAP)
    return sorted(_row(i) for i in split_at(merged, day_bounds(first, last)))


def _row(interval: Interval) -> Row:
    i = interval
    return (i.device_id, i.app_name, i.domain, i.idle, i.start, i.end)


async def served_intervals(client: httpx.AsyncClient, account: Account, now: datetime) -> list[Row]:
    first, last = query_range(now)
    response = await client.get(
        "/usage/intervals",
        params={"from": first.isoformat(), "to": last.isoformat()},
        headers=account.headers(DEVICES[0]),
    )
    assert response.status_code == 200, response.text
    rows = []
    for i in response.json():
        assert i["user_id"] == account.user_id, i
        start, end = datetime.fromisoformat(i["start_time"]), datetime.fromisoformat(i["end_time"])
        assert start.utcoffset() is not None, i
        rows.append((i["device_id"], i["app_name"], i["domain"], i["idle"], start, end))
    return sorted(rows)


def assert_no_overlap(rows: Sequence[Row]) -> None:
    by_device: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_device[row[0]].append(row)
    for device, own in by_device.items():
        own.sort(key=lambda r: r[4])
        for before, after in pairwise(own):
            assert before[4] < before[5] <= after[4], (device, before, after)


async def check_intervals(
    client: httpx.AsyncClient,
    accounts: Sequence[Account],
    pings: dict[Key, Ping],
    now: datetime,
) -> None:
    """`GET /usage/intervals` of each user is exactly the merge of that user's valid pings."""
    for index, account in enumerate(accounts):
        own = [p for (owner, _, _), p in pings.items() if owner == index]
        served = await served_intervals(client, account, now)
        assert_no_overlap(served)
        want = expected_intervals(own, now)
        assert served == want, _difference(served, want)


def _difference(served: list[Row], want: list[Row]) -> str:
    extra = sorted(set(served) - set(want))[:5]
    missing = sorted(set(want) - set(served))[:5]
    return f"{len(served)} served, {len(want)} expected; extra {extra}; missing {missing}"


@asynccontextmanager
async def database(url: str) -> AsyncIterator[AsyncConnection]:
    """A reading connection to the service's database (PostgreSQL or the embedded SQLite)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            yield await conn.execution_options(sqlite_begin="DEFERRED")
    finally:
        await engine.dispose()


async def stored_pings(url: str, accounts: Sequence[Account]) -> tuple[Counter[Key], int]:
    """Every stored ping's key with its number of rows, and how many are still pending."""
    index = {uuid.UUID(a.user_id): n for n, a in enumerate(accounts)}
    async with database(url) as conn:
        rows = await conn.execute(
            sa.text("SELECT user_id, device_id, event_id, pending FROM pings")
        )
        found: Counter[Key] = Counter()
        pending = 0
        for user_id, device_id, event_id, is_pending in rows:
            found[(index[uuid.UUID(str(user_id))], device_id, event_id)] += 1
            pending += bool(is_pending)
        await conn.rollback()
    return found, pending


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, within: float = SETTLE_TIMEOUT
) -> None:
    """Polls `check` until it holds; fails naming `what` after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.2)


async def check_stored_exactly_once(
    url: str, accounts: Sequence[Account], pings: dict[Key, Ping]
) -> None:
    found, pending = await stored_pings(url, accounts)
    assert pending == 0
    assert found == Counter(pings.keys()), (
        f"{sum(found.values())} rows for {len(found)} keys, {len(pings)} expected; "
        f"missing {list(pings.keys() - found.keys())[:3]}; "
        f"extra {list(found.keys() - pings.keys())[:3]}; "
        f"repeated {[k for k, n in found.items() if n > 1][:3]}"
    )


# --- Redis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """The ping stream of one Redis key prefix, as the tests look at it."""

    redis: Redis
    prefix: str

    @property
    def name(self) -> str:
        return f"{self.prefix}:pings"

    async def length(self) -> int:
        return int(await self.redis.xlen(self.name))

    async def dead_letters(self) -> int:
        return int(await self.redis.xlen(f"{self.prefix}:pings:dead"))

    async def pending(self) -> dict[str, int]:
        """Entries delivered and not yet acknowledged, per consumer."""
        if not await self.redis.exists(self.name):
            return {}
        consumers: list[dict[str, Any]] = await self.redis.xinfo_consumers(self.name, "workers")
        return {
            (c["name"].decode() if isinstance(c["name"], bytes) else c["name"]): int(c["pending"])
            for c in consumers
        }

    async def drained(self) -> bool:
        return await self.length() == 0 and not any((await self.pending()).values())

    async def reconnect(self) -> None:
        """Drops the pooled connections (after the Redis server was restarted)."""
        await self.redis.connection_pool.disconnect()

    async def remove(self) -> None:
        """Deletes every key of the prefix (the idempotency keys would live for days)."""
        async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            await self.redis.delete(key)


@asynccontextmanager
async def stream_of(
    env: dict[str, str], url: str = REDIS_URL, *, shared: bool = True
) -> AsyncIterator[Stream]:
    """The stream of the processes started with `env`. On a `shared` Redis every key of the
    prefix is removed afterwards (a test's own Redis goes away with its directory)."""
    redis = Redis.from_url(url)
    try:
        await redis.ping()
    except Exception as exc:
        pytest.fail(f"Redis is required at {url}: {exc}")
    stream = Stream(redis, env["WORKPULSE_REDIS_PREFIX"])
    try:
        yield stream
    finally:
        if shared:
            await stream.remove()
        await redis.aclose()


# --- Processes ---------------------------------------------------------------------------------


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A throwaway PostgreSQL database, dropped afterwards."""
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def migrate(url: str, cwd: Path) -> None:
    """`workpulse migrate` (an API process may be starting meanwhile; workers start after it)."""
    env = environment(WORKPULSE_DATABASE_URL=url, WORKPULSE_JWT_SECRET=TEST_SECRET)
    finished = await run("migrate", cwd=cwd, env=env)
    assert finished.returncode == 0, finished.stderr


def _worker_started(entry: dict[str, Any]) -> bool:
    return entry.get("event") == "worker started"


async def start_api(stack: AsyncExitStack, cwd: Path, env: dict[str, str]) -> Running:
    port = free_port()
    return await stack.enter_async_context(
        started("api", cwd=cwd, env={**env, "WORKPULSE_PORT": str(port)}, port=port)
    )


async def start_worker(stack: AsyncExitStack, cwd: Path, env: dict[str, str]) -> Running:
    return await stack.enter_async_context(started("worker", cwd=cwd, env=env))


async def ready(apis: Sequence[Running] = (), workers: Sequence[Running] = ()) -> None:
    """Waits until every API answers /health with 200 and every worker has joined."""
    healths = await asyncio.gather(*(api.wait_until_answering() for api in apis))
    for api, health in zip(apis, healths, strict=True):
        assert health.status_code == 200, f"{health.text}\n{api.output()}"
    await asyncio.gather(*(worker.wait_for_log(_worker_started) for worker in workers))


def no_errors(*processes: Running) -> None:
    """No process logged an error or answered a 500."""
    for process in processes:
        bad = [e for e in process.logs() if e.get("level") == "error" or e.get("status") == 500]
        assert not bad, process.output()


# --- The test ----------------------------------------------------------------------------------


async def test_two_apis_and_two_workers_store_every_ping_once_and_derive_exactly_the_merge(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261123)
    now = datetime.now(UTC)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database())
        env = environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            WORKPULSE_REDIS_URL=REDIS_URL,
        )
        stream = await stack.enter_async_context(stream_of(env))
        apis = [await start_api(stack, tmp_path, env) for _ in range(2)]
        await migrate(url, tmp_path)  # while the APIs start
        workers = [await start_worker(stack, tmp_path, env) for _ in range(2)]
        await ready(apis, workers)
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=a.base_url, timeout=30))
            for a in apis
        ]

        accounts = await register_all(clients[0], 6)
        items = [i for n in range(6) for i in plan_pings(rng, n, 500, now)]
        items += [i for n in range(6) for i in invalid_items(n, now)]
        batches = make_batches(rng, items, apis=2)
        sent = await send_all(clients, accounts, batches)

        pings = check_results(sent)
        assert len(pings) == 3000
        assert sum(s.status == "duplicate" for s in sent) > 200

        async def settled() -> bool:
            return await stream.drained() and sum(
                (await stored_pings(url, accounts))[0].values()
            ) >= len(pings)

        await eventually(settled, "the workers stored every accepted ping and emptied the stream")
        await check_stored_exactly_once(url, accounts, pings)
        await check_intervals(clients[1], accounts, pings, now)
        assert await stream.length() == 0, "processed entries are deleted"
        assert await stream.dead_letters() == 0
        consumers = await stream.pending()
        assert len(consumers) == 2, consumers
        for process in [*apis, *workers]:
            assert await process.stop() == 0, process.output()
        no_errors(*apis, *workers)
