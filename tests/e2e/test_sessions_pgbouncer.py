"""Activity through a real PgBouncer in transaction pooling: the one-event path runs its
statements outside a transaction (each its own), so every statement must stand alone on
whichever server connection PgBouncer hands it. 32 client connections share 2 server ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from tests.api import register_owner
from tests.conftest import test_settings
from tests.e2e.process import free_port, pgbouncer
from workpulse.entrypoints.http.app import create_app

CLIENTS = 32


@pytest.fixture
async def bouncer_url(postgresql_url: str, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    direct = sa.make_url(postgresql_url)
    async with pgbouncer(
        tmp_path, port, server=(direct.host or "127.0.0.1", direct.port or 5432), pool_size=2
    ):
        yield direct.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


async def test_activity_through_pgbouncer_counts_every_event_exactly_once(
    bouncer_url: str,
) -> None:
    settings = test_settings(
        bouncer_url, database_pooler="pgbouncer", db_pool_size=CLIENTS, db_max_overflow=0
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        owner = await register_owner(client)
        back = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
        started = await client.post(
            "/sessions/start", json={"start_time": back}, headers=owner.headers
        )
        assert started.status_code == 201, started.text
        url = f"/sessions/{started.json()['id']}/activity"

        async def post(body: dict[str, object]) -> httpx.Response:
            return await client.post(url, json=body, headers=owner.headers)

        plain = [{"activityType": "active", "durationSeconds": 60} for _ in range(100)]
        retried = [{"activityType": "idle", "durationSeconds": 30, "event_id": "r"}] * 20
        usage = [
            {"activityType": "active", "durationSeconds": 5, "appName": "Editor", "event_id": "u"}
        ] * 10
        answers = await asyncio.gather(*(post(body) for body in plain + retried + usage))
        assert [a.status_code for a in answers] == [201] * 130, {a.text for a in answers}
        duplicates = [a.json()["activity"]["duplicate"] for a in answers]
        assert duplicates.count(False) == 102
        active = await client.get("/sessions/active", headers=owner.headers)
        (session,) = active.json()
        assert (session["total_active_seconds"], session["total_idle_seconds"]) == (6005, 30)
        assert session["version"] == 103
