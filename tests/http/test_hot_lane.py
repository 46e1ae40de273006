"""The hot lane (entrypoints/http/hot.py) answers exactly as FastAPI's routes of the same
operations do: the same app twice, on one database, with and without the lane; the same
requests, the same statuses and bodies (ids and times apart, where each call makes new ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api import Member, register_owner
from tests.conftest import test_settings
from tests.http.contract import serve
from workpulse.entrypoints.http.app import create_app


def ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def _shape(response: httpx.Response) -> tuple[int, Any]:
    """Status and body, with what differs between two equal calls (ids, times) blanked."""
    body = response.json()

    def blank(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: blank(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        if key in {"id", "event_id", "timestamp", "last_activity_at", "version"}:
            return "…"
        if key.startswith("total_"):
            return "…"
        return value

    return response.status_code, blank(body)


async def test_the_lane_answers_as_fastapi_does(sqlite_url: str) -> None:
    settings = test_settings(sqlite_url)
    lane, plain = create_app(settings, migrate=True), create_app(settings, hot_lane=False)
    async with serve(lane) as fast, serve(plain) as slow:
        owner: Member = await register_owner(fast)
        started = await fast.post(
            "/sessions/start",
            json={"start_time": (datetime.now(UTC) - timedelta(hours=2)).isoformat()},
            headers=owner.headers,
        )
        session = started.json()["id"]
        activity = f"/sessions/{session}/activity"
        requests: list[tuple[str, dict[str, Any]]] = [
            ("/usage/track", {"json": {"app_name": "Editor", "timestamp": "{ago}"}}),
            ("/usage/track", {"json": {"pings": [{"app_name": 1}, "x", {"app_name": "A"}]}}),
            ("/usage/track", {"json": {"pings": [{"app_name": "A"}] * 1001}}),
            ("/usage/track", {"json": {"pings": "nope"}}),
            ("/usage/track", {"json": [1, 2]}),
            ("/usage/track", {"content": b"{not json"}),
            ("/usage/track", {"json": {"app_name": "A", "timestamp": "2026-01-01T10:00:00"}}),
            (activity, {"json": {"activityType": "active", "durationSeconds": 5}}),
            (activity, {"json": {"activityType": "busy", "durationSeconds": 5}}),
            (activity, {"json": {"activityType": "active", "durationSeconds": "5"}}),
            (activity, {"json": {"activityType": "active"}}),
            (activity, {"json": {"activityType": "active", "durationSeconds": 0}}),
            (activity, {"json": {"activityType": "idle", "durationSeconds": 5, "appName": "a\0"}}),
            (activity, {"content": b""}),
            (activity, {"content": b"[1"}),
            ("/sessions/not-a-uuid/activity", {"json": {"activityType": "active"}}),
            (f"/sessions/{session[:-1]}0/activity", {"json": {"activityType": "active"}}),
        ]
        calls = 0
        for path, kwargs in requests:
            for headers in (owner.headers, {}, {"Authorization": "Bearer nope"}):
                replies = []
                for client in (fast, slow):
                    calls += 1  # a ping of its own each time, or the second is a duplicate
                    sent = dict(kwargs)
                    if sent.get("json", {}) == {"app_name": "Editor", "timestamp": "{ago}"}:
                        sent["json"] = {"app_name": "Editor", "timestamp": ago(calls)}
                    # Raw bodies are sent as JSON: the lane reads a body as JSON whatever its
                    # type, as /usage/track always did; FastAPI reads a body without a JSON
                    # content type as not an object (a 422 as well, another message).
                    typed = {**headers, "Content-Type": "application/json"}
                    replies.append(await client.post(path, headers=typed, **sent))
                a, b = replies
                assert _shape(a) == _shape(b), (path, kwargs, headers, a.text, b.text)
                assert a.headers["content-type"] == b.headers["content-type"]
                assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
        # The lane's own limit: a body over it is refused before it is read whole.
        huge = await fast.post(activity, content=b" " * (64 * 1024 + 1), headers=owner.headers)
        assert huge.status_code == 413
        assert huge.json()["error"] == "PayloadTooLarge"
        # Counted under the route's template, as FastAPI's routes are.
        metrics = (await fast.get("/metrics")).text
        assert 'route="/sessions/{session_id}/activity",status="201"' in metrics
        assert 'route="/usage/track",status="202"' in metrics


async def test_cors_and_request_ids_apply_to_the_lane(sqlite_url: str) -> None:
    origin = "https://app.example"
    app = create_app(test_settings(sqlite_url, cors_origins=(origin,)), migrate=True)
    async with serve(app) as http:
        owner = await register_owner(http)
        response = await http.post(
            "/usage/track",
            json={"app_name": "Editor"},
            headers={**owner.headers, "Origin": origin, "X-Request-Id": "agent-42"},
        )
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["x-request-id"] == "agent-42"
