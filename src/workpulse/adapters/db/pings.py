"""Raw pings: append-only, the source of truth that intervals are derived from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.batching import NotAnIndexKey, clusters, device_owners
from workpulse.adapters.db.tables import pings
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.intervals import Rederivation
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


_NEEDED_COLUMNS = (
    pings.c.user_id,
    pings.c.device_id,
    pings.c.event_id,
    pings.c.app_name,
    pings.c.domain,
    pings.c.idle,
    pings.c.start_time,
    pings.c.end_time,
)
_NEEDED_OWNERS = (
    NotAnIndexKey(pings.c.organization_id).in_(sa.bindparam("orgs", expanding=True)),
    pings.c.user_id.in_(sa.bindparam("users", expanding=True)),
    pings.c.device_id.in_(sa.bindparam("devices", expanding=True)),
)
# What a plan needs, in two reads under two indexes: the pings starting in the load range, and
# the spans (pings with an end) reaching into it, which start at most MAX_SPAN earlier.
_NEEDED_STARTING = sa.select(*_NEEDED_COLUMNS).where(
    *_NEEDED_OWNERS,
    pings.c.start_time >= sa.bindparam("load_start"),
    pings.c.start_time <= sa.bindparam("load_end"),
)
_NEEDED_REACHING = sa.select(*_NEEDED_COLUMNS).where(
    *_NEEDED_OWNERS,
    pings.c.end_time.is_not(None),
    pings.c.end_time >= sa.bindparam("reaching"),
    # Not by start_time: that range is a day of the device's pings, the spans index is not.
    NotAnIndexKey(pings.c.start_time) >= sa.bindparam("reaching_floor"),
    NotAnIndexKey(pings.c.start_time) < sa.bindparam("load_start"),  # the rest came first
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

    async def needed(
        self, plans: Mapping[DeviceKey, Rederivation]
    ) -> Mapping[DeviceKey, Sequence[Ping]]:
        found: dict[DeviceKey, list[Ping]] = defaultdict(list)
        ranges = {device: (plan.spans_reaching, plan.load_end) for device, plan in plans.items()}
        for devices, low, high in clusters(ranges):
            users = {d.user_id: d.organization_id for d in devices}
            bounds = {
                **device_owners(devices),
                "load_start": min(plans[d].load_start for d in devices),
                "load_end": high,
                "reaching": low,
                "reaching_floor": low - MAX_SPAN,
            }
            for statement in (_NEEDED_STARTING, _NEEDED_REACHING):
                for row in await self._conn.execute(statement, bounds):
                    organization_id = users.get(row.user_id)
                    if organization_id is None:
                        continue
                    device = DeviceKey(organization_id, row.user_id, row.device_id)
                    plan = plans.get(device)
                    if plan is not None:
                        ping = Ping(
                            device_id=row.device_id,
                            app_name=row.app_name,
                            url=None,  # not part of an interval
                            domain=row.domain,
                            title=None,
                            idle=row.idle,
                            start=row.start_time,
                            end=row.end_time,
                            event_id=row.event_id,
                        )
                        if plan.needs(ping):
                            found[device].append(ping)
        return found
