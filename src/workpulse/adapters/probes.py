"""Health probes for the database and Redis."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine


class DatabaseProbe:
    """Concurrent checks share one `SELECT 1`: a burst of health checks takes one pooled
    connection, not the whole pool (where they would queue, time out and report "down")."""

    name = "database"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._running: asyncio.Future[None] | None = None

    async def check(self) -> None:
        if self._running is None:
            self._running = asyncio.ensure_future(self._select_one())
            self._running.add_done_callback(self._finished)
        await asyncio.shield(self._running)

    def _finished(self, _: asyncio.Future[None]) -> None:
        self._running = None

    async def _select_one(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))


class RedisProbe:
    name = "redis"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def check(self) -> None:
        await self._redis.ping()
