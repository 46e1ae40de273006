"""CPU per single-ping submission to the Redis queue, in process: `RedisPingQueue.submit` as it
is (one script call per request) against a prototype that lets the requests waiting at the same
moment share one pipelined round trip (the database queue's group commit, for Redis). Process
CPU time, so other load on the machine moves the figures less than it moves req/s.

    python3 -m uv run python bench/ingest/submit_cost.py [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import uvloop
from redis.asyncio import Redis

from workpulse.adapters.ping_stream import Keys, RedisPingQueue, encode
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.pings import Ping
from workpulse.services.ports import OwnedPing

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEDUPE = timedelta(days=7)


class GroupedQueue(RedisPingQueue):
    """The prototype: submissions that arrive while a round trip is in flight go together in
    the next one, each still its own script call with its own answer."""

    def __init__(self, redis: Redis, keys: Keys, *, backlog_bound: int) -> None:
        super().__init__(redis, keys, backlog_bound=backlog_bound)
        self._waiting: deque[tuple[list[str], list[Any], asyncio.Future[Any]]] = deque()
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, pings: Sequence[OwnedPing], *, dedupe_for: timedelta) -> Sequence[bool]:
        keys = [self._keys.stream, *(self._keys.seen(p) for p in pings)]
        args: list[Any] = [self._bound, int(dedupe_for.total_seconds()), *map(encode, pings)]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        reply = await future
        return [bool(flag) for flag in reply]

    async def _send(self) -> None:
        while self._waiting:
            group = [self._waiting.popleft() for _ in range(min(len(self._waiting), 256))]
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _ in group:
                    await self._script(keys=keys, args=args, client=pipe)
                replies = await pipe.execute(raise_on_error=False)
            for (_, _, future), reply in zip(group, replies, strict=True):
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)


def ping(n: int, org: OrganizationId, user: UserId) -> OwnedPing:
    at = datetime(2026, 11, 20, tzinfo=UTC) + timedelta(seconds=5 * n)
    return OwnedPing(
        org,
        user,
        Ping(
            device_id="laptop",
            app_name="Editor",
            url=None,
            domain=None,
            title=None,
            idle=False,
            start=at,
            end=None,
            event_id=f"bench-{n}",
        ),
    )


async def measure(queue: RedisPingQueue, requests: int, concurrency: int) -> tuple[float, float]:
    org, user = OrganizationId(uuid.uuid4()), UserId(uuid.uuid4())
    pings = [ping(n, org, user) for n in range(requests)]
    gate = asyncio.Semaphore(concurrency)

    async def one(p: OwnedPing) -> None:
        async with gate:
            flags = await queue.submit([p], dedupe_for=DEDUPE)
            assert list(flags) == [True]

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(p) for p in pings))
    return (time.process_time() - cpu) / requests * 1e6, requests / (time.perf_counter() - wall)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    redis = Redis.from_url(REDIS_URL)
    prefix = f"bench-submit-{uuid.uuid4().hex[:8]}"
    out = sys.stdout
    out.write(f"# submit_cost, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}\n")
    try:
        for round_ in range(args.rounds):
            for name, kind in (("one call each", RedisPingQueue), ("grouped", GroupedQueue)):
                keys = Keys(f"{prefix}-{round_}-{kind.__name__}")
                queue = kind(redis, keys, backlog_bound=10_000_000)
                cpu_us, rate = await measure(queue, args.requests, args.concurrency)
                out.write(f"  {name:14} {cpu_us:6.0f} µs CPU/submit  {rate:7.0f} submits/s\n")
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=5000):
            await redis.unlink(key)
        await redis.aclose()


if __name__ == "__main__":
    uvloop.run(main())
