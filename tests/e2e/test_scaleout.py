"""The production shape on one machine, without containers: a real PgBouncer in transaction
pooling in front of PostgreSQL, Redis, two `workpulse api`, two `workpulse worker` and two
`workpulse scheduler` processes, configured as compose.yaml configures them
(`WORKPULSE_DATABASE_POOLER=pgbouncer`, `workpulse migrate` straight to PostgreSQL first).

Under load (shuffled ping batches with repeats and invalid items, and concurrent session
activity with repeated events, through both APIs), one worker and one API are SIGKILLed and
restarted, then the other API and worker get a rolling restart (SIGTERM, which must finish
in-flight work and exit 0). A client whose request died with its process sends it again to the
other API, as an agent does. Afterwards:

- every accepted ping is stored exactly once, and each user's intervals are exactly what the
  domain's merge rule makes of the valid pings;
- each session's counters are exactly the sum of its distinct events and equal its ledger
  (`activity_logs`);
- a Socket.IO client on one API process receives the events of changes made through the other;
- with both schedulers competing for runs every few seconds, each job run happened once.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.api import Member, add_member, register_owner
from tests.conftest import REDIS_URL, TEST_SECRET
from tests.e2e.process import Running, environment, free_port, pgbouncer, started
from tests.e2e.test_ingest_scaleout import (
    Account,
    Batch,
    Key,
    Sent,
    check_intervals,
    check_stored_exactly_once,
    database,
    eventually,
    invalid_items,
    make_batches,
    migrate,
    no_errors,
    plan_pings,
    postgres_database,
    read_results,
    register_all,
    stored_pings,
    stream_of,
)
from tests.e2e.test_realtime import listening, same_session, session_change
from workpulse.domain.pings import Ping

PING_USERS = 4
PINGS_PER_USER = 300
SESSION_USERS = 3
EVENTS_PER_SESSION = 80
IN_FLIGHT = 8  # requests at a time, over both APIs
SERVER_CONNECTIONS = 8  # PgBouncer's pool: far fewer than the processes' client connections
RETRY_PAUSE = 0.05  # seconds between a failed send and its retry on the other API
MAX_SENDS = 400  # per request: reaching it means an API never came back, not slowness


# --- The processes -----------------------------------------------------------------------------


def _started_log(role: str) -> Callable[[dict[str, Any]], bool]:
    return lambda entry: entry.get("event") == "started" and entry.get("role") == role


@dataclass
class Cluster:
    """The running processes, restartable one at a time. `urls` are the APIs clients may use:
    a slot keeps its old (dead) address until its replacement answers, so a client meanwhile
    fails over to the other slot."""

    stack: AsyncExitStack
    cwd: Path
    env: dict[str, str]
    apis: list[Running] = field(default_factory=list)
    workers: list[Running] = field(default_factory=list)
    schedulers: list[Running] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    retired: list[Running] = field(default_factory=list)

    async def api(self) -> Running:
        port = free_port()
        env = {**self.env, "WORKPULSE_PORT": str(port)}
        process = await self.stack.enter_async_context(
            started("api", cwd=self.cwd, env=env, port=port)
        )
        health = await process.wait_until_answering()
        assert health.status_code == 200, f"{health.text}\n{process.output()}"
        return process

    async def background(self, role: str) -> Running:
        process = await self.stack.enter_async_context(started(role, cwd=self.cwd, env=self.env))
        await process.wait_for_log(_started_log(role))
        return process

    async def start(self, apis: int, workers: int, schedulers: int) -> None:
        self.apis = list(await asyncio.gather(*(self.api() for _ in range(apis))))
        self.urls = [api.base_url for api in self.apis]
        self.workers = list(
            await asyncio.gather(*(self.background("worker") for _ in range(workers)))
        )
        self.schedulers = list(
            await asyncio.gather(*(self.background("scheduler") for _ in range(schedulers)))
        )

    async def kill_and_restart(self, *, api: int, worker: int) -> None:
        """SIGKILL: no graceful anything; requests in flight die with the process."""
        for process in (self.apis[api], self.workers[worker]):
            process.proc.kill()
            assert await process.exit_status() == -9
            self.retired.append(process)
        self.workers[worker], self.apis[api] = await asyncio.gather(
            self.background("worker"), self.api()
        )
        self.urls[api] = self.apis[api].base_url

    async def roll(self, *, api: int, worker: int) -> None:
        """A rolling restart: SIGTERM, the process finishes what it holds and exits 0, then
        its replacement starts (the other API and worker carry the load meanwhile)."""
        for process in (self.apis[api], self.workers[worker]):
            assert await process.stop() == 0, process.output()
            self.retired.append(process)
        self.workers[worker], self.apis[api] = await asyncio.gather(
            self.background("worker"), self.api()
        )
        self.urls[api] = self.apis[api].base_url

    @property
    def running(self) -> list[Running]:
        return [*self.apis, *self.workers, *self.schedulers]

    def errors(self) -> str:
        """Every process's error log lines, for a failure message."""
        lines = [
            str(entry)
            for process in [*self.running, *self.retired]
            for entry in process.logs()
            if entry.get("level") == "error" or entry.get("status") == 500
        ]
        return "\n".join(lines) or "(no error logged)"


