"""Socket.IO end to end on the embedded product: `workpulse serve` (SQLite, no Redis) on a free
port, real `socketio.AsyncClient`s over WebSocket, changes made over HTTP.

"Nothing reached X" is checked without waiting for a silence: X then causes an event of its
own, which is emitted after the others by the same ordered relay, and every event X received
before it must concern X.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import websockets

from tests.api import Member, add_member, login, register_owner
from tests.e2e.process import environment, serving

# Generous: reaching it means the event is not coming, never that it is slow.
EVENT_TIMEOUT = 15.0
Event = tuple[str, dict[str, Any]]


class Listener:
    """A real Socket.IO client that keeps every event it receives, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: list[Event] = []
        self.refused: dict[str, Any] | None = None
        self.dropped = asyncio.Event()
        self._news = asyncio.Event()
        self.client.on("*", self._event)
        self.client.on("connect_error", self._refused)
        self.client.on("disconnect", self._disconnected)

    async def _event(self, name: str, data: dict[str, Any]) -> None:
        self.received.append((name, data))
        self._news.set()

    async def _refused(self, data: dict[str, Any]) -> None:
        self.refused = data

    async def _disconnected(self, reason: object = None) -> None:
        self.dropped.set()

    async def connect(self, base_url: str, token: str | None) -> None:
        await self.client.connect(
            base_url,
            auth=None if token is None else {"token": token},
            transports=["websocket"],
            socketio_path="socket.io",
            wait_timeout=EVENT_TIMEOUT,
        )

    async def wait_for(self, name: str, where: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first event received (so far or later) named `name` that `where` accepts."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                self._news.clear()
                for event, data in self.received:
                    if event == name and where(data):
                        return data
                await self._news.wait()

    def before(self, name: str, where: Callable[[dict[str, Any]], bool]) -> list[Event]:
        """The events received before the first match."""
        for index, (event, data) in enumerate(self.received):
            if event == name and where(data):
                return self.received[:index]
        raise AssertionError(f"no {name} received")

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@asynccontextmanager
async def listening(base_url: str, member: Member) -> AsyncIterator[Listener]:
    listener = Listener()
    await listener.connect(base_url, member.access_token)
    try:
        yield listener
    finally:
        await listener.close()


def about(user: Member) -> Callable[[dict[str, Any]], bool]:
    """An event payload about `user` (SESSION_UPDATE carries the session, others the user)."""

    def matches(data: dict[str, Any]) -> bool:
        subject = data.get("session", data)
        return bool(subject.get("user_id") == user.id)

    return matches


def session_change(user: Member, change: str) -> Callable[[dict[str, Any]], bool]:
    return lambda data: about(user)(data) and data["change"] == change


def same_session(event: dict[str, Any], answer: dict[str, Any]) -> bool:
    """The event's session is the HTTP answer's (instants compared as instants)."""
    instants = ("start_time", "end_time", "last_activity_at")

    def parsed(session: dict[str, Any]) -> dict[str, Any]:
        return {
            k: datetime.fromisoformat(v) if k in instants and v else v for k, v in session.items()
        }

    return parsed(event) == parsed(answer)


async def refusal(base_url: str, token: str | None) -> dict[str, Any]:
    listener = Listener()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await listener.connect(base_url, token)
    await listener.close()
    assert listener.refused is not None
    return listener.refused


async def sockets_held(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    found = re.search(r"^workpulse_realtime_sockets (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return int(float(found.group(1)))


async def until_sockets(http: httpx.AsyncClient, count: int) -> None:
    async with asyncio.timeout(EVENT_TIMEOUT):
        while True:
            if await sockets_held(http) == count:
                return
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """`workpulse serve` with no configuration but a short presence expiry."""
    directory: Path = tmp_path_factory.mktemp("embedded-realtime")
    env = environment(
        WORKPULSE_PRESENCE_TTL_SECONDS="1.5",
        WORKPULSE_PRESENCE_FLUSH_SECONDS="0.1",
        WORKPULSE_REALTIME_PING_INTERVAL_SECONDS="7",
        WORKPULSE_REALTIME_PING_TIMEOUT_SECONDS="6",
    )
    async with serving("serve", cwd=directory, env=env) as (process, first):
        assert first.status_code == 200, process.output()
        yield process.base_url


@pytest.fixture
async def http(embedded: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=embedded, timeout=30) as client:
        yield client


async def test_connect_is_refused_without_a_token_with_a_bad_one_and_with_a_revoked_one(
    embedded: str, http: httpx.AsyncClient
) -> None:
    missing = await refusal(embedded, None)
    assert missing["data"]["error"] == "Unauthenticated"
    assert "auth: {token" in missing["message"]

    bad = await refusal(embedded, "not-a-token")
    assert bad["data"] == {"error": "InvalidToken", "detail": bad["message"]}

    owner = await register_owner(http)
    assert (await http.post("/auth/logout", headers=owner.headers)).status_code == 204
    revoked = await refusal(embedded, owner.access_token)
    assert revoked["data"]["error"] == "SessionRevoked"


async def test_session_events_reach_the_user_and_the_managers_and_nobody_else(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    manager = await add_member(http, owner, "manager")
    alice = await add_member(http, owner, "employee")
    bob = await add_member(http, owner, "employee")
    stranger = await register_owner(http, "Elsewhere")
    async with (
        listening(embedded, owner) as owner_socket,
        listening(embedded, manager) as manager_socket,
        listening(embedded, alice) as alice_socket,
        listening(embedded, bob) as bob_socket,
        listening(embedded, stranger) as stranger_socket,
    ):
        started = await http.post("/sessions/start", json={}, headers=alice.headers)
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]
        activity = await http.post(
            f"/sessions/{session_id}/activity",
            json={"activityType": "active", "durationSeconds": 30},
            headers=alice.headers,
        )
        assert activity.status_code == 201, activity.text
        stopped = await http.post(f"/sessions/{session_id}/stop", headers=alice.headers)
        assert stopped.status_code == 201, stopped.text

        for socket in (owner_socket, manager_socket, alice_socket):
            start = await socket.wait_for("SESSION_UPDATE", session_change(alice, "start"))
            assert start["session"]["id"] == session_id
            assert start["session"]["status"] == "active"
            added = await socket.wait_for("SESSION_UPDATE", session_change(alice, "activity"))
            assert added["session"]["total_active_seconds"] == 30
            stop = await socket.wait_for("SESSION_UPDATE", session_change(alice, "stop"))
            assert same_session(stop["session"], stopped.json())

        # Bob and the stranger each cause an event of their own, emitted after Alice's.
        for member, socket in ((bob, bob_socket), (stranger, stranger_socket)):
            own = await http.post("/sessions/start", json={}, headers=member.headers)
            assert own.status_code == 201, own.text
            await socket.wait_for("SESSION_UPDATE", session_change(member, "start"))
            earlier = socket.before("SESSION_UPDATE", session_change(member, "start"))
            assert all(about(member)(data) for _, data in earlier), earlier


async def test_no_event_is_sent_for_a_change_that_rolled_back(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    async with listening(embedded, owner) as socket:
        first = await http.post("/sessions/start", json={}, headers=owner.headers)
        assert first.status_code == 201, first.text
        again = await http.post("/sessions/start", json={}, headers=owner.headers)
        assert again.status_code == 409, again.text
        stopped = await http.post(f"/sessions/{first.json()['id']}/stop", headers=owner.headers)
        assert stopped.status_code == 201, stopped.text
        await socket.wait_for("SESSION_UPDATE", session_change(owner, "stop"))
        updates = [data["change"] for event, data in socket.received if event == "SESSION_UPDATE"]
    assert updates == ["start", "stop"]


async def test_logout_and_refresh_token_reuse_disconnect_the_device_sessions_sockets(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    other_device = (await login(http, owner.email)).json()
    async with (
        listening(embedded, owner) as logged_out,
        listening(embedded, owner) as same_device,
    ):
        other = Listener()
        await other.connect(embedded, other_device["access_token"])
        assert (await http.post("/auth/logout", headers=owner.headers)).status_code == 204
        async with asyncio.timeout(EVENT_TIMEOUT):
            await logged_out.dropped.wait()
            await same_device.dropped.wait()
        assert other.client.connected  # another device session is untouched

        token = other_device["refresh_token"]
        assert (await http.post("/auth/refresh", json={"refresh_token": token})).status_code == 200
        reused = await http.post("/auth/refresh", json={"refresh_token": token})
        assert reused.status_code == 401, reused.text
        async with asyncio.timeout(EVENT_TIMEOUT):
            await other.dropped.wait()
        await other.close()


async def test_two_tabs_closing_one_keeps_the_user_online_closing_both_sends_user_offline(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    alice = await add_member(http, owner, "employee")
    async with listening(embedded, owner) as watcher:
        base = await sockets_held(http)
        first = Listener()
        await first.connect(embedded, alice.access_token)
        await watcher.wait_for("USER_ONLINE", about(alice))
        second = Listener()
        await second.connect(embedded, alice.access_token)
        await until_sockets(http, base + 2)

        await first.close()
        await until_sockets(http, base + 1)
        # Alice causes an event: an USER_OFFLINE from the first close would have come before.
        assert (await http.post("/sessions/start", json={}, headers=alice.headers)).is_success
        await watcher.wait_for("SESSION_UPDATE", session_change(alice, "start"))
        presence = (await http.get("/presence", headers=owner.headers)).json()
        (mine,) = [u for u in presence["users"] if u["user_id"] == alice.id]
        assert mine["status"] == "online"

        await second.close()
        offline = await watcher.wait_for("USER_OFFLINE", about(alice))
        assert offline == {
            "user_id": alice.id,
            "organization_id": alice.organization_id,
            "status": "offline",
            "at": offline["at"],
        }
        transitions = [e for e, data in watcher.received if about(alice)(data)]
    assert transitions == ["USER_ONLINE", "SESSION_UPDATE", "USER_OFFLINE"]


async def test_pings_make_an_agent_online_and_idle_and_presence_shows_the_current_app(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    alice = await add_member(http, owner, "employee")
    async with listening(embedded, owner) as watcher:
        ping = {"app_name": "Firefox", "url": "https://docs.python.org/3/"}
        tracked = await http.post("/usage/track", json=ping, headers=alice.headers)
        assert tracked.status_code == 202, tracked.text
        await watcher.wait_for("USER_ONLINE", about(alice))
        presence = (await http.get("/presence", headers=owner.headers)).json()
        (seen,) = [u for u in presence["users"] if u["user_id"] == alice.id]
        assert seen["status"] == "online"
        assert seen["current_app"] == {"app_name": "Firefox", "domain": "docs.python.org"}

        idle = {"app_name": "Firefox", "idle": True}
        assert (await http.post("/usage/track", json=idle, headers=alice.headers)).is_success
        async with asyncio.timeout(EVENT_TIMEOUT):
            while True:
                presence = (await http.get("/presence", headers=owner.headers)).json()
                (seen,) = [u for u in presence["users"] if u["user_id"] == alice.id]
                if seen["status"] == "idle":
                    break
                await asyncio.sleep(0.05)


async def test_the_server_sets_the_ping_interval_and_timeout_it_is_configured_with(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    async with listening(embedded, owner) as socket:
        assert (socket.client.eio.ping_interval, socket.client.eio.ping_timeout) == (7, 6)


async def test_a_client_that_stops_answering_is_dropped_by_the_ping_timeout(
    tmp_path: Path,
) -> None:
    """A raw Engine.IO client that connects, authenticates, then neither reads nor writes: the
    server closes it after ping interval + timeout, and its user goes offline."""
    env = environment(
        WORKPULSE_REALTIME_PING_INTERVAL_SECONDS="1",
        WORKPULSE_REALTIME_PING_TIMEOUT_SECONDS="2",
    )
    async with (
        serving("serve", cwd=tmp_path, env=env) as (server, _),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        owner = await register_owner(http)
        alice = await add_member(http, owner, "employee")
        async with listening(server.base_url, owner) as watcher:
            url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
            async with websockets.connect(url) as dead:
                opened = await dead.recv()
                assert isinstance(opened, str)
                assert opened.startswith("0")
                await dead.send("40" + json.dumps({"token": alice.access_token}))
                accepted = await dead.recv()
                assert isinstance(accepted, str)
                assert accepted.startswith("40")
                await watcher.wait_for("USER_ONLINE", about(alice))
                # Silence from here on: no pong, nothing read.
                offline = await watcher.wait_for("USER_OFFLINE", about(alice))
            assert offline["status"] == "offline"
            assert watcher.client.connected  # the watcher answers its pings and stays


async def test_sigterm_with_sockets_open_closes_them_and_exits_cleanly(tmp_path: Path) -> None:
    async with (
        serving("serve", cwd=tmp_path, env=environment()) as (server, _),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        owner = await register_owner(http)
        async with listening(server.base_url, owner) as socket:
            await socket.wait_for("USER_ONLINE", about(owner))
            assert await server.stop() == 0
            async with asyncio.timeout(EVENT_TIMEOUT):
                await socket.dropped.wait()


async def test_deactivating_a_member_disconnects_their_sockets(
    embedded: str, http: httpx.AsyncClient
) -> None:
    owner = await register_owner(http)
    alice = await add_member(http, owner, "employee")
    async with listening(embedded, owner) as watcher, listening(embedded, alice) as socket:
        changed = await http.patch(
            f"/users/{alice.id}", json={"active": False}, headers=owner.headers
        )
        assert changed.status_code == 200, changed.text
        async with asyncio.timeout(EVENT_TIMEOUT):
            await socket.dropped.wait()
        await watcher.wait_for("USER_OFFLINE", about(alice))
        assert watcher.client.connected
