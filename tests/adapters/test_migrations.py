"""The migrated schema is the schema the code declares, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.conftest import create_postgres_database, drop_postgres_database, migrated
from workpulse.adapters.db import migrate
from workpulse.adapters.db.engine import create_engine
from workpulse.adapters.db.partitions import Partitions


async def test_the_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(migrate.compare)
            revision = await conn.run_sync(
                lambda c: c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            )
    finally:
        await engine.dispose()
    assert differences == []
    assert revision == migrate.head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_drift_check_notices_a_missing_index(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('drift') / 'drift.db'}"
    else:
        url = await create_postgres_database()
    try:
        await migrated(url)
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP INDEX ix_users_email"))
            async with engine.connect() as conn:
                differences = await conn.run_sync(migrate.compare)
        finally:
            await engine.dispose()
        assert any(diff[0] == "add_index" for diff in differences), differences
    finally:
        if backend == "postgresql":
            await drop_postgres_database(url)


async def test_a_hand_inserted_organization_is_valid(database_url: str) -> None:
    """Operators create organizations with plain SQL; every other column has a default."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            new_id = (
                await conn.execute(
                    sa.text(
                        "INSERT INTO organizations (name, plan_type) VALUES (:n, 'pro')"
                        " RETURNING id"
                    ),
                    {"n": f"Raw {uuid.uuid4().hex[:6]}"},
                )
            ).scalar_one()
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT timezone, settings, created_at FROM organizations WHERE id = :i"
                    ),
                    {"i": new_id},
                )
            ).one()
    finally:
        await engine.dispose()
    assert uuid.UUID(str(new_id))
    assert row.timezone == "UTC"
    assert row.created_at is not None


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 1, 1, hour, minute, tzinfo=UTC)


async def test_each_usage_partition_carries_its_bound_and_exclusion_constraint(
    postgresql_url: str,
) -> None:
    engine = create_engine(postgresql_url, pool_size=1, max_overflow=0)
    try:
        await Partitions(engine).ensure([at(10, 0), datetime(2026, 2, 1, tzinfo=UTC)])
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT c.conrelid::regclass::text AS part, c.contype::text AS contype,"
                        " pg_get_constraintdef(c.oid) AS definition"
                        " FROM pg_constraint c JOIN pg_inherits i ON i.inhrelid = c.conrelid"
                        " WHERE i.inhparent = 'app_usage'::regclass AND c.contype IN ('c', 'x')"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    found: dict[tuple[str, str], str] = {}
    for r in rows:
        found[(r.part, r.contype)] = found.get((r.part, r.contype), "") + r.definition
    for part, bound in (("app_usage_p2026_01", "2026-02-01"), ("app_usage_p2026_02", "2026-03-01")):
        assert bound in found[(part, "c")]
        assert "tstzrange(start_time, end_time, '[)'::text) WITH &&" in found[(part, "x")]


async def test_postgresql_refuses_overlapping_usage_of_one_device(postgresql_url: str) -> None:
    engine = create_engine(postgresql_url, pool_size=1, max_overflow=0)
    await Partitions(engine).ensure([at(10, 0)])
    insert = sa.text(
        "INSERT INTO app_usage"
        " (organization_id, user_id, device_id, app_name, start_time, end_time)"
        " VALUES (:o, :u, 'laptop', 'editor', :s, :e)"
    )
    try:
        async with engine.begin() as conn:
            org = (
                await conn.execute(
                    sa.text("INSERT INTO organizations (name) VALUES ('x') RETURNING id")
                )
            ).scalar_one()
            user = (
                await conn.execute(
                    sa.text(
                        "INSERT INTO users (organization_id, email, name, password_hash)"
                        " VALUES (:o, :e, 'n', 'h') RETURNING id"
                    ),
                    {"o": org, "e": f"{uuid.uuid4().hex}@x.io"},
                )
            ).scalar_one()
            await conn.execute(
                insert,
                {"o": org, "u": user, "s": at(10, 0), "e": at(10, 5)},
            )
            # Touching intervals are fine: [10:05, 10:10) does not overlap [10:00, 10:05).
            await conn.execute(
                insert,
                {"o": org, "u": user, "s": at(10, 5), "e": at(10, 10)},
            )
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert,
                    {
                        "o": org,
                        "u": user,
                        "s": at(10, 4),
                        "e": at(10, 6),
                    },
                )
    finally:
        await engine.dispose()
