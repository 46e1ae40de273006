"""Failed-login counters per key over a fixed window: in process, or shared through Redis."""

from __future__ import annotations

import time
from collections.abc import Sequence

from cachetools import TTLCache
from redis.asyncio import Redis


class LocalLoginThrottle:
    def __init__(self, *, limits: dict[str, int], window_seconds: int) -> None:
        self._limits = limits  # key prefix ("account", "address") -> failures allowed per window
        self._window = window_seconds
        self._counts: TTLCache[str, tuple[int, float]] = TTLCache(
            maxsize=100_000, ttl=window_seconds
        )

    def _limit(self, key: str) -> int:
        return self._limits.get(key.partition(":")[0], 10)

    async def retry_after(self, keys: Sequence[str]) -> int | None:
        now = time.monotonic()
        waits = [
            int(started + self._window - now) + 1
            for key in keys
            if (entry := self._counts.get(key)) is not None
            for count, started in [entry]
            if count >= self._limit(key)
        ]
        return max(waits) if waits else None

    async def record_failure(self, keys: Sequence[str]) -> None:
        now = time.monotonic()
        for key in keys:
            count, started = self._counts.get(key, (0, now))
            self._counts[key] = (count + 1, started)

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)


class RedisLoginThrottle:
    def __init__(
        self, redis: Redis, *, prefix: str, limits: dict[str, int], window_seconds: int
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._limits = limits
        self._window = window_seconds

    def _limit(self, key: str) -> int:
        return self._limits.get(key.partition(":")[0], 10)

    async def retry_after(self, keys: Sequence[str]) -> int | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(self._prefix + key)
                pipe.ttl(self._prefix + key)
            replies = await pipe.execute()
        waits = [
            max(int(ttl), 1)
            for key, count, ttl in zip(keys, replies[::2], replies[1::2], strict=True)
            if count is not None and int(count) >= self._limit(key)
        ]
        return max(waits) if waits else None

    async def record_failure(self, keys: Sequence[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(self._prefix + key)
                pipe.expire(self._prefix + key, self._window, nx=True)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
