"""Device-session state cached in process, invalidated across processes over Redis pub/sub.

A cached entry lives at most `ttl` seconds, so a lost invalidation message costs at most that
much staleness; in the common case (a message arrives within milliseconds) a revoked session's
access tokens stop working at once in every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from uuid import UUID

from cachetools import LRUCache
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from workpulse.domain.ids import DeviceSessionId, UserId
from workpulse.services.ports import SessionState

log = logging.getLogger(__name__)


class LocalSessionCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self._ttl = timedelta(seconds=ttl_seconds)
        self._entries: LRUCache[DeviceSessionId, tuple[SessionState, datetime]] = LRUCache(
            maxsize=max_entries
        )
        self._loading: dict[DeviceSessionId, asyncio.Future[SessionState]] = {}

    def get(self, session_id: DeviceSessionId, now: datetime) -> SessionState | None:
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        state, stored_at = entry
        if now - stored_at > self._ttl:
            self._entries.pop(session_id, None)
            return None
        return state

    def put(self, session_id: DeviceSessionId, state: SessionState, now: datetime) -> None:
        self._entries[session_id] = (state, now)

    async def get_or_load(
        self,
        session_id: DeviceSessionId,
        now: datetime,
        load: Callable[[], Awaitable[SessionState]],
    ) -> SessionState:
        state = self.get(session_id, now)
        if state is not None:
            return state
        pending = self._loading.get(session_id)
        if pending is None:

            async def load_and_put() -> SessionState:
                loaded = await load()
                self.put(session_id, loaded, now)
                return loaded

            # A task of its own: a waiter that is cancelled (client gone) cancels only its wait.
            pending = asyncio.ensure_future(load_and_put())
            self._loading[session_id] = pending
            pending.add_done_callback(lambda _: self._loading.pop(session_id, None))
        return await asyncio.shield(pending)

    async def forget_session(self, session_id: DeviceSessionId) -> None:
        self.drop_session(session_id)

    async def forget_user(self, user_id: UserId) -> None:
        self.drop_user(user_id)

    def drop_session(self, session_id: DeviceSessionId) -> None:
        self._entries.pop(session_id, None)

    def drop_user(self, user_id: UserId) -> None:
        stale = [sid for sid, (state, _) in self._entries.items() if state.user.id == user_id]
        for sid in stale:
            self._entries.pop(sid, None)


class RedisSessionCache(LocalSessionCache):
    """The local cache, plus a pub/sub channel that carries invalidations to other processes."""

    def __init__(
        self, redis: Redis, *, channel: str, ttl_seconds: float, max_entries: int = 50_000
    ) -> None:
        super().__init__(ttl_seconds=ttl_seconds, max_entries=max_entries)
        self._redis = redis
        self._channel = channel
        self._listener: asyncio.Task[None] | None = None

    async def forget_session(self, session_id: DeviceSessionId) -> None:
        self.drop_session(session_id)
        await self._redis.publish(self._channel, f"session:{session_id}")

    async def forget_user(self, user_id: UserId) -> None:
        self.drop_user(user_id)
        await self._redis.publish(self._channel, f"user:{user_id}")

    async def start(self) -> None:
        """Subscribe before serving, so no revocation published after start is missed; if Redis
        is down now, the listener keeps trying in the background."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        subscribed: PubSub | None = pubsub
        try:
            await pubsub.subscribe(self._channel)
        except Exception as exc:
            log.warning("auth invalidation channel unavailable at start: %s", exc)
            await _close(pubsub)
            subscribed = None
        self._listener = asyncio.create_task(
            self._listen(subscribed), name="session-cache-listener"
        )

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener

    async def _listen(self, pubsub: PubSub | None) -> None:
        while True:
            try:
                if pubsub is None:
                    pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self._channel)
                async for message in pubsub.listen():
                    self._apply(message.get("data"))
            except asyncio.CancelledError:
                await _close(pubsub)
                raise
            except Exception as exc:
                # While disconnected nothing is invalidated: forget everything so that the TTL
                # is not the only guard, then subscribe again.
                log.warning("auth invalidation channel lost: %s", exc)
                self._entries.clear()
                await _close(pubsub)
                pubsub = None
                await asyncio.sleep(1)

    def _apply(self, data: object) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        kind, _, value = text.partition(":")
        try:
            ident = UUID(value)
        except ValueError:
            return
        if kind == "session":
            self.drop_session(DeviceSessionId(ident))
        elif kind == "user":
            self.drop_user(UserId(ident))


async def _close(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
