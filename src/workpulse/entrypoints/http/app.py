"""The FastAPI application. Its lifespan builds the container (pools, Redis, caches) and, for
`serve`, runs the worker and scheduler beside the API in the same process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import workpulse
from workpulse import bootstrap
from workpulse.bootstrap import Container
from workpulse.entrypoints.http import errors
from workpulse.entrypoints.http.hot import HotLane
from workpulse.entrypoints.http.metrics import (
    ActivityGroupsCollector,
    HttpMetrics,
    IngestMetrics,
    PoolCollector,
    watch_ingestion,
)
from workpulse.entrypoints.http.middleware import RequestContext
from workpulse.entrypoints.http.realtime import RealtimeServer
from workpulse.entrypoints.http.routes import (
    alerts,
    auth,
    operations,
    organizations,
    presence,
    projects,
    reports,
    sessions,
    usage,
    users,
)
from workpulse.settings import Settings, describe

log = structlog.get_logger(__name__)

# A background part of the process: runs until `stopping` is set, then returns.
Background = Callable[[Container, asyncio.Event], Coroutine[Any, Any, None]]


def create_app(
    settings: Settings,
    *,
    role: str = "api",
    migrate: bool = False,
    background: Sequence[Background] = (),
    hot_lane: bool = True,
) -> FastAPI:
    """The app. `hot_lane=False` leaves the busiest routes to FastAPI's router (tests compare
    the two; hot.py)."""
    metrics_holder: dict[str, HttpMetrics] = {}
    # Socket.IO: served beside the app by `realtime.asgi(app)` (the CLI does), running while
    # the lifespan runs.
    realtime = RealtimeServer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap.build(settings, role=role) as container:
            if migrate and await bootstrap.migrate_if_needed(settings, container.engine):
                log.info("database migrated", url=describe(settings)["effective_database_url"])
            container.metrics.register(PoolCollector(container.engine))
            if container.session_deps.groups is not None:
                container.metrics.register(ActivityGroupsCollector(container.session_deps.groups))
            metrics_holder["http"] = HttpMetrics(container.metrics)
            ingest_metrics = IngestMetrics(container.metrics)
            app.state.container = container
            app.state.ingest_metrics = ingest_metrics
            stopping = asyncio.Event()

            async def watch(container: Container, stopping: asyncio.Event) -> None:
                await watch_ingestion(container, stopping, ingest_metrics)

            tasks = [
                asyncio.create_task(part(container, stopping), name=getattr(part, "__name__", ""))
                for part in (*background, watch)
            ]
            log.info("started", role=role, settings=describe(settings))
            try:
                async with realtime.running(container):
                    yield
            finally:
                stopping.set()
                for task in tasks:
                    try:
                        await asyncio.wait_for(task, settings.graceful_timeout_seconds)
                    except Exception:
                        log.exception("background part failed", part=task.get_name())
                log.info("stopped", role=role)

    app = FastAPI(
        title="WorkPulse",
        version=workpulse.__version__,
        summary="Time tracking and workforce productivity: pings in, exact reports out.",
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics). FastAPI's native OpenTelemetry, on by default,
        # asks on every request whether a provider was configured (three environment reads
        # and provider lookups, ~10 µs): off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.realtime = realtime
    errors.install(app)
    # Routes are tried in order, ~2.5 µs each (FastAPI 0.165): the agents' busiest first.
    for router in (
        usage.router,
        organizations.router,
        sessions.router,
        operations.router,
        auth.router,
        users.router,
        projects.router,
        presence.router,
        reports.router,
        alerts.router,
    ):
        app.include_router(router)
    # Innermost of the middleware: the request context, metrics and CORS apply to the hot routes.
    if hot_lane:
        app.add_middleware(HotLane, routes=[*usage.HOT_ROUTES, *sessions.HOT_ROUTES])
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Device-Id", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After"],
        )
    app.add_middleware(RequestContext, metrics=metrics_holder)
    return app
