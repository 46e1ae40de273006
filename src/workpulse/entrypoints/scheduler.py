"""The job scheduler. Jobs arrive with the scheduled-jobs issue; until then it starts, reports
itself, and stops cleanly on request."""

from __future__ import annotations

import asyncio

import structlog

from workpulse.bootstrap import Container

log = structlog.get_logger(__name__)


async def run_scheduler(container: Container, stopping: asyncio.Event) -> None:
    log.info("scheduler started", jobs=0)
    await stopping.wait()
    log.info("scheduler stopped")
