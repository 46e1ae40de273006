"""The PostgreSQL + Redis deployment: `workpulse migrate` and `workpulse api` as real processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.api import PASSWORD
from tests.conftest import TEST_SECRET, create_postgres_database, drop_postgres_database
from tests.e2e.process import entries, environment, free_port, run, serving
from workpulse.adapters.db import migrate
from workpulse.adapters.db.engine import create_engine


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards."""
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def _versions(url: str) -> list[str]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return [str(version) for (version,) in rows]
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
            return set(names)
    finally:
        await engine.dispose()


def _postgresql(url: str, **more: str) -> dict[str, str]:
    return environment(WORKPULSE_DATABASE_URL=url, WORKPULSE_JWT_SECRET=TEST_SECRET, **more)


async def test_migrate_brings_a_fresh_database_to_head_and_running_it_again_is_harmless(
    fresh_database: str, tmp_path: Path
) -> None:
    first = await run("migrate", cwd=tmp_path, env=_postgresql(fresh_database))
    assert first.returncode == 0, first.stderr
    assert await _versions(fresh_database) == [migrate.head()]

    second = await run("migrate", cwd=tmp_path, env=_postgresql(fresh_database))
    assert second.returncode == 0, second.stderr
    assert await _versions(fresh_database) == [migrate.head()]
    (migrated,) = [
        entry
        for entry in map(json.loads, second.stderr.splitlines())
        if entry["event"] == "migrated"
    ]
    assert migrated["before"] == migrated["after"] == migrate.head()
    assert not entries(tmp_path), "no SQLite file or secret in PostgreSQL mode"


async def test_api_with_postgresql_and_redis_reports_both_up(
    postgresql_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = _postgresql(postgresql_url, WORKPULSE_REDIS_URL=redis_url)
    async with serving("api", cwd=tmp_path, env=env) as (api, health):
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok"
        assert body["info"]["database"]["status"] == "up"
        assert body["info"]["redis"]["status"] == "up"
        assert await api.stop() == 0, api.output()


async def test_api_does_not_migrate_a_fresh_postgresql_database(
    fresh_database: str, tmp_path: Path
) -> None:
    async with serving("api", cwd=tmp_path, env=_postgresql(fresh_database)) as (api, health):
        assert health.status_code == 200, health.text
        assert await api.stop() == 0, api.output()

    assert await _tables(fresh_database) == set()


async def test_api_without_its_database_starts_and_answers_503_never_500(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/workpulse"
    async with serving("api", cwd=tmp_path, env=_postgresql(nowhere)) as (api, health):
        async with httpx.AsyncClient(base_url=api.base_url) as client:
            login = await client.post(
                "/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
            )
        assert await api.stop() == 0, api.output()

    assert health.status_code == 503, health.text
    body = health.json()
    assert body["status"] == "error"
    assert body["error"]["database"]["status"] == "down"
    assert "database" not in body.get("info", {})
    assert int(health.headers["Retry-After"]) > 0
    assert login.status_code == 503, login.text
    assert not any(e.get("status") == 500 for e in api.logs())
