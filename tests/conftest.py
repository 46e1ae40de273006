"""Shared fixtures: real SQLite and PostgreSQL databases (one throwaway database per run),
real Redis, and the HTTP app in process.

PostgreSQL and Redis must be reachable: a test that needs them fails (never skips) when they are
not. `TEST_POSTGRES_URL` and `TEST_REDIS_URL` point elsewhere than the local defaults.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from workpulse import bootstrap
from workpulse.adapters.db import migrate
from workpulse.adapters.db.engine import async_url, create_engine
from workpulse.bootstrap import Container
from workpulse.entrypoints.http.app import create_app
from workpulse.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_SECRET = "test-secret-" + "x" * 40
BACKENDS = ["sqlite", "postgresql"]


def test_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: cheap argon2 parameters (hashing cost is not under test here)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_secret": TEST_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "argon2_parallelism": 1,
        "log_format": "console",
        "redis_prefix": f"test-{uuid.uuid4().hex[:12]}",
        **overrides,
    }
    return Settings(_env_file=None, **values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test


async def create_postgres_database() -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(async_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_ADMIN_URL}: {exc}")
    finally:
        await admin.dispose()
    return str(sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(False))


async def drop_postgres_database(url: str) -> None:
    name = sa.make_url(url).database
    admin = create_async_engine(async_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def migrated(url: str) -> str:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url


@pytest.fixture(scope="session")
async def postgresql_url() -> AsyncIterator[str]:
    url = await create_postgres_database()
    try:
        yield await migrated(url)
    finally:
        await drop_postgres_database(url)


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "workpulse.db"
    return await migrated(f"sqlite:///{path}")


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
async def redis_url() -> str:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis is required at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture(scope="session")
async def container(database_url: str) -> AsyncIterator[Container]:
    async with bootstrap.build(test_settings(database_url)) as built:
        yield built


@pytest.fixture(scope="session")
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app in process (its lifespan run), on each database."""
    app = create_app(test_settings(database_url))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000)),
            base_url="http://testserver",
        ) as http,
    ):
        yield http


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read a developer's WORKPULSE_* environment by accident."""
    for key in list(os.environ):
        if key.startswith("WORKPULSE_"):
            monkeypatch.delenv(key)
