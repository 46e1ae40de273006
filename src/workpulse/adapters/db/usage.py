"""Raw pings and the usage intervals derived from them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.tables import app_usage, pings
from workpulse.adapters.db.tenancy import of_tenant
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.intervals import Interval, Rederivation, Window
from workpulse.domain.months import STORED_INTERVAL_MAX
from workpulse.domain.pings import MAX_SPAN, Ping
from workpulse.services.ports import DeviceKey, OwnedPing

_PING_KEY = (pings.c.organization_id, pings.c.user_id, pings.c.device_id, pings.c.event_id)
_INSERT_CHUNK = 500  # rows per INSERT statement (SQLite allows 32,766 parameters)
# Built once: executed with a list of rows, SQLAlchemy batches them into multi-row VALUES itself
# ("insertmanyvalues") from one cached compilation. Building `.values(rows)` per chunk cost half
# of a worker's CPU in compilation (docs/benchmarks.md, ping ingestion).
_ADD_PINGS = {
    "postgresql": postgresql.insert(pings)
    .on_conflict_do_nothing()
    .returning(*_PING_KEY, pings.c.start_time),
    "sqlite": sqlite.insert(pings)
    .on_conflict_do_nothing()
    .returning(*_PING_KEY, pings.c.start_time),
}


def _ping(row: sa.Row[Any]) -> Ping:
    return Ping(
        device_id=row.device_id,
        app_name=row.app_name,
        url=row.url,
        domain=row.domain,
        title=row.title,
        idle=row.idle,
        start=row.start_time,
        end=row.end_time,
        event_id=row.event_id,
    )


def _owned(row: sa.Row[Any]) -> OwnedPing:
    return OwnedPing(OrganizationId(row.organization_id), UserId(row.user_id), _ping(row))


def _interval(row: Any) -> Interval:
    return Interval(
        device_id=row.device_id,
        app_name=row.app_name,
        domain=row.domain,
        idle=row.idle,
        start=row.start_time,
        end=row.end_time,
    )


def _device(table: sa.Table, device: DeviceKey) -> sa.ColumnElement[bool]:
    return sa.and_(
        of_tenant(table, device.organization_id),
        table.c.user_id == device.user_id,
        table.c.device_id == device.device_id,
    )


class SqlPingStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def add(self, owned: Sequence[OwnedPing], *, pending: bool) -> Sequence[OwnedPing]:
        new: list[OwnedPing] = []
        statement = _ADD_PINGS[self._dialect]
        for offset in range(0, len(owned), _INSERT_CHUNK):
            chunk = owned[offset : offset + _INSERT_CHUNK]
            rows = [
                {
                    "organization_id": o.organization_id,
                    "user_id": o.user_id,
                    "device_id": o.ping.device_id,
                    "event_id": o.ping.event_id,
                    "app_name": o.ping.app_name,
                    "url": o.ping.url,
                    "domain": o.ping.domain,
                    "title": o.ping.title,
                    "idle": o.ping.idle,
                    "start_time": o.ping.start,
                    "end_time": o.ping.end,
                    "pending": pending,
                }
                for o in chunk
            ]
            inserted = {tuple(r) for r in await self._conn.execute(statement, rows)}
            for o in chunk:
                key = (
                    o.organization_id,
                    o.user_id,
                    o.ping.device_id,
                    o.ping.event_id,
                    o.ping.start,
                )
                if key in inserted:
                    inserted.discard(key)  # a repeat inside the batch is a duplicate
                    new.append(o)
        return new

    async def count_pending(self) -> int:
        found = await self._conn.scalar(sa.select(sa.func.count()).where(pings.c.pending))
        return int(found or 0)

    async def take_pending(self, limit: int) -> Sequence[OwnedPing]:
        query = sa.select(pings).where(pings.c.pending).order_by(pings.c.received_at).limit(limit)
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_owned(row) for row in await self._conn.execute(query)]

    async def mark_derived(self, owned: Sequence[OwnedPing]) -> None:
        key = sa.tuple_(*_PING_KEY, pings.c.start_time)
        for offset in range(0, len(owned), _INSERT_CHUNK):
            chunk = owned[offset : offset + _INSERT_CHUNK]
            await self._conn.execute(
                pings.update()
                .where(
                    pings.c.pending,
                    key.in_(
                        [
                            (
                                o.organization_id,
                                o.user_id,
                                o.ping.device_id,
                                o.ping.event_id,
                                o.ping.start,
                            )
                            for o in chunk
                        ]
                    ),
                )
                .values(pending=False)
            )

    async def needed(self, device: DeviceKey, plan: Rederivation) -> Sequence[Ping]:
        # Both branches are ranges on start_time under the (user_id, device_id, start_time)
        # index; spans last at most MAX_SPAN, which bounds the second one.
        reaching = sa.and_(
            pings.c.start_time >= plan.spans_reaching - MAX_SPAN,
            pings.c.end_time.is_not(None),
            pings.c.end_time >= plan.spans_reaching,
        )
        rows = await self._conn.execute(
            sa.select(pings).where(
                _device(pings, device),
                pings.c.start_time <= plan.load_end,
                sa.or_(pings.c.start_time >= plan.load_start, reaching),
            )
        )
        return [_ping(row) for row in rows]


class SqlUsageStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def lock(self, devices: Sequence[DeviceKey]) -> None:
        if self._dialect != "postgresql":
            return  # SQLite writers already hold the database's write lock
        keys = sorted({_lock_key(d) for d in devices})  # one order everywhere: no deadlock
        for key in keys:
            await self._conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    async def touching(self, device: DeviceKey, window: Window) -> Sequence[Interval]:
        rows = await self._conn.execute(
            sa.select(app_usage).where(
                _device(app_usage, device),
                app_usage.c.start_time <= window.end,
                app_usage.c.end_time >= window.start,
            )
        )
        return [_interval(row) for row in rows]

    async def replace(
        self, device: DeviceKey, plan: Rederivation, fresh: Sequence[Interval]
    ) -> None:
        await self._conn.execute(
            app_usage.delete().where(
                _device(app_usage, device),
                app_usage.c.start_time < plan.replace_end,
                app_usage.c.end_time > plan.replace_start,
            )
        )
        if fresh:
            await self._conn.execute(
                app_usage.insert(),
                [
                    {
                        "id": uuid.uuid4(),
                        "organization_id": device.organization_id,
                        "user_id": device.user_id,
                        "device_id": i.device_id,
                        "app_name": i.app_name,
                        "domain": i.domain,
                        "idle": i.idle,
                        "start_time": i.start,
                        "end_time": i.end,
                    }
                    for i in fresh
                ],
            )

    async def between(
        self,
        organization_id: OrganizationId,
        user_id: UserId | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[tuple[UserId, Interval]]:
        query = sa.select(app_usage).where(
            of_tenant(app_usage, organization_id),
            app_usage.c.start_time >= start - STORED_INTERVAL_MAX,
            app_usage.c.start_time < end,
            app_usage.c.end_time > start,
        )
        if user_id is not None:
            query = query.where(app_usage.c.user_id == user_id)
        rows = await self._conn.execute(
            query.order_by(app_usage.c.user_id, app_usage.c.start_time, app_usage.c.device_id)
        )
        return [(UserId(row.user_id), _interval(row)) for row in rows]

    async def of_users(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        windows: Sequence[tuple[datetime, datetime]],
    ) -> Sequence[tuple[UserId, Interval]]:
        if not windows:
            return []
        # Stored intervals last at most STORED_INTERVAL_MAX, so each window is a range on
        # start_time under (user_id, start_time): no scan of a user's whole history.
        touching = sa.or_(
            *(
                sa.and_(
                    app_usage.c.start_time >= start - STORED_INTERVAL_MAX,
                    app_usage.c.start_time < end,
                    app_usage.c.end_time > start,
                )
                for start, end in windows
            )
        )
        query = sa.select(
            app_usage.c.user_id,
            app_usage.c.device_id,
            app_usage.c.app_name,
            app_usage.c.domain,
            app_usage.c.idle,
            app_usage.c.start_time,
            app_usage.c.end_time,
        ).where(of_tenant(app_usage, organization_id), touching)
        if user_ids is not None:
            query = query.where(app_usage.c.user_id.in_(user_ids))
        rows = await self._conn.execute(query)
        return [(UserId(row.user_id), _interval(row)) for row in rows]


def _lock_key(device: DeviceKey) -> int:
    # Per user, not per device: a user's devices share hourly rollups, which are recomputed
    # from all of them under this lock.
    digest = hashlib.blake2b(f"usage/{device.user_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