class Clients:
    """One HTTP client per API address, made when first needed."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def __call__(self, url: str) -> httpx.AsyncClient:
        if url not in self._clients:
            self._clients[url] = await self._stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=60)
            )
        return self._clients[url]


@dataclass
class Sender:
    """Sends requests over the cluster's APIs, `IN_FLIGHT` at a time. A request whose process
    died under it (no answer) is sent again, to the other API, until one answers."""

    cluster: Cluster
    clients: Clients
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))
    answered: int = 0
    lost: int = 0  # sends that got no answer (their process died or was stopping)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(
        self, slot: int, request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
    ) -> tuple[httpx.Response, int]:
        """The answer, and how many sends before it got none."""
        unanswered = 0
        for attempt in range(MAX_SENDS):
            url = self.cluster.urls[(slot + attempt) % len(self.cluster.urls)]
            try:
                async with self.gate:
                    response = await request(await self.clients(url))
            except httpx.TransportError:
                unanswered += 1
                self.lost += 1
                await asyncio.sleep(RETRY_PAUSE)
                continue
            if response.status_code >= 500 and response.status_code != 503:
                pytest.fail(f"{response.status_code} {response.text}\n{self.cluster.errors()}")
            self.answered += 1
            self.progress.set()
            return response, unanswered
        pytest.fail(f"no API answered {MAX_SENDS} sends")

    async def until_answered(self, count: int) -> None:
        while self.answered < count:
            self.progress.clear()
            await self.progress.wait()


# --- Pings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """The answer to one batch, and whether an earlier send of it went unanswered."""

    sent: list[Sent]
    unanswered: bool


async def deliver(sender: Sender, accounts: Sequence[Account], batch: Batch) -> Delivery:
    account = accounts[batch.account]

    async def request(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/usage/track", json=batch.payload(), headers=account.headers(batch.device)
        )

    response, unanswered = await sender.send(batch.api, request)
    return Delivery(read_results(batch, response), unanswered > 0)


def check_ping_results(deliveries: Sequence[Delivery]) -> dict[Key, Ping]:
    """Every refused item refused with its reason; every valid ping accepted at most once over
    all its copies, and never accepted only if some copy's request died unanswered (the dead
    process may have queued it: its repeat is then a duplicate). Returns the valid pings."""
    statuses: dict[Key, list[str]] = defaultdict(list)
    unanswered: set[Key] = set()
    pings: dict[Key, Ping] = {}
    for delivery in deliveries:
        for s in delivery.sent:
            if s.item.ping is None:
                assert (s.status, s.reason) == ("rejected", s.item.reason), (s, s.item.body)
                continue
            assert s.status in ("accepted", "duplicate"), (s, s.item.body)
            assert s.event_id == s.item.ping.event_id, (s, s.item.body)
            statuses[s.item.key].append(s.status)
            pings[s.item.key] = s.item.ping
            if delivery.unanswered:
                unanswered.add(s.item.key)
    twice = [k for k, v in statuses.items() if v.count("accepted") > 1]
    assert not twice, f"{len(twice)} pings accepted twice, e.g. {twice[0]}"
    never = [k for k, v in statuses.items() if "accepted" not in v and k not in unanswered]
    assert not never, f"{len(never)} pings never accepted, e.g. {never[0]}"
    return pings


# --- Sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One activity event of a session, as sent (possibly more than once)."""

    member: int
    event_id: str
    kind: str  # "active" | "idle"
    seconds: int


