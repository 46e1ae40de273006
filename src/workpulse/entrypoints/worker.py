"""The ingestion worker: derives intervals from the pings the API queued.

Database-queue mode (no Redis): derive the pending pings, woken by the API after each commit.
Stream mode (Redis): read the consumer group in batches, store and derive each batch in one
transaction, then acknowledge and delete its entries. Stale entries of a dead worker are
claimed; an entry that keeps failing goes to the dead-letter stream with its reason.

On stop, the batch in hand is finished; if the database is down at that moment, its entries stay
pending in the group and another worker claims them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workpulse.adapters.ping_stream import Entry, StreamConsumer
from workpulse.bootstrap import Container
from workpulse.domain.errors import Unavailable
from workpulse.services import ingest

log = structlog.get_logger(__name__)
IDLE_POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
READ_BLOCK_MS = 1000
PENDING_EVERY_SECONDS = 1.0
# A batch is topped up to about this many pings from what the stream already holds. Single-ping
# requests make one-ping entries, and each batch costs a few queries per device it touches, so
# 50 one-ping entries per batch capped the worker at a few hundred pings/s (bench/ingest).
BATCH_PINGS = 2000
# After a batch smaller than BATCH_PINGS the worker waits this long for more pings to gather:
# under a steady trickle it otherwise derives a few pings at a time, paying the per-device
# queries for each (and, on SQLite, taking the write lock the API's commits wait for). Derived
# intervals lag by at most this much more; a 202 never waits for derivation. 1 s rather than
# 0.25 s: `workpulse serve` under single pings (bench/ingest --phases embedded, same machine
# minutes apart) 338 -> 654 req/s, 2,736 -> 1,437 µs CPU per request; reports and the
# intervals endpoint see a ping up to a second later, presence does not wait for it at all.
GATHER_SECONDS = 1.0


async def run_worker(container: Container, stopping: asyncio.Event) -> None:
    if container.database_queue is None:
        log.info("worker started", queue="redis")
        await _run_stream(container, stopping)
    else:
        log.info("worker started", queue="database")
        await _run_database(container, stopping)
    log.info("worker stopped")


async def _run_database(container: Container, stopping: asyncio.Event) -> None:
    queue = container.database_queue
    assert queue is not None
    backoff = 0.5
    while not stopping.is_set():
        try:
            done = await ingest.derive_pending(
                uow_factory=container.database,
                settings_of=container.settings_of,
                partitions=container.partitions,
                limit=BATCH_PINGS,
            )
            backoff = 0.5
        except Exception as exc:
            _log_failure(exc, backoff)
            await _sleep_or_stop(stopping, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            continue
        if 0 < done < BATCH_PINGS:
            await _sleep_or_stop(stopping, GATHER_SECONDS)
        elif done == 0:
            queue.wake.clear()
            waits = [asyncio.create_task(queue.wake.wait()), asyncio.create_task(stopping.wait())]
            await asyncio.wait(waits, timeout=IDLE_POLL_SECONDS, return_when="FIRST_COMPLETED")
            for task in waits:
                task.cancel()


async def _run_stream(container: Container, stopping: asyncio.Event) -> None:
    assert container.redis is not None
    settings = container.settings
    consumer = StreamConsumer(
        container.redis,
        container.redis_keys,
        claim_idle_ms=int(settings.ingest_claim_idle_seconds * 1000),
        max_deliveries=settings.ingest_max_deliveries,
    )
    claim_every = settings.ingest_claim_idle_seconds / 2
    last_claim = last_pending = 0.0
    backoff = 0.5
    joined = False
    while not stopping.is_set():
        try:
            if not joined:
                await consumer.join()
                joined = True
            entries: list[Entry] = []
            if time.monotonic() - last_claim >= claim_every:
                entries += await consumer.claim_stale(settings.ingest_batch_entries)
                last_claim = time.monotonic()
            if not entries:
                entries = await _read_batch(consumer, settings.ingest_batch_entries)
            if entries:
                await _handle(container, consumer, entries, stopping)
                if sum(len(e.pings or ()) for e in entries) < BATCH_PINGS:
                    await _sleep_or_stop(stopping, GATHER_SECONDS)
            if time.monotonic() - last_pending >= PENDING_EVERY_SECONDS:
                # Pings stored by the session API (activity with an app) wait as pending rows.
                await ingest.derive_pending(
                    uow_factory=container.database,
                    settings_of=container.settings_of,
                    partitions=container.partitions,
                )
                last_pending = time.monotonic()
            backoff = 0.5
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("redis unavailable, retrying", retry_in=backoff, error=str(exc))
            await _sleep_or_stop(stopping, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        except Exception as exc:  # never let one failure end the worker: log, back off, go on
            _log_failure(exc, backoff)
            await _sleep_or_stop(stopping, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _read_batch(consumer: StreamConsumer, count: int) -> list[Entry]:
    """`count` entries (waiting up to READ_BLOCK_MS for the first), then, without waiting,
    more of what is already there until the batch holds about BATCH_PINGS pings."""
    entries = await consumer.read(count, READ_BLOCK_MS)
    while entries:
        pings = sum(len(e.pings) if e.pings is not None else 1 for e in entries)
        if pings >= BATCH_PINGS:
            break
        wanted = max(1, (BATCH_PINGS - pings) * len(entries) // max(pings, 1))
        more = await consumer.read(wanted, None)
        if not more:
            break
        entries += more
    return entries


async def _handle(
    container: Container, consumer: StreamConsumer, entries: list[Entry], stopping: asyncio.Event
) -> None:
    for entry in entries:
        if entry.pings is None:
            await consumer.dead_letter(entry, entry.problem or "undecodable")
    good = [e for e in entries if e.pings is not None]
    backoff = 0.5
    while good:
        try:
            await ingest.store_and_derive(
                [p for e in good for p in e.pings or ()],
                uow_factory=container.database,
                settings_of=container.settings_of,
                partitions=container.partitions,
            )
        except Unavailable as exc:
            if stopping.is_set():
                return  # left pending in the group: another worker claims them
            _log_failure(exc, backoff)
            await _sleep_or_stop(stopping, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            continue
        except Exception as exc:
            if len(good) > 1:  # find the entry that fails: the others go through
                for entry in good:
                    await _handle(container, consumer, [entry], stopping)
                return
            entry = good[0]
            if await consumer.deliveries(entry.id) >= consumer.max_deliveries:
                log.error("entry dead-lettered", entry=entry.id, error=repr(exc))
                await consumer.dead_letter(entry, repr(exc))
            else:
                log.warning("entry failed; it will be retried", entry=entry.id, error=repr(exc))
            return
        await consumer.done([e.id for e in good])
        return


def _log_failure(exc: Exception, backoff: float) -> None:
    if isinstance(exc, Unavailable):
        log.warning("database unavailable, retrying", retry_in=backoff)
    else:
        log.exception("derivation failed, retrying", retry_in=backoff, exc_info=exc)


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
