"""Socket.IO on the API's port, at `/socket.io` (docs/realtime.md).

A client connects with `io(url, {auth: {token: ACCESS_TOKEN}})`. The token is authenticated like
an HTTP request's (a revoked device session is refused); a refusal reaches the client as
`connect_error` whose message is the reason and whose `data` is the contract's error shape
`{"error", "detail"}`. An accepted socket joins its user's room, its organization's room (managers
and up) or team room (employees, with `employees_see_team`), and stays while its device session
lives: when a revocation or a role change is announced, the sockets concerned are checked again
against the database, disconnected or moved between rooms (and all of them every
`realtime_recheck_seconds`, in case an announcement was lost).

Presence: each socket is a connection in the presence store, refreshed by this process's
heartbeat every third of `presence_ttl_seconds`; the same loop marks offline the users whose
connections expired anywhere (a crashed process's). Agents' pings, buffered by the hot path,
are written every `presence_flush_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import socketio
import structlog
from fastapi import FastAPI
from prometheus_client import Gauge
from starlette.types import ASGIApp

from workpulse.adapters.realtime import Invalidated, redis_manager
from workpulse.bootstrap import Container
from workpulse.domain.errors import Unauthenticated, Unavailable, WorkPulseError
from workpulse.domain.presence import rooms_of
from workpulse.domain.roles import Principal
from workpulse.services import authentication, presence
from workpulse.services.ports import UserRef
from workpulse.settings import Settings

log = structlog.get_logger(__name__)

PATH = "socket.io"
MAX_MESSAGE_BYTES = 64 * 1024  # clients only listen; nothing they send needs more


@dataclass(frozen=True, slots=True)
class _Socket:
    principal: Principal
    rooms: frozenset[str]

    @property
    def user(self) -> UserRef:
        return UserRef(self.principal.organization_id, self.principal.user_id)


def refusal(error: WorkPulseError) -> socketio.exceptions.ConnectionRefusedError:
    """`connect_error` with the reason as message and `{"error", "detail"}` as data."""
    detail = error.detail
    return socketio.exceptions.ConnectionRefusedError(
        str(detail), {"error": type(error).__name__, "detail": detail}
    )


class RealtimeServer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        manager: Any = (
            redis_manager(settings.redis_url, channel=f"{settings.redis_prefix}:socketio")
            if settings.redis_url
            else socketio.AsyncManager()
        )
        self.server: Any = socketio.AsyncServer(
            async_mode="asgi",
            client_manager=manager,
            ping_interval=settings.realtime_ping_interval_seconds,
            ping_timeout=settings.realtime_ping_timeout_seconds,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            # None: same origin only; browsers elsewhere need WORKPULSE_CORS_ORIGINS.
            cors_allowed_origins=list(settings.cors_origins) or None,
            logger=False,
            engineio_logger=False,
        )
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        self._instance = uuid.uuid4().hex[:12]
        self._container: Container | None = None
        self._sockets: dict[str, _Socket] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def asgi(self, app: FastAPI) -> ASGIApp:
        """The one ASGI app uvicorn serves: `/socket.io/` here, everything else to `app`."""
        return cast(ASGIApp, socketio.ASGIApp(self.server, other_asgi_app=app, socketio_path=PATH))

    @contextlib.asynccontextmanager
    async def running(self, container: Container) -> AsyncIterator[None]:
        """Serves sockets while the app's lifespan runs, with the background loops."""
        self._container = container
        if container.redis is None:
            container.relay.attach(self._emit)
        elif not self.server.manager_initialized:
            # Subscribe to the Redis channel now rather than at the first connection (the
            # library's default), so that the first socket misses nothing published meanwhile.
            self.server.manager_initialized = True
            self.server.manager.initialize()
        container.revocations.listen(self._invalidated)
        Gauge(
            "workpulse_realtime_sockets",
            "Socket.IO connections held by this process.",
            registry=container.metrics,
        ).set_function(lambda: len(self._sockets))
        Gauge(
            "workpulse_realtime_events_dropped",
            "Events dropped because this process's real-time queue was full.",
            registry=container.metrics,
        ).set_function(lambda: container.relay.dropped)
        settings = self._settings
        loops = [
            self._every(settings.presence_ttl_seconds / 3, self._heartbeat),
            self._every(settings.presence_flush_seconds, self._flush),
            self._every(settings.realtime_recheck_seconds, self._recheck_all),
        ]
        tasks = [asyncio.create_task(loop, name="realtime") for loop in loops]
        try:
            yield
        finally:
            listener = getattr(self.server.manager, "thread", None)
            for task in [*tasks, *self._tasks, *([listener] if listener else [])]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)

    # --- Socket.IO handlers -------------------------------------------------------------------

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: object = None) -> None:
        container = self._container
        if container is None:
            raise refusal(Unavailable(detail="the server is starting"))
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise refusal(Unauthenticated("send the access token as auth: {token: ACCESS_TOKEN}"))
        try:
            found = await authentication.authenticate(
                token,
                uow_factory=container.database,
                tokens=container.tokens,
                cache=container.session_cache,
                clock=container.clock,
            )
            settings = await container.settings_of(found.principal.organization_id)
        except WorkPulseError as exc:
            raise refusal(exc) from None
        except Exception as exc:
            log.warning("socket authentication failed", exc_info=True)
            raise refusal(Unavailable(detail="try again shortly")) from exc
        socket = _Socket(found.principal, rooms_of(found.principal, settings))
        for room in socket.rooms:
            await self.server.enter_room(sid, room)
        self._sockets[sid] = socket
        try:
            await presence.connected(
                socket.user,
                self._connection_id(sid),
                store=container.presence,
                notifier=container.notifier,
                clock=container.clock,
                ttl=self._ttl,
            )
        except Exception:
            # The socket stays: the next heartbeat records it.
            log.warning("presence not recorded at connect", exc_info=True)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        socket = self._sockets.pop(sid, None)
        container = self._container
        if socket is None or container is None:
            return
        try:
            await presence.disconnected(
                socket.user,
                self._connection_id(sid),
                store=container.presence,
                notifier=container.notifier,
                clock=container.clock,
            )
        except Exception:
            # Its connection expires with the heartbeat it no longer gets.
            log.warning("presence not recorded at disconnect", exc_info=True)

    # --- Delivery, presence, revocation ---------------------------------------------------------

    async def _emit(self, event: str, payload: Mapping[str, Any], rooms: list[str]) -> None:
        await self.server.emit(event, dict(payload), room=rooms)

    @property
    def _ttl(self) -> timedelta:
        return timedelta(seconds=self._settings.presence_ttl_seconds)

    def _connection_id(self, sid: str) -> str:
        return f"{self._instance}:{sid}"

    async def _heartbeat(self, container: Container) -> None:
        await presence.heartbeat(
            [(socket.user, self._connection_id(sid)) for sid, socket in self._sockets.items()],
            store=container.presence,
            notifier=container.notifier,
            clock=container.clock,
            ttl=self._ttl,
        )

    async def _flush(self, container: Container) -> None:
        await presence.flush_sightings(
            container.sightings.drain(),
            store=container.presence,
            notifier=container.notifier,
            settings_of=container.settings_of,
            clock=container.clock,
            agent_ttl=timedelta(seconds=self._settings.presence_agent_seconds),
        )

    async def _invalidated(self, change: Invalidated) -> None:
        """Runs in the revoking request's after-commit (embedded) or the channel listener: the
        check itself goes to a task of its own, so neither waits for the database."""
        if change.session_id is None and change.user_id is None:
            sids = list(self._sockets)
        else:
            sids = [
                sid
                for sid, socket in self._sockets.items()
                if socket.principal.device_session_id == change.session_id
                or socket.principal.user_id == change.user_id
            ]
        if sids:
            task = asyncio.create_task(self._recheck_logged(sids))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _recheck_logged(self, sids: list[str]) -> None:
        try:
            await self._recheck(sids)
        except Exception:
            # The periodic re-check tries again.
            log.warning("sockets not re-checked after a revocation", exc_info=True)

    async def _recheck_all(self, container: Container) -> None:
        await self._recheck(list(self._sockets))

    async def _recheck(self, sids: Iterable[str]) -> None:
        container = self._container
        if container is None:
            return
        current: dict[Principal, Principal | None] = {}
        for sid in sids:
            socket = self._sockets.get(sid)
            if socket is None:
                continue
            if socket.principal not in current:
                current[socket.principal] = await presence.still_signed_in(
                    socket.principal, uow_factory=container.database
                )
            now = current[socket.principal]
            if now is None:
                await self.server.disconnect(sid)
                continue
            settings = await container.settings_of(now.organization_id)
            rooms = rooms_of(now, settings)
            for room in socket.rooms - rooms:
                await self.server.leave_room(sid, room)
            for room in rooms - socket.rooms:
                await self.server.enter_room(sid, room)
            if sid in self._sockets:
                self._sockets[sid] = _Socket(now, rooms)

    async def _every(self, seconds: float, step: Callable[[Container], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            container = self._container
            if container is None:
                continue
            try:
                await step(container)
            except Exception:
                # Redis or the database is down: the next tick tries again.
                log.warning("real-time loop step failed", step=step.__name__, exc_info=True)
