"""The ingestion worker. Queues and handlers arrive with the ping-ingestion issue; until then it
starts, reports itself, and stops cleanly on request."""

from __future__ import annotations

import asyncio

import structlog

from workpulse.bootstrap import Container

log = structlog.get_logger(__name__)


async def run_worker(container: Container, stopping: asyncio.Event) -> None:
    log.info("worker started", queue="redis" if container.redis is not None else "in-process")
    await stopping.wait()
    log.info("worker stopped")