def plan_events(rng: random.Random, members: int) -> list[tuple[int, list[Event]]]:
    """Requests (the session's member, its events): mostly one event through
    `/sessions/{id}/activity`, some batches of 2-6 through `/activity/batch`; about one event in
    ten is sent again in a later request."""
    requests: list[tuple[int, list[Event]]] = []
    for member in range(members):
        events = [
            Event(
                member,
                f"evt-{uuid.UUID(int=rng.getrandbits(128))}",
                "idle" if rng.random() < 0.15 else "active",
                rng.randint(5, 120),
            )
            for _ in range(EVENTS_PER_SESSION)
        ]
        offset = 0
        while offset < len(events):
            size = 1 if rng.random() < 0.7 else rng.randint(2, 6)
            requests.append((member, events[offset : offset + size]))
            offset += size
        for repeat in rng.sample(events, len(events) // 10):
            requests.append((member, [repeat]))
    rng.shuffle(requests)
    return requests


async def post_events(
    sender: Sender,
    members: Sequence[Member],
    sessions: Sequence[str],
    slot: int,
    member: int,
    events: Sequence[Event],
) -> None:
    headers = members[member].headers
    bodies = [
        {"activityType": e.kind, "durationSeconds": e.seconds, "event_id": e.event_id}
        for e in events
    ]

    async def request(client: httpx.AsyncClient) -> httpx.Response:
        if len(bodies) == 1:
            return await client.post(
                f"/sessions/{sessions[member]}/activity", json=bodies[0], headers=headers
            )
        return await client.post(
            "/activity/batch",
            json={"sessionId": sessions[member], "events": bodies},
            headers=headers,
        )

    response, _ = await sender.send(slot, request)
    assert response.status_code == 201, response.text
    if len(bodies) > 1:
        results = response.json()["results"]
        assert all(r["status"] in ("accepted", "duplicate") for r in results), results


async def check_counters_and_ledgers(
    url: str,
    client: httpx.AsyncClient,
    members: Sequence[Member],
    sessions: Sequence[str],
    requests: Sequence[tuple[int, list[Event]]],
) -> None:
    """Each session's counters are the sum of its distinct events, over HTTP and in the table,
    and equal the sums of its ledger rows (`activity_logs`)."""
    expected: dict[str, Counter[str]] = {s: Counter() for s in sessions}
    distinct = {e.event_id: e for _, events in requests for e in events}
    for e in distinct.values():
        expected[sessions[e.member]][e.kind] += e.seconds
    for member, session in zip(members, sessions, strict=True):
        answer = await client.get(f"/sessions/{session}", headers=member.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["total_active_seconds"], body["total_idle_seconds"]) == (
            expected[session]["active"],
            expected[session]["idle"],
        )
    async with database(url) as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT s.id, s.total_active_seconds, s.total_idle_seconds,"
                " COALESCE(SUM(a.duration_seconds) FILTER (WHERE a.activity_type = 'active'), 0),"
                " COALESCE(SUM(a.duration_seconds) FILTER (WHERE a.activity_type = 'idle'), 0),"
                " COUNT(a.id), COUNT(DISTINCT a.event_id)"
                " FROM work_sessions s LEFT JOIN activity_logs a ON a.session_id = s.id"
                " GROUP BY s.id"
            )
        )
        ledgers = {str(r[0]): tuple(r[1:]) for r in rows}
        await conn.rollback()
    for session in sessions:
        active, idle, ledger_active, ledger_idle, entries, distinct_ids = ledgers[session]
        assert (active, idle) == (ledger_active, ledger_idle), session
        assert (active, idle) == (expected[session]["active"], expected[session]["idle"])
        assert (
            entries
            == distinct_ids
            == sum(1 for e in distinct.values() if sessions[e.member] == session)
        )


