"""Two `workpulse api` processes on one PostgreSQL: 1,000 parallel activity requests on one
session, half through each process, add up to exactly 60,000 seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.api import PASSWORD, unique_email
from tests.conftest import TEST_SECRET
from tests.e2e.process import environment, serving


async def test_a_thousand_parallel_minutes_through_two_api_processes_add_up_exactly(
    postgresql_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = environment(
        WORKPULSE_DATABASE_URL=postgresql_url,
        WORKPULSE_REDIS_URL=redis_url,
        WORKPULSE_JWT_SECRET=TEST_SECRET,
    )
    async with (
        serving("api", cwd=tmp_path, env=env) as (one, _),
        serving("api", cwd=tmp_path, env=env) as (two, _),
        httpx.AsyncClient(base_url=one.base_url, timeout=30) as first,
        httpx.AsyncClient(base_url=two.base_url, timeout=30) as second,
    ):
        registered = await first.post(
            "/auth/register",
            json={
                "email": unique_email("scale"),
                "password": PASSWORD,
                "name": "Scale",
                "organization_name": "Scale",
            },
        )
        assert registered.status_code == 201, registered.text
        headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        started = await second.post(
            "/sessions/start",
            json={"start_time": (datetime.now(UTC) - timedelta(hours=20)).isoformat()},
            headers=headers,
        )
        assert started.status_code == 201, started.text
        path = f"/sessions/{started.json()['id']}/activity"
        body = {"activityType": "active", "durationSeconds": 60}
        limits = asyncio.Semaphore(64)  # 64 requests in flight at a time, all 1,000 in parallel

        async def post(client: httpx.AsyncClient) -> int:
            async with limits:
                return (await client.post(path, json=body, headers=headers)).status_code

        codes = await asyncio.gather(*(post(first if k % 2 else second) for k in range(1000)))
        assert codes == [201] * 1000
        (session,) = (await first.get("/sessions/active", headers=headers)).json()
    assert session["total_active_seconds"] == 60_000
    assert session["version"] == 1001
