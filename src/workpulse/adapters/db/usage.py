"""The usage intervals derived from the raw pings (adapters/db/pings.py)."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.batching import NotAnIndexKey, clusters, device_owners, owners
from workpulse.adapters.db.tables import app_usage
from workpulse.adapters.db.tenancy import of_tenant, tenant
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.intervals import Interval, Window
from workpulse.domain.months import STORED_INTERVAL_MAX
from workpulse.services.ports import DeviceKey, Replacement, UserKey


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
# Intervals touching windows: a range on end_time (few intervals end after a live window's
# start); the bound on start_time (stored intervals last at most a day) keeps it a range too.
_TOUCHING = sa.select(app_usage).where(
    NotAnIndexKey(app_usage.c.organization_id).in_(sa.bindparam("orgs", expanding=True)),
    app_usage.c.user_id.in_(sa.bindparam("users", expanding=True)),
    NotAnIndexKey(app_usage.c.device_id).in_(sa.bindparam("devices", expanding=True)),
    NotAnIndexKey(app_usage.c.start_time) >= sa.bindparam("floor"),
    NotAnIndexKey(app_usage.c.start_time) <= sa.bindparam("high"),
    app_usage.c.end_time >= sa.bindparam("low"),
)
_AROUND = sa.select(app_usage).where(
    NotAnIndexKey(app_usage.c.organization_id).in_(sa.bindparam("orgs", expanding=True)),
    app_usage.c.user_id.in_(sa.bindparam("users", expanding=True)),
    NotAnIndexKey(app_usage.c.start_time) >= sa.bindparam("floor"),
    NotAnIndexKey(app_usage.c.start_time) < sa.bindparam("high"),
    app_usage.c.end_time > sa.bindparam("low"),
)
# Executed with one parameter set per device (one round trip): every stored interval of the
# device that overlaps [start, end).
_DELETE_REPLACED = app_usage.delete().where(
    NotAnIndexKey(app_usage.c.organization_id) == sa.bindparam("org", type_=sa.Uuid()),
    app_usage.c.user_id == sa.bindparam("user"),
    NotAnIndexKey(app_usage.c.device_id) == sa.bindparam("device", type_=sa.String()),
    NotAnIndexKey(app_usage.c.start_time) >= sa.bindparam("floor"),
    NotAnIndexKey(app_usage.c.start_time) < sa.bindparam("end"),
    app_usage.c.end_time > sa.bindparam("start"),
)


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
                    **device_owners(devices),
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
