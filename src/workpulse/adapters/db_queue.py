"""The database as the ping queue (embedded mode, and PostgreSQL without Redis).

The API's requests are grouped: whatever arrives while one transaction commits goes into the
next one, so many small requests share one fsync. A request is answered only after its pings
are committed (as `pending`); the in-process worker is then woken to derive them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

from workpulse.adapters.db.partitions import Partitions
from workpulse.adapters.db.uow import SqlDatabase
from workpulse.services.ports import Backlogged, OwnedPing


class DatabaseQueue:
    """`backlog_bound` counts pings: those waiting for the next commit plus the pending rows
    (as last measured by `backlog`, which the API polls every second)."""

    def __init__(
        self,
        database: SqlDatabase,
        partitions: Partitions,
        *,
        backlog_bound: int,
        max_group: int = 5000,
    ) -> None:
        self._database = database
        self._partitions = partitions
        self._bound = backlog_bound
        self._max_group = max_group
        self._waiting: deque[tuple[Sequence[OwnedPing], asyncio.Future[list[bool]]]] = deque()
        self._waiting_pings = 0
        self._pending_rows = 0
        self._writer: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()  # set after each commit: there is work for the worker

    async def backlog(self) -> int:
        async with self._database(readonly=True) as uow:
            self._pending_rows = await uow.pings.count_pending()
        return self._pending_rows

    async def submit(self, pings: Sequence[OwnedPing], *, dedupe_for: timedelta) -> Sequence[bool]:
        # The table's key recognizes repeats for as long as the pings are kept.
        if self._pending_rows + self._waiting_pings + len(pings) > self._bound:
            raise Backlogged(retry_after=2)
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append((pings, future))
        self._waiting_pings += len(pings)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups())
        return await future

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer

    async def _write_groups(self) -> None:
        while self._waiting:
            group: list[tuple[Sequence[OwnedPing], asyncio.Future[list[bool]]]] = []
            size = 0
            while self._waiting and (
                not group or size + len(self._waiting[0][0]) <= self._max_group
            ):
                requests, future = self._waiting.popleft()
                group.append((requests, future))
                size += len(requests)
            self._waiting_pings -= size
            try:
                flags = await self._write([p for requests, _ in group for p in requests])
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self._pending_rows += sum(flags)
            offset = 0
            for requests, future in group:
                if not future.done():
                    future.set_result(flags[offset : offset + len(requests)])
                offset += len(requests)
            self.wake.set()

    async def _write(self, pings: list[OwnedPing]) -> list[bool]:
        await self._partitions.ensure(p.ping.start for p in pings)
        async with self._database() as uow:
            new = await uow.pings.add(pings, pending=True)
            await uow.commit()
        # `add` reports each new ping once (a repeat inside the group is a duplicate); map that
        # back to positions by identity, since equal pings are the same observation.
        remaining = list(new)
        flags = []
        for ping in pings:
            if remaining and ping is remaining[0]:
                remaining.pop(0)
                flags.append(True)
            else:
                flags.append(False)
        return flags