# --- Real time and scheduled jobs ---------------------------------------------------------------


async def check_realtime_across_processes(cluster: Cluster, owner: Member, member: Member) -> None:
    """A Socket.IO client on one API process receives the SESSION_UPDATE of a change made
    through the other, with the session as the HTTP answer has it (both APIs are replacements
    by now: restarted processes join the fan-out)."""
    async with (
        listening(cluster.urls[0], owner) as watcher,
        httpx.AsyncClient(base_url=cluster.urls[1], timeout=30) as other,
    ):
        answer = await other.post(
            "/sessions/start",
            json={"start_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
            headers=member.headers,
        )
        assert answer.status_code == 201, answer.text
        event = await watcher.wait_for("SESSION_UPDATE", session_change(member, "start"))
        assert same_session(event["session"], answer.json())


async def check_scheduled_jobs(url: str, cluster: Cluster) -> None:
    """With two schedulers through PgBouncer (jobs every few seconds here), each job run
    happened once: every run the schedulers' logs report finished is one `job_runs` row, no
    (job, scheduled time) was started by both processes, and every run succeeded. Stops the
    schedulers first (SIGTERM, exit 0), so that logs and table are read at rest."""
    for scheduler in cluster.schedulers:
        assert await scheduler.stop() == 0, scheduler.output()
    finished: Counter[tuple[str, str]] = Counter()
    started_by: dict[tuple[str, str], set[int]] = defaultdict(set)
    for number, scheduler in enumerate(cluster.schedulers):
        for entry in scheduler.logs():
            if entry.get("event") in ("job started", "job finished"):
                run = (entry["job"], _instant(entry["scheduled_for"]))
                if entry["event"] == "job started":
                    started_by[run].add(number)
                else:
                    assert entry["outcome"] == "succeeded", entry
                    finished[run] += 1
    both = [run for run, who in started_by.items() if len(who) > 1]
    assert not both, f"runs started by both schedulers: {both[:3]}"
    assert finished, "no job ran during the test"
    assert max(finished.values()) == 1, finished.most_common(3)
    assert {job for job, _ in finished} >= {"idle-alerts", "overtime-alerts"}
    async with database(url) as conn:
        rows = await conn.execute(
            sa.text("SELECT job, scheduled_for, outcome FROM job_runs WHERE outcome <> 'running'")
        )
        recorded = {(job, when.astimezone(UTC).isoformat()): outcome for job, when, outcome in rows}
        await conn.rollback()
    assert recorded == dict.fromkeys(finished, "succeeded")


def _instant(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


# --- The test ----------------------------------------------------------------------------------


async def test_the_production_shape_through_pgbouncer_loses_and_doubles_nothing_through_kills(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261124)
    now = datetime.now(UTC)
    async with AsyncExitStack() as stack:
        direct = await stack.enter_async_context(postgres_database())
        bouncer = free_port()
        await stack.enter_async_context(pgbouncer(tmp_path, bouncer, pool_size=SERVER_CONNECTIONS))
        through_bouncer = sa.make_url(direct).set(port=bouncer).render_as_string(False)
        env = environment(
            WORKPULSE_DATABASE_URL=through_bouncer,
            WORKPULSE_DATABASE_POOLER="pgbouncer",
            WORKPULSE_REDIS_URL=REDIS_URL,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            # A killed worker's entries are claimed by another after this long.
            WORKPULSE_INGEST_CLAIM_IDLE_SECONDS="2",
            # Jobs every few seconds, so that both schedulers compete for many runs.
            WORKPULSE_SCHEDULER_IDLE_SECONDS="2",
            WORKPULSE_SCHEDULER_OVERTIME_SECONDS="3",
            WORKPULSE_SCHEDULER_SUMMARIES_SECONDS="5",
        )
        stream = await stack.enter_async_context(stream_of(env))
        await migrate(direct, tmp_path)  # as compose's `migrate`: straight to PostgreSQL
        cluster = Cluster(stack, tmp_path, env)
        await cluster.start(apis=2, workers=2, schedulers=2)
        clients = Clients(stack)
        first = await clients(cluster.urls[0])

        # Users: agents with two devices each, and an organization whose members track time.
        accounts = await register_all(first, PING_USERS)
        owner = await register_owner(first)
        # Sessions start 20 h back (room for the events' seconds); the idle job running every
        # few seconds must not close them as silent for longer than the timeout meanwhile.
        patched = await first.patch(
            "/organizations/current",
            json={"settings": {"session_timeout_minutes": 7 * 24 * 60}},
            headers=owner.headers,
        )
        assert patched.status_code == 200, patched.text
        members = [await add_member(first, owner, "employee") for _ in range(SESSION_USERS)]
        sessions = []
        for number, member in enumerate(members):
            answer = await (await clients(cluster.urls[number % 2])).post(
                "/sessions/start",
                json={"start_time": (now - timedelta(hours=20)).isoformat()},
                headers=member.headers,
            )
            assert answer.status_code == 201, answer.text
            sessions.append(answer.json()["id"])

        items = [i for n in range(PING_USERS) for i in plan_pings(rng, n, PINGS_PER_USER, now)]
        items += [i for n in range(PING_USERS) for i in invalid_items(n, now)]
        batches = make_batches(rng, items, apis=2, sizes=(1, 2, 5, 10, 20, 40))
        requests = plan_events(rng, SESSION_USERS)
        total = len(batches) + len(requests)

        sender = Sender(cluster, clients)
        deliveries: list[Delivery] = []

        async def pings() -> None:
            deliveries.extend(
                await asyncio.gather(*(deliver(sender, accounts, b) for b in batches))
            )

        async def activity() -> None:
            await asyncio.gather(
                *(
                    post_events(sender, members, sessions, n % 2, member, events)
                    for n, (member, events) in enumerate(requests)
                )
            )

        async def faults() -> None:
            await sender.until_answered(total // 4)
            await cluster.kill_and_restart(api=1, worker=0)
            await sender.until_answered(total // 2)
            await cluster.roll(api=0, worker=1)

        await asyncio.gather(pings(), activity(), faults())
        assert sender.answered == total
        assert sender.lost > 0, "the faults hit requests"

        valid = check_ping_results(deliveries)
        assert len(valid) == PING_USERS * PINGS_PER_USER

        async def settled() -> bool:
            stored, _ = await stored_pings(direct, accounts)
            return await stream.drained() and sum(stored.values()) >= len(valid)

        await eventually(settled, "the workers stored every accepted ping and emptied the stream")
        await check_stored_exactly_once(direct, accounts, valid)
        last = await clients(cluster.urls[1])
        await check_intervals(last, accounts, valid, now)
        assert await stream.dead_letters() == 0
        await check_counters_and_ledgers(direct, last, members, sessions, requests)

        newcomer = await add_member(last, owner, "employee")
        await check_realtime_across_processes(cluster, owner, newcomer)
        await check_scheduled_jobs(direct, cluster)

        survivors = [*cluster.apis, *cluster.workers]
        for process in survivors:
            assert await process.stop() == 0, process.output()
        no_errors(*cluster.running, *cluster.retired)
