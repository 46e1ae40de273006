"""Ping ingestion through faults, with real processes on PostgreSQL and Redis: a worker killed
with entries in hand, Redis stopped and started again from its append-only file, PostgreSQL
unreachable from the workers for a few seconds. Every ping the API answered `accepted` is
stored exactly once, and the intervals are exactly the domain's merge of the valid set."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_ADMIN_URL, REDIS_URL, TEST_SECRET
from tests.e2e.process import Running, environment, free_port, redis_server
from tests.e2e.test_ingest_scaleout import (
    Account,
    Batch,
    check_intervals,
    check_results,
    check_stored_exactly_once,
    eventually,
    make_batches,
    migrate,
    no_errors,
    plan_pings,
    post,
    postgres_database,
    ready,
    register_all,
    send_all,
    start_api,
    start_worker,
    stored_pings,
    stream_of,
)


def _phases(batches: list[Batch], *shares: float) -> list[list[Batch]]:
    """The batches cut into consecutive phases of the given shares (the rest last)."""
    phases, offset = [], 0
    for share in shares:
        size = round(len(batches) * share)
        phases.append(batches[offset : offset + size])
        offset += size
    return [*phases, batches[offset:]]


async def _stored(url: str, accounts: Sequence[Account]) -> int:
    found, _ = await stored_pings(url, accounts)
    return sum(found.values())


def _consumer_of(pending: dict[str, int], worker: Running) -> str | None:
    """The consumer-group name of a worker process (it carries the process id)."""
    names = [name for name in pending if f"-{worker.proc.pid}-" in name]
    return names[0] if names else None


async def test_a_worker_killed_with_entries_in_hand_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random(99)
    now = datetime.now(UTC)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database())
        env = environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            WORKPULSE_REDIS_URL=REDIS_URL,
            # The survivor claims a dead consumer's entries after 1 s; small reads spread the
            # entries over both workers.
            WORKPULSE_INGEST_CLAIM_IDLE_SECONDS="1",
            WORKPULSE_INGEST_BATCH_ENTRIES="4",
        )
        stream = await stack.enter_async_context(stream_of(env))
        api = await start_api(stack, tmp_path, env)
        await migrate(url, tmp_path)  # while the API starts
        workers = [await start_worker(stack, tmp_path, env) for _ in range(2)]
        await ready([api], workers)
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=api.base_url, timeout=30)
        )
        accounts = await register_all(client, 3)
        items = [i for n in range(3) for i in plan_pings(rng, n, 1000, now)]
        batches = make_batches(rng, items, apis=1, sizes=(50, 150, 300))
        before, burst, after = _phases(batches, 0.25, 0.4)

        sent = await send_all([client], accounts, before)
        sending = asyncio.create_task(send_all([client], accounts, burst, concurrency=4))
        victim, held = await _one_holding_entries(stream.pending, workers)
        victim.proc.send_signal(signal.SIGKILL)
        assert await victim.exit_status() == -signal.SIGKILL
        survivor = next(w for w in workers if w is not victim)
        name = _consumer_of(await stream.pending(), victim)
        assert name is not None
        left = (await stream.pending())[name]
        assert left > 0, f"the victim held {held} entries and acknowledged them before dying"
        sent += await sending
        sent += await send_all([client], accounts, after)

        pings = check_results(sent)
        assert len(pings) == 3000

        async def settled() -> bool:
            return await stream.drained() and await _stored(url, accounts) >= len(pings)

        await eventually(settled, "the survivor claimed the dead worker's entries and drained")
        assert (await stream.pending())[name] == 0, "the dead consumer's entries were claimed"
        await check_stored_exactly_once(url, accounts, pings)
        await check_intervals(client, accounts, pings, now)
        assert await stream.dead_letters() == 0
        for process in (api, survivor):
            assert await process.stop() == 0, process.output()
        no_errors(api, survivor)


async def _one_holding_entries(
    pending: Callable[[], Awaitable[dict[str, int]]],
    workers: Sequence[Running],
    within: float = 20.0,
) -> tuple[Running, int]:
    """The first worker seen holding delivered, unacknowledged entries, and how many."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        seen = await pending()
        for worker in workers:
            name = _consumer_of(seen, worker)
            if name is not None and seen[name] > 0:
                return worker, seen[name]
        await asyncio.sleep(0.005)
    pytest.fail(f"no worker held entries within {within} s")


