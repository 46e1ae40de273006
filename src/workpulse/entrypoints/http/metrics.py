"""Prometheus metrics: requests and latency by route template, the database pool, the activity
groups and ingestion."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from workpulse.adapters.ping_stream import DeadLetters
from workpulse.bootstrap import Container
from workpulse.services.activity_groups import ActivityGroups

log = structlog.get_logger(__name__)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "workpulse_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "workpulse_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

        # The labelled children, looked up once: `labels()` costs ~5 µs a call, per request.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)


class PoolCollector(Collector):
    """Reads the SQLAlchemy pool at scrape time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return
        for name, help_text, value in (
            ("workpulse_db_pool_size", "Configured pool size.", pool.size()),
            ("workpulse_db_pool_checked_out", "Connections in use.", pool.checkedout()),
            ("workpulse_db_pool_idle", "Idle connections in the pool.", pool.checkedin()),
            # SQLAlchemy counts overflow from -pool_size up; below the pool size there is none.
            (
                "workpulse_db_pool_overflow",
                "Connections beyond the pool size.",
                max(pool.overflow(), 0),
            ),
        ):
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], float(value))
            yield gauge


class ActivityGroupsCollector(Collector):
    """Reads the activity groups' counts at scrape time (services/activity_groups.py)."""

    def __init__(self, groups: ActivityGroups) -> None:
        self._groups = groups

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, help_text, value in (
            ("workpulse_activity_groups", "Groups of single activity events written.",
             self._groups.groups),
            ("workpulse_activity_group_events", "Events carried by those groups.",
             self._groups.events),
            ("workpulse_activity_group_unwritten", "Events a group left to the one-event path "
             "(repeats, refusals, sessions held elsewhere, failed groups).",
             self._groups.unwritten),
            ("workpulse_activity_groups_failed", "Groups that failed as a whole (logged).",
             self._groups.failed),
        ):  # fmt: skip
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], float(value))
            yield counter


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pings = Counter(
            "workpulse_pings_total",
            "Pings received, by outcome (accepted, duplicate, rejected) and rejection reason.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.backlog = Gauge(
            "workpulse_ingest_backlog",
            "Queued and not yet derived: stream entries with Redis, pending pings without.",
            registry=registry,
        )
        self.dead_letters = Gauge(
            "workpulse_ingest_dead_letters",
            "Stream entries that failed repeatedly and wait in the dead-letter stream.",
            registry=registry,
        )


WATCH_SECONDS = 1.0


async def watch_ingestion(
    container: Container, stopping: asyncio.Event, metrics: IngestMetrics
) -> None:
    """Every second: the queue's backlog (which also arms the database queue's bound) and the
    dead letters, for the gauges. A failing read is retried on the next tick."""
    dead_letters = (
        None if container.redis is None else DeadLetters(container.redis, container.redis_keys)
    )
    while not stopping.is_set():
        try:
            metrics.backlog.set(await container.ping_queue.backlog())
            if dead_letters is not None:
                metrics.dead_letters.set(await dead_letters.count())
        except Exception as exc:
            log.warning("ingestion metrics unavailable", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), WATCH_SECONDS)
