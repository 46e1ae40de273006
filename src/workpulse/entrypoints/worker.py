"""The ingestion worker: derives intervals from the pings the API queued.

It loops until `stopping` is set, finishing the batch in hand first (a batch is one
transaction, so a stop or a crash never leaves half of one).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from workpulse.bootstrap import Container
from workpulse.domain.errors import Unavailable
from workpulse.services import ingest

log = structlog.get_logger(__name__)
IDLE_POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0


async def run_worker(container: Container, stopping: asyncio.Event) -> None:
    log.info("worker started", queue="database")
    queue = container.ping_queue
    backoff = 0.5
    while not stopping.is_set():
        try:
            done = await ingest.derive_pending(
                uow_factory=container.database,
                settings_of=container.settings_of,
                partitions=container.partitions,
            )
            backoff = 0.5
        except Unavailable as exc:
            log.warning("database unavailable, retrying", retry_in=backoff, error=str(exc))
            await _sleep_or_stop(stopping, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            continue
        except Exception:
            log.exception("derivation failed, retrying")
            await _sleep_or_stop(stopping, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            continue
        if done == 0:
            queue.wake.clear()
            waits = [asyncio.create_task(queue.wake.wait()), asyncio.create_task(stopping.wait())]
            await asyncio.wait(waits, timeout=IDLE_POLL_SECONDS, return_when="FIRST_COMPLETED")
            for task in waits:
                task.cancel()
    log.info("worker stopped")


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