async def test_redis_restarted_from_its_append_only_file_keeps_every_accepted_ping(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database())
        first = await stack.enter_async_context(redis_server(data, port))
        env = environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            WORKPULSE_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        )
        stream = await stack.enter_async_context(
            stream_of(env, env["WORKPULSE_REDIS_URL"], shared=False)
        )
        api = await start_api(stack, tmp_path, env)
        await migrate(url, tmp_path)  # while the API starts
        worker = await start_worker(stack, tmp_path, env)
        await ready([api], [worker])
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=api.base_url, timeout=30)
        )
        accounts = await register_all(client, 2)
        items = [i for n in range(2) for i in plan_pings(rng, n, 600, now)]
        batches = make_batches(rng, items, apis=1, sizes=(5, 20, 60))
        early, waiting, refused, late = _phases(batches, 0.3, 0.3, 0.1)

        sent = await send_all([client], accounts, early)
        assert await worker.stop() == 0, worker.output()
        sent += await send_all([client], accounts, waiting)
        queued = await stream.length()
        assert queued > 0, "with no worker running, the entries wait in the stream"
        assert await first.stop() == 0, first.output()

        # Redis is down: nothing can be accepted, and the API must say so, never 202.
        down: list[httpx.Response] = []
        for batch in refused:
            down.append(await post(client, accounts[batch.account], batch))
        health = await client.get("/health")
        assert health.status_code == 503, health.text
        assert health.json()["error"]["redis"]["status"] == "down", health.text
        for response in down:
            assert response.status_code == 503, f"{response.text}\n{api.output()[-3000:]}"
            assert response.json()["error"] == "Unavailable", response.text
            assert int(response.headers["Retry-After"]) > 0

        await stack.enter_async_context(redis_server(data, port))
        await stream.reconnect()
        assert await stream.length() == queued, "the append-only file kept every entry"
        # The API's pooled Redis connections that the restart closed fail once each, with a
        # 503 (`stale`); the client sends those batches again.
        stale: list[httpx.Response] = []
        # The idempotency keys survived too: resending the early pings changes nothing.
        again = await send_all([client], accounts, early, refused=stale)
        assert {s.status for s in again} == {"duplicate"}
        # The client retries what was refused while Redis was down, then goes on.
        sent += await send_all([client], accounts, refused, refused=stale)
        sent += await send_all([client], accounts, late, refused=stale)
        assert all(r.json()["error"] == "Unavailable" for r in stale)
        # At most one per pooled connection: 8 requests in flight, /health, the metrics.
        assert len(stale) <= 10, len(stale)
        pings = check_results(sent)
        assert len(pings) == 1200

        restarted = await start_worker(stack, tmp_path, env)
        await ready(workers=[restarted])

        async def settled() -> bool:
            return await stream.drained() and await _stored(url, accounts) >= len(pings)

        await eventually(settled, "the restarted worker drained the stream")
        await check_stored_exactly_once(url, accounts, pings)
        await check_intervals(client, accounts, pings, now)
        assert await stream.dead_letters() == 0
        for process in (api, restarted):
            assert await process.stop() == 0, process.output()
        # The API's invalidation listener survived the outage and stopped cleanly.
        no_errors(api, restarted)


class Proxy:
    """A TCP proxy to PostgreSQL on a port of its own, which the test can cut (every connection
    closed, new ones refused) and restore."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._open |= {writer, upstream}
        pipes = [
            asyncio.create_task(self._pipe(reader, upstream)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)
        self._open -= {writer, upstream}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()  # one side gone: so is the other


async def test_workers_cut_off_from_postgresql_for_a_while_store_every_ping_once_after(
    tmp_path: Path,
) -> None:
    rng = random.Random(5432)
    now = datetime.now(UTC)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database())
        target = sa.make_url(POSTGRES_ADMIN_URL)
        proxy = Proxy(target.host or "127.0.0.1", target.port or 5432)
        await proxy.start()
        stack.push_async_callback(proxy.close)
        proxied = sa.make_url(url).set(port=proxy.port).render_as_string(hide_password=False)
        # The API reaches PostgreSQL directly; only the workers go through the proxy.
        env = environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            WORKPULSE_REDIS_URL=REDIS_URL,
            WORKPULSE_INGEST_CLAIM_IDLE_SECONDS="1",
        )
        worker_env = {**env, "WORKPULSE_DATABASE_URL": proxied}
        stream = await stack.enter_async_context(stream_of(env))
        api = await start_api(stack, tmp_path, env)
        await migrate(url, tmp_path)  # while the API starts
        workers = [await start_worker(stack, tmp_path, worker_env) for _ in range(2)]
        await ready([api], workers)
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=api.base_url, timeout=30)
        )
        accounts = await register_all(client, 3)
        items = [i for n in range(3) for i in plan_pings(rng, n, 600, now)]
        before, during, after = _phases(make_batches(rng, items, apis=1), 0.3, 0.4)

        sent = await send_all([client], accounts, before)
        await eventually(stream.drained, "the workers took the first pings")
        assert proxy.connections > 0, "the workers reach PostgreSQL through the proxy"
        await proxy.cut()
        stored_before = await _stored(url, accounts)
        sent += await send_all([client], accounts, during)
        await asyncio.sleep(3)
        assert await stream.length() > 0, "nothing can be processed while PostgreSQL is away"
        assert await _stored(url, accounts) == stored_before
        await proxy.start()
        sent += await send_all([client], accounts, after)
        pings = check_results(sent)
        assert len(pings) == 1800

        async def settled() -> bool:
            return await stream.drained() and await _stored(url, accounts) >= len(pings)

        await eventually(settled, "the workers stored everything once PostgreSQL was back")
        await check_stored_exactly_once(url, accounts, pings)
        await check_intervals(client, accounts, pings, now)
        assert await stream.dead_letters() == 0, "an outage is waited out, never dead-lettered"
        for process in (api, *workers):
            assert await process.stop() == 0, process.output()
        no_errors(api, *workers)
        assert any(
            e.get("event") == "database unavailable, retrying"
            for worker in workers
            for e in worker.logs()
        ), "the workers noticed the outage"
