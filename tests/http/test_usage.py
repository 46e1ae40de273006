"""`POST /usage/track` and `GET /usage/intervals` over HTTP (both databases)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import Member, register_owner
from tests.conftest import (
    create_postgres_database,
    drop_postgres_database,
    migrated,
    test_settings,
)
from tests.http.contract import assert_error, serve
from workpulse.entrypoints.http.app import create_app
from workpulse.entrypoints.worker import run_worker


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def track(client: httpx.AsyncClient, member: Member, body: Any) -> httpx.Response:
    return await client.post("/usage/track", json=body, headers=member.headers)


async def intervals(client: httpx.AsyncClient, member: Member, **params: str) -> httpx.Response:
    start = (now() - timedelta(hours=6)).isoformat()
    end = (now() + timedelta(hours=1)).isoformat()
    return await client.get(
        "/usage/intervals", params={"from": start, "to": end, **params}, headers=member.headers
    )


async def test_one_ping_is_accepted_with_a_202(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    response = await track(client, owner, {"app_name": "Editor"})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 0)
    assert body["results"][0]["status"] == "accepted"


async def test_every_item_gets_its_own_result_and_a_bad_one_fails_no_other(
    client: httpx.AsyncClient,
) -> None:
    owner = await register_owner(client)
    at = (now() - timedelta(minutes=5)).isoformat()
    pings = [
        {"app_name": "Editor", "timestamp": at},
        {"app_name": "Editor", "timestamp": at},  # a repeat
        {"app_name": 42},
        {"app_name": "Editor", "timestamp": "2026-01-01T10:00:00"},  # no offset
        {"app_name": "Editor", "timestamp": (now() - timedelta(days=30)).isoformat()},
        {"app_name": "Editor", "timestamp": (now() + timedelta(hours=1)).isoformat()},
        {"app_name": "Editor", "tz": "Mars/Base"},
        {"app_name": "Editor", "device_id": "not-mine"},
        "not an object",
        {"app_name": "Browser", "url": "https://WWW.Example.com:8443/a", "timestamp": at},
    ]
    response = await track(client, owner, {"pings": pings})
    assert response.status_code == 202
    body = response.json()
    statuses = [(r["status"], r["reason"]) for r in body["results"]]
    assert statuses == [
        ("accepted", None),
        ("duplicate", None),
        ("rejected", "invalid"),
        ("rejected", "invalid"),
        ("rejected", "too_old"),
        ("rejected", "in_future"),
        ("rejected", "invalid"),
        ("rejected", "invalid"),
        ("rejected", "invalid"),
        ("accepted", None),
    ]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 7)


async def test_accepted_pings_become_intervals_through_the_in_process_worker(
    database_url: str,
) -> None:
    app = create_app(test_settings(database_url), role="serve", background=[run_worker])
    async with serve(app) as client:
        owner = await register_owner(client)
        start = now() - timedelta(hours=1)
        pings = [
            {
                "app_name": "Browser",
                "url": "https://www.github.com/x",
                "timestamp": (start + timedelta(seconds=s)).isoformat(),
            }
            for s in range(0, 60, 10)
        ]
        assert (await track(client, owner, {"pings": pings})).status_code == 202
        found: list[dict[str, Any]] = []
        for _ in range(200):  # bounded wait for the worker
            found = (await intervals(client, owner)).json()
            if found:
                break
            await asyncio.sleep(0.025)
    assert [(i["app_name"], i["domain"]) for i in found] == [("Browser", "github.com")]
    assert datetime.fromisoformat(found[0]["start_time"]) == start
    assert datetime.fromisoformat(found[0]["end_time"]) == start + timedelta(seconds=60)


async def test_more_than_a_thousand_pings_is_too_large(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    response = await track(client, owner, {"pings": [{"app_name": "x"}] * 1001})
    assert_error(response, 413, "PayloadTooLarge")


async def test_malformed_bodies_are_422(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    for content in (b"{not json", b"[1, 2]", b'{"pings": 3}', b"\xff\xfe"):
        response = await client.post(
            "/usage/track",
            content=content,
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert_error(response, 422, "InvalidInput")


async def test_tracking_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/usage/track", json={"app_name": "x"})
    assert_error(response, 401, "Unauthenticated")


async def test_interval_ranges_are_checked(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    later, earlier = now().isoformat(), (now() - timedelta(hours=1)).isoformat()
    response = await client.get(
        "/usage/intervals", params={"from": later, "to": earlier}, headers=owner.headers
    )
    assert_error(response, 422, "InvalidInput")
    response = await client.get(
        "/usage/intervals",
        params={"from": (now() - timedelta(days=40)).isoformat(), "to": later},
        headers=owner.headers,
    )
    assert_error(response, 422, "InvalidInput")


async def test_another_organizations_user_is_not_found(client: httpx.AsyncClient) -> None:
    owner, stranger = await register_owner(client), await register_owner(client)
    response = await intervals(client, owner, user_id=stranger.id)
    assert_error(response, 404, "UserNotFound")


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of this test alone (the shared ones hold other tests' pending pings)."""
    if request.param == "sqlite":
        yield await migrated(f"sqlite:///{tmp_path / 'own.db'}")
        return
    url = await create_postgres_database()
    try:
        yield await migrated(url)
    finally:
        await drop_postgres_database(url)


async def test_a_full_database_queue_answers_503_with_retry_after(empty_database: str) -> None:
    app = create_app(test_settings(empty_database, ingest_backlog_pings=5))  # no worker runs
    async with serve(app) as client:
        owner = await register_owner(client)
        at = now() - timedelta(minutes=10)
        pings = [
            {"app_name": "Editor", "timestamp": (at + timedelta(seconds=s)).isoformat()}
            for s in range(5)
        ]
        assert (await track(client, owner, {"pings": pings})).status_code == 202
        refused = await track(client, owner, {"app_name": "Editor", "timestamp": at.isoformat()})
        assert_error(refused, 503, "Backlogged")
        assert int(refused.headers["Retry-After"]) > 0
        metrics = (await client.get("/metrics")).text
    assert 'workpulse_pings_total{outcome="accepted",reason=""} 5.0' in metrics
    assert 'workpulse_pings_total{outcome="backlogged",reason=""} 1.0' in metrics
    assert "workpulse_ingest_backlog " in metrics
