"""Work sessions over HTTP, including a client in the style of the replaced system's load test."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.api import PASSWORD, Member, add_member, register_owner, unique_email
from tests.http.contract import assert_error
from workpulse.adapters.db.engine import create_engine
from workpulse.domain.ids import OrganizationId, ProjectId, UserId, WorkSessionId
from workpulse.domain.sessions import Activity, ActivityType, SessionStatus, WorkSession
from workpulse.entrypoints.http.routes.sessions import (
    ActivityOut,
    RecordedOut,
    SessionOut,
    recorded_json,
)


def two_hours_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=2)).isoformat()


async def test_the_load_test_client_sees_exactly_six_thousand_seconds(
    client: httpx.AsyncClient, database_url: str
) -> None:
    # Like the original: an organization inserted with SQL, a user registered into it.
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            organization_id = (
                await conn.execute(
                    sa.text(
                        "INSERT INTO organizations (name, plan_type) VALUES (:n, 'free')"
                        " RETURNING id"
                    ),
                    {"n": f"Load {uuid.uuid4().hex[:6]}"},
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    registered = await client.post(
        "/auth/register",
        json={
            "email": unique_email("load"),
            "password": PASSWORD,
            "name": "Load",
            "organization_id": str(uuid.UUID(str(organization_id))),
        },
    )
    assert registered.status_code == 201, registered.text
    headers = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    # The session starts two hours back: counters may not outrun the wall clock (decisions.md).
    session = await client.post(
        "/sessions/start", json={"start_time": two_hours_ago()}, headers=headers
    )
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    responses = await asyncio.gather(
        *(
            client.post(
                f"/sessions/{session_id}/activity",
                json={"activityType": "active", "durationSeconds": 60},
                headers=headers,
            )
            for _ in range(100)
        )
    )
    assert [r.status_code for r in responses] == [201] * 100
    active = await client.get("/sessions/active", headers=headers)
    assert active.status_code == 200
    body = active.json()
    assert isinstance(body, list)
    assert [s["total_active_seconds"] for s in body] == [6000]
    assert body[0]["version"] == 101
    stopped = await client.post(f"/sessions/{session_id}/stop", headers=headers)
    assert stopped.status_code == 201
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["total_active_seconds"] == 6000


async def start(client: httpx.AsyncClient, member: Member) -> str:
    response = await client.post(
        "/sessions/start", json={"start_time": two_hours_ago()}, headers=member.headers
    )
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    return session_id


async def test_a_second_start_is_a_conflict(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    await start(client, owner)
    assert_error(
        await client.post("/sessions/start", headers=owner.headers), 409, "SessionAlreadyActive"
    )


async def test_a_batch_answers_per_event(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    session_id = await start(client, owner)
    response = await client.post(
        "/activity/batch",
        json={
            "sessionId": session_id,
            "events": [
                {"activityType": "active", "durationSeconds": 60, "event_id": "e1"},
                {"activityType": "idle", "durationSeconds": 30, "event_id": "e2"},
                {"activityType": "active", "durationSeconds": "sixty"},
                {"activityType": "active", "durationSeconds": 60, "event_id": "e1"},
                {"activityType": "active", "durationSeconds": -5},
            ],
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["processedCount"] == 2
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "accepted",
        "rejected",
        "duplicate",
        "rejected",
    ]
    assert (body["session"]["total_active_seconds"], body["session"]["total_idle_seconds"]) == (
        60,
        30,
    )


async def test_bad_activity_is_422_and_a_stopped_session_409(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    session_id = await start(client, owner)
    url = f"/sessions/{session_id}/activity"
    bad = await client.post(
        url, json={"activityType": "active", "durationSeconds": 0}, headers=owner.headers
    )
    assert_error(bad, 422, "ActivityOutOfBounds")
    wrong = await client.post(
        url, json={"activityType": "busy", "durationSeconds": 5}, headers=owner.headers
    )
    assert_error(wrong, 422, "ValidationError")
    await client.post(f"/sessions/{session_id}/stop", headers=owner.headers)
    again = await client.post(f"/sessions/{session_id}/stop", headers=owner.headers)
    assert_error(again, 409, "SessionStopped")
    late = await client.post(
        url, json={"activityType": "active", "durationSeconds": 5}, headers=owner.headers
    )
    assert_error(late, 409, "SessionStopped")


async def test_history_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    for _ in range(3):
        session_id = await start(client, owner)
        await client.post(f"/sessions/{session_id}/stop", headers=owner.headers)
    first = (await client.get("/sessions", params={"limit": 2}, headers=owner.headers)).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = (
        await client.get(
            "/sessions", params={"limit": 2, "cursor": first["next_cursor"]}, headers=owner.headers
        )
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    ids = [s["id"] for s in first["items"] + rest["items"]]
    assert len(set(ids)) == 3
    assert_error(
        await client.get("/sessions", params={"cursor": "garbage"}, headers=owner.headers),
        422,
        "InvalidInput",
    )


async def test_an_employee_sees_only_their_own_sessions(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    employee = await add_member(client, owner, "employee")
    other = await add_member(client, owner, "employee")
    await start(client, employee)
    others = await start(client, other)
    mine = (await client.get("/sessions/active", headers=employee.headers)).json()
    assert {s["user_id"] for s in mine} == {employee.id}
    everyone = (await client.get("/sessions/active", headers=owner.headers)).json()
    assert {s["user_id"] for s in everyone} == {employee.id, other.id}
    assert_error(
        await client.get(f"/sessions/{others}", headers=employee.headers), 404, "SessionNotFound"
    )


def test_the_activity_answer_is_what_the_documented_models_would_write() -> None:
    moment = datetime(2026, 11, 23, 15, 4, 5, 120, tzinfo=UTC)
    for session, activity in [
        (
            WorkSession(
                id=WorkSessionId(uuid.uuid4()),
                organization_id=OrganizationId(uuid.uuid4()),
                user_id=UserId(uuid.uuid4()),
                project_id=ProjectId(uuid.uuid4()),
                status=SessionStatus.STOPPED,
                start_time=moment - timedelta(hours=1),
                end_time=moment,
                total_active_seconds=3000,
                total_idle_seconds=60,
                last_activity_at=moment,
                version=7,
            ),
            Activity("e-1", ActivityType.IDLE, 60, moment, "Editor", "https://x.test/", None),
        ),
        (
            WorkSession(
                id=WorkSessionId(uuid.uuid4()),
                organization_id=OrganizationId(uuid.uuid4()),
                user_id=UserId(uuid.uuid4()),
                project_id=None,
                status=SessionStatus.ACTIVE,
                start_time=moment.replace(microsecond=0),
                end_time=None,
                total_active_seconds=0,
                total_idle_seconds=0,
                last_activity_at=None,
                version=1,
            ),
            Activity("e-2", ActivityType.ACTIVE, 1, moment, None, None, None),
        ),
    ]:
        for duplicate in (False, True):
            documented = RecordedOut(
                session=SessionOut.of(session), activity=ActivityOut.of(activity, duplicate)
            )
            written = recorded_json(session, activity, duplicate=duplicate)
            assert json.loads(written) == json.loads(documented.model_dump_json())


async def test_a_retried_activity_answers_the_stored_event_in_utc(
    client: httpx.AsyncClient,
) -> None:
    owner = await register_owner(client)
    session_id = await start(client, owner)
    sent = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    body = {
        "activityType": "active",
        "durationSeconds": 30,
        "event_id": "retry-me",
        "timestamp": sent.astimezone(timezone(timedelta(hours=2))).isoformat(),
    }
    url = f"/sessions/{session_id}/activity"
    first = await client.post(url, json=body, headers=owner.headers)
    again = await client.post(url, json={**body, "durationSeconds": 45}, headers=owner.headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["activity"]["timestamp"] == sent.isoformat().replace("+00:00", "Z")
    assert first.json()["activity"]["duplicate"] is False
    assert again.json()["activity"] == {**first.json()["activity"], "duplicate": True}
    assert again.json()["session"]["total_active_seconds"] == 30
    assert again.json()["session"]["version"] == 2


def _counters(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("workpulse_activity_group")
    }


async def test_metrics_count_the_activity_groups(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    session_id = await start(client, owner)
    before = _counters((await client.get("/metrics")).text)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/sessions/{session_id}/activity",
                json={"activityType": "active", "durationSeconds": 1, "event_id": f"m{k % 10}"},
                headers=owner.headers,
            )
            for k in range(20)
        )
    )
    assert all(r.status_code == 201 for r in responses)
    after = _counters((await client.get("/metrics")).text)
    grew = {name: after[name] - before.get(name, 0.0) for name in after}
    assert set(grew) == {
        "workpulse_activity_groups_total",
        "workpulse_activity_group_events_total",
        "workpulse_activity_group_unwritten_total",
        "workpulse_activity_groups_failed_total",
    }
    assert grew["workpulse_activity_group_events_total"] == 20
    assert 1 <= grew["workpulse_activity_groups_total"] < 20
    assert grew["workpulse_activity_group_unwritten_total"] == 10  # the ten repeats
    assert grew["workpulse_activity_groups_failed_total"] == 0
