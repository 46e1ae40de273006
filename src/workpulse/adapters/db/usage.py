"""Raw pings and the usage intervals derived from them."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from workpulse.adapters.db.batching import clusters, owners
from workpulse.adapters.db.tables import app_usage, pings
from workpulse.adapters.db.tenancy import of_tenant, tenant
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.intervals import Interval, Rederivation, Window
from workpulse.domain.months import STORED_INTERVAL_MAX
from workpulse.domain.pings import MAX_SPAN, Ping
from workpulse.services.ports import DeviceKey, OwnedPing, Replacement, UserKey

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


# Re-derivation reads and writes many devices per batch with a few statements, each built once:
# the devices of one organization whose ranges lie close together share one query (users and
# device ids as IN lists under the (user_id, device_id, start_time) index); rows of a device not
# asked for, or outside its own range, are dropped here.
class _NotAnIndexKey(ColumnElement[Any]):
    """A column that SQLite must not pick an index by: `+column` there, the column elsewhere.

    SQLite plans without statistics, and took `organization_id = ?` (a whole organization's
    rows) or a range on start_time a day long over the indexes that read a few rows here."""

    # The wrapped column is part of the statement cache key (SQLAlchemy reads this list).
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012
    inherit_cache = True

    def __init__(self, column: sa.Column[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(_NotAnIndexKey)
def _compile_any(element: _NotAnIndexKey, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_NotAnIndexKey, "sqlite")
def _compile_sqlite(element: _NotAnIndexKey, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


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
    _NotAnIndexKey(pings.c.organization_id).in_(sa.bindparam("orgs", expanding=True)),
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
    _NotAnIndexKey(pings.c.start_time) >= sa.bindparam("reaching_floor"),
    _NotAnIndexKey(pings.c.start_time) < sa.bindparam("load_start"),  # the rest came first
)
# Intervals touching windows: a range on end_time (few intervals end after a live window's
# start); the bound on start_time (stored intervals last at most a day) keeps it a range too.
_TOUCHING = sa.select(app_usage).where(
    _NotAnIndexKey(app_usage.c.organization_id).in_(sa.bindparam("orgs", expanding=True)),
    app_usage.c.user_id.in_(sa.bindparam("users", expanding=True)),
    _NotAnIndexKey(app_usage.c.device_id).in_(sa.bindparam("devices", expanding=True)),
    _NotAnIndexKey(app_usage.c.start_time) >= sa.bindparam("floor"),
    _NotAnIndexKey(app_usage.c.start_time) <= sa.bindparam("high"),
    app_usage.c.end_time >= sa.bindparam("low"),
)
_AROUND = sa.select(app_usage).where(
    _NotAnIndexKey(app_usage.c.organization_id).in_(sa.bindparam("orgs", expanding=True)),
    app_usage.c.user_id.in_(sa.bindparam("users", expanding=True)),
    _NotAnIndexKey(app_usage.c.start_time) >= sa.bindparam("floor"),
    _NotAnIndexKey(app_usage.c.start_time) < sa.bindparam("high"),
    app_usage.c.end_time > sa.bindparam("low"),
)
# Executed with one parameter set per device (one round trip): every stored interval of the
# device that overlaps [start, end).
_DELETE_REPLACED = app_usage.delete().where(
    _NotAnIndexKey(app_usage.c.organization_id) == sa.bindparam("org", type_=sa.Uuid()),
    app_usage.c.user_id == sa.bindparam("user"),
    _NotAnIndexKey(app_usage.c.device_id) == sa.bindparam("device", type_=sa.String()),
    _NotAnIndexKey(app_usage.c.start_time) >= sa.bindparam("floor"),
    _NotAnIndexKey(app_usage.c.start_time) < sa.bindparam("end"),
    app_usage.c.end_time > sa.bindparam("start"),
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
                **owners(devices),
                "devices": sorted({d.device_id for d in devices}),
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


class SqlUsageStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def lock(self, devices: Sequence[DeviceKey]) -> None:
        if self._dialect != "postgresql":
            return  # SQLite writers already hold the database's write lock
        keys = sorted({_lock_key(d) for d in devices})  # one order everywhere: no deadlock
        # One round trip: unnest yields the keys in the array's (sorted) order.
        await self._conn.execute(_LOCK_USERS, {"keys": keys})

    async def touching(
        self, windows: Mapping[DeviceKey, Window]
    ) -> Mapping[DeviceKey, Sequence[Interval]]:
        found: dict[DeviceKey, list[Interval]] = defaultdict(list)
        ranges = {device: (window.start, window.end) for device, window in windows.items()}
        for devices, low, high in clusters(ranges):
            rows = await self._conn.execute(
                _TOUCHING,
                {
                    **owners(devices),
                    "devices": sorted({d.device_id for d in devices}),
                    # Stored intervals last at most STORED_INTERVAL_MAX: a range on start_time.
                    "floor": low - STORED_INTERVAL_MAX,
                    "low": low,
                    "high": high,
                },
            )
            wanted = set(devices)
            for row in rows:
                device = DeviceKey(
                    OrganizationId(row.organization_id), UserId(row.user_id), row.device_id
                )
                interval = _interval(row)
                if device in wanted and windows[device].touches(interval):
                    found[device].append(interval)
        return found

    async def replace(self, replacements: Sequence[Replacement]) -> None:
        if not replacements:
            return
        await self._conn.execute(
            _DELETE_REPLACED,
            [
                {
                    "org": tenant(r.device.organization_id, "intervals replaced"),
                    "user": r.device.user_id,
                    "device": r.device.device_id,
                    "floor": r.plan.replace_start - STORED_INTERVAL_MAX,
                    "start": r.plan.replace_start,
                    "end": r.plan.replace_end,
                }
                for r in replacements
            ],
        )
        fresh = [
            {
                "id": uuid.uuid4(),
                "organization_id": r.device.organization_id,
                "user_id": r.device.user_id,
                "device_id": i.device_id,
                "app_name": i.app_name,
                "domain": i.domain,
                "idle": i.idle,
                "start_time": i.start,
                "end_time": i.end,
            }
            for r in replacements
            for i in r.fresh
        ]
        if fresh:
            await self._conn.execute(app_usage.insert(), fresh)

    async def around(
        self, windows: Mapping[UserKey, tuple[datetime, datetime]]
    ) -> Mapping[UserKey, Sequence[Interval]]:
        found: dict[UserKey, list[Interval]] = defaultdict(list)
        for users, low, high in clusters(windows):
            rows = await self._conn.execute(
                _AROUND,
                {**owners(users), "floor": low - STORED_INTERVAL_MAX, "low": low, "high": high},
            )
            wanted = set(users)
            for row in rows:
                user = UserKey(OrganizationId(row.organization_id), UserId(row.user_id))
                if user in wanted:
                    start, end = windows[user]
                    if row.start_time < end and row.end_time > start:
                        found[user].append(_interval(row))
        return found

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


_LOCK_USERS = sa.text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"
)


def _lock_key(device: DeviceKey) -> int:
    # Per user, not per device: a user's devices share hourly rollups, which are recomputed
    # from all of them under this lock.
    digest = hashlib.blake2b(f"usage/{device.user_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
