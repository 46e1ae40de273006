"""Socket.IO across `workpulse api` processes on PostgreSQL and Redis: an event caused through
one process reaches sockets held by another, revocations disconnect sockets on every process,
and the users of a SIGKILLed process go offline once their presence expires."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import Member, add_member, register_owner
from tests.conftest import TEST_SECRET, test_settings
from tests.e2e.process import Running, environment, serving
from tests.e2e.test_realtime import EVENT_TIMEOUT, Listener, about, listening, session_change
from workpulse import bootstrap
from workpulse.domain.ids import OrganizationId, UserId


def cluster_environment(postgresql_url: str, redis_url: str) -> dict[str, str]:
    return environment(
        WORKPULSE_DATABASE_URL=postgresql_url,
        WORKPULSE_REDIS_URL=redis_url,
        WORKPULSE_JWT_SECRET=TEST_SECRET,
        WORKPULSE_PRESENCE_TTL_SECONDS="1.5",
        WORKPULSE_PRESENCE_FLUSH_SECONDS="0.1",
    )


@pytest.fixture
async def two_apis(
    postgresql_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Running, Running]]:
    env = cluster_environment(postgresql_url, redis_url)
    async with (
        serving("api", cwd=tmp_path, env=env) as (one, _),
        serving("api", cwd=tmp_path, env=env) as (two, _),
    ):
        yield one, two


async def test_a_change_made_through_one_process_reaches_a_client_on_the_other(
    two_apis: tuple[Running, Running],
) -> None:
    one, two = two_apis
    async with httpx.AsyncClient(base_url=one.base_url, timeout=30) as http:
        owner = await register_owner(http)
        alice = await add_member(http, owner, "employee")
        async with (
            listening(two.base_url, owner) as watcher,
            listening(one.base_url, alice),
        ):
            await watcher.wait_for("USER_ONLINE", about(alice))
            started = await http.post("/sessions/start", json={}, headers=alice.headers)
            assert started.status_code == 201, started.text
            update = await watcher.wait_for("SESSION_UPDATE", session_change(alice, "start"))
            assert update["session"]["id"] == started.json()["id"]
            assert update["session"]["organization_id"] == owner.organization_id


async def test_logout_through_one_process_disconnects_the_sessions_sockets_on_both(
    two_apis: tuple[Running, Running],
) -> None:
    one, two = two_apis
    async with httpx.AsyncClient(base_url=one.base_url, timeout=30) as http:
        owner = await register_owner(http)
        alice = await add_member(http, owner, "employee")
        async with (
            listening(two.base_url, owner) as watcher,
            listening(one.base_url, alice) as on_one,
            listening(two.base_url, alice) as on_two,
        ):
            await watcher.wait_for("USER_ONLINE", about(alice))
            assert (await http.post("/auth/logout", headers=alice.headers)).status_code == 204
            async with asyncio.timeout(EVENT_TIMEOUT):
                await on_one.dropped.wait()
                await on_two.dropped.wait()
            offline = await watcher.wait_for("USER_OFFLINE", about(alice))
            assert offline["organization_id"] == alice.organization_id
            transitions = [e for e, data in watcher.received if about(alice)(data)]
        assert transitions == ["USER_ONLINE", "USER_OFFLINE"]


async def test_the_users_of_a_killed_process_go_offline_after_the_expiry(
    two_apis: tuple[Running, Running],
) -> None:
    doomed, survivor = two_apis
    async with httpx.AsyncClient(base_url=survivor.base_url, timeout=30) as http:
        owner = await register_owner(http)
        alice = await add_member(http, owner, "employee")
        async with listening(survivor.base_url, owner) as watcher:
            on_doomed = Listener()
            await on_doomed.connect(doomed.base_url, alice.access_token)
            await watcher.wait_for("USER_ONLINE", about(alice))
            presence = (await http.get("/presence", headers=owner.headers)).json()
            assert {u["user_id"]: u["status"] for u in presence["users"]}[alice.id] == "online"

            doomed.proc.kill()  # SIGKILL: no disconnect, no goodbye to Redis
            await doomed.proc.wait()
            offline = await watcher.wait_for("USER_OFFLINE", about(alice))
            assert offline["status"] == "offline"
            presence = (await http.get("/presence", headers=owner.headers)).json()
            assert {u["user_id"]: u["status"] for u in presence["users"]}[alice.id] == "offline"
            await on_doomed.close()


async def test_an_alert_published_by_another_process_follows_the_same_rules(
    postgresql_url: str, redis_url: str, tmp_path: Path
) -> None:
    """What the scheduler's jobs will do: publish through their own container's notifier, with
    no Socket.IO server in their process. Any event name gets the audience rule."""
    env = cluster_environment(postgresql_url, redis_url)
    settings = test_settings(
        postgresql_url, redis_url=redis_url, redis_prefix=env["WORKPULSE_REDIS_PREFIX"]
    )
    async with (
        serving("api", cwd=tmp_path, env=env) as (api, _),
        httpx.AsyncClient(base_url=api.base_url, timeout=30) as http,
        bootstrap.build(settings, role="scheduler") as scheduler,
    ):
        owner = await register_owner(http)
        alice = await add_member(http, owner, "employee")
        bob = await add_member(http, owner, "employee")
        stranger = await register_owner(http, "Elsewhere")

        async def alert(event: str, member: Member) -> None:
            await scheduler.notifier.publish(
                event,
                {"alert": {"user_id": member.id, "type": event.split("_")[0].lower()}},
                organization_id=OrganizationId(uuid.UUID(member.organization_id)),
                user_id=UserId(uuid.UUID(member.id)),
            )

        async with (
            listening(api.base_url, owner) as owner_socket,
            listening(api.base_url, alice) as alice_socket,
            listening(api.base_url, bob) as bob_socket,
            listening(api.base_url, stranger) as stranger_socket,
        ):
            await alert("INACTIVE_ALERT", alice)
            await alert("OVERTIME_ALERT", alice)
            for socket in (owner_socket, alice_socket):
                inactive = await socket.wait_for("INACTIVE_ALERT", alert_about(alice))
                assert inactive == {"alert": {"user_id": alice.id, "type": "inactive"}}
                await socket.wait_for("OVERTIME_ALERT", alert_about(alice))
            for member, socket in ((bob, bob_socket), (stranger, stranger_socket)):
                await alert("OVERTIME_ALERT", member)
                await socket.wait_for("OVERTIME_ALERT", alert_about(member))
                earlier = socket.before("OVERTIME_ALERT", alert_about(member))
                assert [e for e, data in earlier if e.endswith("_ALERT")] == []


def alert_about(member: Member) -> Callable[[dict[str, Any]], bool]:
    return lambda data: bool(data["alert"]["user_id"] == member.id)
