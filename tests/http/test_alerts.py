"""GET /alerts and POST /alerts/{id}/ack over HTTP, on both databases: who sees which alerts,
which local day a date means, and the contract's error shape for bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.http.contract import assert_error
from tests.http.test_tenancy import build_world
from workpulse.bootstrap import Container


async def test_employees_see_their_alerts_and_managers_their_organizations(
    client: httpx.AsyncClient, container: Container
) -> None:
    world = await build_world(client, container)
    today = datetime.now(UTC).date()

    own = await client.get("/alerts", headers=world.employee.headers)
    assert own.status_code == 200, own.text
    body = own.json()
    assert (body["date"], body["tz"]) == (today.isoformat(), "UTC")
    (alert,) = body["alerts"]
    assert alert["id"] == world.alert_id
    assert (alert["type"], alert["user_id"]) == ("inactive", world.employee.id)
    assert alert["data"]["session_id"] == world.work_session_id
    assert alert["acknowledged_at"] is None

    colleague = await client.get("/alerts", headers=world.other_employee.headers)
    assert colleague.json()["alerts"] == []
    assert_error(
        await client.get(
            "/alerts", params={"user_id": world.employee.id}, headers=world.other_employee.headers
        ),
        404,
        "UserNotFound",
    )

    owner = await client.get("/alerts", headers=world.owner.headers)
    assert [a["id"] for a in owner.json()["alerts"]] == [world.alert_id]
    theirs = await client.get(
        "/alerts", params={"user_id": world.employee.id}, headers=world.owner.headers
    )
    assert [a["id"] for a in theirs.json()["alerts"]] == [world.alert_id]
    assert_error(
        await client.get(
            "/alerts", params={"user_id": world.employee.id}, headers=world.outsider.headers
        ),
        404,
        "UserNotFound",
    )
    outsider = await client.get("/alerts", headers=world.outsider.headers)
    assert outsider.json()["alerts"] == []

    yesterday = (today - timedelta(days=1)).isoformat()
    earlier = await client.get(
        "/alerts", params={"date": yesterday}, headers=world.employee.headers
    )
    assert earlier.json() == {"date": yesterday, "tz": "UTC", "alerts": []}


async def test_the_first_acknowledgement_stays(
    client: httpx.AsyncClient, container: Container
) -> None:
    world = await build_world(client, container)
    first = await client.post(f"/alerts/{world.alert_id}/ack", headers=world.employee.headers)
    assert first.status_code == 200, first.text
    assert first.json()["acknowledged_by"] == world.employee.id
    second = await client.post(f"/alerts/{world.alert_id}/ack", headers=world.owner.headers)
    assert second.status_code == 200, second.text
    assert second.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    assert second.json()["acknowledged_by"] == world.employee.id
    listed = await client.get("/alerts", headers=world.employee.headers)
    assert listed.json()["alerts"] == [first.json()]


async def test_bad_input_gets_the_contracts_error_shape(
    client: httpx.AsyncClient, container: Container
) -> None:
    world = await build_world(client, container)
    headers = world.employee.headers
    assert_error(await client.get("/alerts"), 401)
    for bad in ("2026-13-01", "yesterday", "2026-1-1"):
        assert_error(await client.get("/alerts", params={"date": bad}, headers=headers), 422)
    assert_error(await client.get("/alerts", params={"user_id": "me"}, headers=headers), 422)
    assert_error(await client.post("/alerts/not-an-id/ack", headers=headers), 422)
    assert_error(
        await client.post(f"/alerts/{uuid.uuid4()}/ack", headers=headers), 404, "AlertNotFound"
    )
    assert_error(await client.post(f"/alerts/{world.alert_id}/ack"), 401)
