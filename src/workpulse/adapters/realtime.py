"""Real-time plumbing below the Socket.IO server: the event relay from the notifier to Socket.IO
rooms, the Redis emitter that reaches every API process, and the watch on revocations.

`EventRelay` listens to the in-process notifier. Publishing only puts the event on a bounded
queue (a full queue drops the event and logs it); one task per process emits events in order.
So the use case that published, and the HTTP request behind it, never wait for Redis, for the
Socket.IO server or for any client. With Redis the relay emits through a write-only
`AsyncRedisManager` on the channel `<prefix>:socketio`, which the API processes' Socket.IO
servers listen to (so `worker` and `scheduler` processes reach sockets too); without Redis the
Socket.IO server of this process attaches its own `emit`.

`WatchedSessionCache` wraps the device-session cache: whatever invalidates it (logout, refresh
token reuse, deactivation, a role change) is also told to the real-time server, which then
checks the sockets concerned. Across processes it listens to the cache's own Redis channel
(`<prefix>:auth:invalidate`, messages "session:<id>" and "user:<id>", see session_cache.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import socketio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from workpulse.adapters.notifier import Event
from workpulse.domain.ids import DeviceSessionId, UserId
from workpulse.domain.presence import event_rooms
from workpulse.services.ports import SessionState, SessionStateCache

log = logging.getLogger(__name__)

# emit(event, payload, rooms)
Emit = Callable[[str, Mapping[str, Any], list[str]], Awaitable[None]]

QUEUE_BOUND = 10_000
DRAIN_SECONDS = 5.0


class EventRelay:
    def __init__(self, *, bound: int = QUEUE_BOUND) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(bound)
        self._emit: Emit | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def attach(self, emit: Emit) -> None:
        self._emit = emit

    async def __call__(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("real-time queue full: event dropped", extra={"event": event.name})

    async def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name="realtime-relay")

    async def stop(self) -> None:
        """Emits what is queued (for at most `DRAIN_SECONDS`), then stops."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    async def _pump(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                if self._emit is not None:
                    rooms = event_rooms(event.name, event.organization_id, event.user_id)
                    await self._emit(event.name, event.payload, list(rooms))
            except Exception:
                log.exception("real-time event not emitted", extra={"event": event.name})
            finally:
                self._queue.task_done()


class _RedisTrouble(logging.LoggerAdapter[logging.Logger]):
    """python-socketio logs a lost Redis connection as an error, then reconnects by itself (and
    a publish that fails twice loses that one event, which delivery at most once allows). Here
    they are warnings, like this application's other Redis listeners'; errors mean bugs."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.warning(msg, *args, **kwargs)


def redis_manager(url: str, *, channel: str, write_only: bool = False) -> Any:
    """python-socketio's `AsyncRedisManager` on `channel`, with its Redis troubles as warnings."""
    return socketio.AsyncRedisManager(
        url,
        channel=channel,
        write_only=write_only,
        logger=_RedisTrouble(logging.getLogger("workpulse.realtime.redis"), {}),
        # A listener blocks on its socket between messages; a publisher must not hang.
        redis_options={"socket_connect_timeout": 5, "health_check_interval": 10}
        if not write_only
        else {"socket_connect_timeout": 5, "socket_timeout": 5},
    )


class RedisEmitter:
    """Emits to Socket.IO rooms on every API process through Redis, without a server here."""

    def __init__(self, url: str, *, channel: str) -> None:
        self._manager = redis_manager(url, channel=channel, write_only=True)

    async def emit(self, event: str, payload: Mapping[str, Any], rooms: list[str]) -> None:
        await self._manager.emit(event, dict(payload), room=rooms, namespace="/")

    async def close(self) -> None:
        redis = getattr(self._manager, "redis", None)
        if redis is not None:
            await redis.aclose()


@dataclass(frozen=True, slots=True)
class Invalidated:
    """A device session, or every session of a user, changed (revoked, role, deactivated).
    Both None: invalidations may have been missed, check everything."""

    session_id: DeviceSessionId | None = None
    user_id: UserId | None = None


InvalidationListener = Callable[[Invalidated], Awaitable[None]]


class WatchedSessionCache:
    """A `SessionStateCache` that also tells its listeners about every invalidation."""

    def __init__(self, inner: SessionStateCache, redis: Redis | None, *, channel: str) -> None:
        self._inner = inner
        self._redis = redis
        self._channel = channel
        self._listeners: list[InvalidationListener] = []
        self._task: asyncio.Task[None] | None = None

    def listen(self, listener: InvalidationListener) -> None:
        self._listeners.append(listener)

    def get(self, session_id: DeviceSessionId, now: datetime) -> SessionState | None:
        return self._inner.get(session_id, now)

    def put(self, session_id: DeviceSessionId, state: SessionState, now: datetime) -> None:
        self._inner.put(session_id, state, now)

    async def get_or_load(
        self,
        session_id: DeviceSessionId,
        now: datetime,
        load: Callable[[], Awaitable[SessionState]],
    ) -> SessionState:
        return await self._inner.get_or_load(session_id, now, load)

    async def forget_session(self, session_id: DeviceSessionId) -> None:
        await self._inner.forget_session(session_id)
        if self._redis is None:  # with Redis, the channel brings it back to this process too
            await self._tell(Invalidated(session_id=session_id))

    async def forget_user(self, user_id: UserId) -> None:
        await self._inner.forget_user(user_id)
        if self._redis is None:
            await self._tell(Invalidated(user_id=user_id))

    async def _tell(self, change: Invalidated) -> None:
        for listener in self._listeners:
            try:
                await listener(change)
            except Exception:
                log.exception("invalidation listener failed")

    async def start(self) -> None:
        if self._redis is None:
            return
        pubsub: PubSub | None = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)  # type: ignore[union-attr]
        except Exception as exc:
            log.warning("invalidation channel unavailable at start: %s", exc)
            await _close(pubsub)
            pubsub = None
        self._task = asyncio.create_task(self._watch(pubsub), name="realtime-invalidations")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _watch(self, pubsub: PubSub | None) -> None:
        assert self._redis is not None
        while True:
            try:
                if pubsub is None:
                    pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self._channel)
                    await self._tell(Invalidated())  # what was missed meanwhile
                async for message in pubsub.listen():
                    change = _parse(message.get("data"))
                    if change is not None:
                        await self._tell(change)
            except asyncio.CancelledError:
                await _close(pubsub)
                raise
            except Exception as exc:
                log.warning("invalidation channel lost: %s", exc)
                await _close(pubsub)
                pubsub = None
                await asyncio.sleep(1)


def _parse(data: object) -> Invalidated | None:
    text = data.decode() if isinstance(data, bytes) else str(data)
    kind, _, value = text.partition(":")
    try:
        ident = UUID(value)
    except ValueError:
        return None
    if kind == "session":
        return Invalidated(session_id=DeviceSessionId(ident))
    if kind == "user":
        return Invalidated(user_id=UserId(ident))
    return None


async def _close(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
