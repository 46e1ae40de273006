"""Retention on both databases: old data of each class goes, newer data stays, a second run
removes nothing, and next months' partitions are made ahead (PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.services.test_rollups import _organization_with_users
from workpulse.adapters.db.partitions import partition_name
from workpulse.adapters.db.tables import app_usage, pings, usage_hourly
from workpulse.bootstrap import Container
from workpulse.domain.pings import Ping
from workpulse.domain.retention import DataClass, RetentionPolicy
from workpulse.services import ingest
from workpulse.services.ports import OwnedPing
from workpulse.services.retention import apply_retention, prepare_partitions

# Older than anything other tests store, so dropping "everything before" touches only this.
OLD = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)
NEWER = datetime(2025, 8, 20, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 8, 1, tzinfo=UTC) + timedelta(days=92)  # 92-day cutoffs: 2025-08-01


async def _count(container: Container, table: sa.Table, user_id: uuid.UUID) -> int:
    async with container.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id)
        )
    return int(found or 0)


async def test_retention_removes_old_data_and_keeps_newer(container: Container) -> None:
    organization_id, (user_id,) = await _organization_with_users(container, 1)
    batch = [
        OwnedPing(
            organization_id,
            user_id,
            Ping(
                "laptop",
                "Editor",
                None,
                None,
                "a title",
                False,
                at,
                at + timedelta(minutes=5),
                f"r{n}",
            ),
        )
        for n, at in enumerate((OLD, NEWER))
    ]
    await ingest.store_and_derive(
        batch,
        uow_factory=container.database,
        settings_of=container.settings_of,
        partitions=container.partitions,
    )
    assert await _count(container, pings, user_id) == 2
    assert await _count(container, app_usage, user_id) == 2
    assert await _count(container, usage_hourly, user_id) == 2

    policy = RetentionPolicy(raw_pings_days=92, titles_days=70, intervals_days=92, rollups_days=92)
    removed = await apply_retention(lifecycle=container.lifecycle, policy=policy, now=NOW)
    assert removed[DataClass.RAW_PINGS] >= 1
    assert removed[DataClass.INTERVALS] >= 1
    assert removed[DataClass.ROLLUPS] == 1
    assert await _count(container, pings, user_id) == 1
    assert await _count(container, app_usage, user_id) == 1
    assert await _count(container, usage_hourly, user_id) == 1
    async with container.engine.connect() as conn:
        titles = (
            await conn.execute(
                sa.select(pings.c.start_time, pings.c.title).where(pings.c.user_id == user_id)
            )
        ).all()
    # The titles cutoff (2025-08-23) is after NEWER: its title is blanked, the row kept.
    assert titles == [(NEWER, None)]

    again = await apply_retention(lifecycle=container.lifecycle, policy=policy, now=NOW)
    assert again == dict.fromkeys(again, 0)


async def test_next_months_partitions_are_made_ahead(container: Container) -> None:
    now = datetime(2031, 12, 15, tzinfo=UTC)
    await prepare_partitions(container.partitions, now, months_ahead=2)
    if container.engine.dialect.name != "postgresql":
        return  # SQLite has no partitions; the call is a no-op there
    async with container.engine.connect() as conn:
        for month in (datetime(2031, 12, 1, tzinfo=UTC), datetime(2032, 2, 1, tzinfo=UTC)):
            for table in ("app_usage", "pings", "activity_logs"):
                exists = await conn.scalar(
                    sa.text("SELECT to_regclass(:n) IS NOT NULL"),
                    {"n": partition_name(table, month)},
                )
                assert exists, (table, month)
