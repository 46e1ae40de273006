"""`GET /presence` on both databases: who sees whose presence, and the current app within the
privacy settings. Pings make agents online (written in the background every 50 ms here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.api import Member, add_member, register_owner
from tests.conftest import test_settings
from tests.http.contract import assert_error
from workpulse.entrypoints.http.app import create_app

WAIT = 15.0  # a bound for the background write, never a measure of it


@pytest.fixture(scope="module")
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(test_settings(database_url, presence_flush_seconds=0.05))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client


async def presence_of(http: httpx.AsyncClient, viewer: Member) -> dict[str, dict[str, Any]]:
    response = await http.get("/presence", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return {user["user_id"]: user for user in response.json()["users"]}


async def ping_until_online(http: httpx.AsyncClient, agent: Member, viewer: Member) -> None:
    ping = {"app_name": "Firefox", "url": "https://docs.python.org/3/"}
    tracked = await http.post("/usage/track", json=ping, headers=agent.headers)
    assert tracked.status_code == 202, tracked.text
    async with asyncio.timeout(WAIT):
        while True:
            if (await presence_of(http, viewer))[agent.id]["status"] == "online":
                return
            await asyncio.sleep(0.02)


async def test_managers_see_every_member_employees_only_themselves_outsiders_nothing(
    http: httpx.AsyncClient,
) -> None:
    owner = await register_owner(http)
    manager = await add_member(http, owner, "manager")
    alice = await add_member(http, owner, "employee")
    bob = await add_member(http, owner, "employee")
    outsider = await register_owner(http, "Elsewhere")
    await ping_until_online(http, alice, owner)

    members = {owner.id, manager.id, alice.id, bob.id}
    for viewer in (owner, manager):
        seen = await presence_of(http, viewer)
        assert set(seen) == members
        assert seen[alice.id]["current_app"] == {
            "app_name": "Firefox",
            "domain": "docs.python.org",
        }
        assert seen[alice.id]["last_seen"] is not None
        assert seen[bob.id] == {
            "user_id": bob.id,
            "name": "Employee",
            "status": "offline",
            "last_seen": None,
            "current_app": None,
        }
    mine = await presence_of(http, alice)
    assert set(mine) == {alice.id}
    assert mine[alice.id]["status"] == "online"
    assert mine[alice.id]["current_app"] is not None
    assert set(await presence_of(http, bob)) == {bob.id}
    assert set(await presence_of(http, outsider)) == {outsider.id}


async def test_with_team_presence_employees_see_who_is_online_but_not_what_they_do(
    http: httpx.AsyncClient,
) -> None:
    owner = await register_owner(http)
    changed = await http.patch(
        "/organizations/current",
        json={"settings": {"employees_see_team": True, "privacy": {"urls": "none"}}},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    alice = await add_member(http, owner, "employee")
    bob = await add_member(http, owner, "employee")
    await ping_until_online(http, alice, bob)

    seen_by_bob = await presence_of(http, bob)
    assert set(seen_by_bob) == {owner.id, alice.id, bob.id}
    assert seen_by_bob[alice.id]["status"] == "online"
    assert seen_by_bob[alice.id]["current_app"] is None
    # URLs are off in this organization: the app without its domain.
    assert (await presence_of(http, alice))[alice.id]["current_app"] == {
        "app_name": "Firefox",
        "domain": None,
    }


async def test_presence_needs_an_access_token(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/presence"), 401, "Unauthenticated")
