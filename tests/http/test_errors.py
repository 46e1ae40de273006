"""Every error answers with the contract's body, `{"error": "<Name>", "detail": ...}`, the
status the contract names, and no internals; requests carry an id; metrics are labelled by
route template."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests import conftest
from tests.api import PASSWORD, Member, add_member, invite, login, register_owner, unique_email
from tests.http.contract import assert_error, assert_no_leak, serve
from workpulse.adapters.tokens import JwtCodec
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.roles import Role
from workpulse.entrypoints.http.app import create_app
from workpulse.services.ports import AccessClaims


def _token(member: Member, *, issued: datetime, lifetime: timedelta, secret: str) -> str:
    claims = AccessClaims(
        user_id=UserId(uuid.UUID(member.id)),
        organization_id=OrganizationId(uuid.UUID(member.organization_id)),
        role=Role(member.role),
        device_session_id=DeviceSessionId(uuid.uuid4()),
        expires_at=issued + lifetime,
    )
    return JwtCodec(secret).issue(claims, issued)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _samples(text: str, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_an_unknown_route_is_a_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/no/such/route"), 404, "NotFound")


async def test_a_wrong_method_is_a_405_naming_the_allowed_ones(client: httpx.AsyncClient) -> None:
    response = await client.put("/me")
    assert_error(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "GET"


async def test_malformed_json_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login",
        content=b'{"email": "a@example.com", "password": ',
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(response, 422, "ValidationError")
    assert body["detail"][0]["type"] == "json_invalid"


async def test_a_body_that_is_not_utf8_is_a_422_not_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login",
        content=b'{"email": "\xff", "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 422, "ValidationError")


async def test_wrong_json_types_are_422_and_never_coerced(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/auth/register",
        json={
            "email": unique_email(),
            "password": 123456789,
            "name": "Typed",
            "organization_name": "Types",
        },
    )
    body = assert_error(registered, 422, "ValidationError")
    assert ["body", "password"] in [error["loc"] for error in body["detail"]]

    owner = await register_owner(client)
    patched = await client.patch(
        f"/users/{owner.id}", json={"active": "yes"}, headers=owner.headers
    )
    body = assert_error(patched, 422, "ValidationError")
    assert [error["loc"] for error in body["detail"]] == [["body", "active"]]
    listed = await client.get(
        "/projects", params={"include_archived": "maybe"}, headers=owner.headers
    )
    assert_error(listed, 422, "ValidationError")
    not_an_id = await client.get("/users/not-a-uuid", headers=owner.headers)
    assert_error(not_an_id, 422, "ValidationError")


async def test_a_rejected_password_is_never_echoed_back(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        json={
            "email": unique_email(),
            "password": "hunter2",
            "name": "Echo",
            "organization_name": "Echo",
        },
    )
    assert_error(response, 422, "ValidationError")
    assert "hunter2" not in response.text


async def test_a_nul_character_in_stored_text_is_a_422_on_every_database(
    client: httpx.AsyncClient,
) -> None:
    owner = await register_owner(client)
    project = await client.post("/projects", json={"name": "a\x00b"}, headers=owner.headers)
    assert_error(project, 422, "ValidationError")
    renamed = await client.patch(
        "/organizations/current", json={"name": "nul\x00"}, headers=owner.headers
    )
    assert_error(renamed, 422, "ValidationError")
    signed_in = await client.post(
        "/auth/login", json={"email": f"\x00{owner.email}", "password": PASSWORD}
    )
    assert_error(signed_in, 422, "ValidationError")


async def test_a_missing_token_is_a_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert_error(response, 401, "Unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    other_scheme = await client.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_error(other_scheme, 401, "Unauthenticated")


async def test_a_garbage_token_is_a_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=_bearer("not.a.jwt"))
    assert_error(response, 401, "InvalidToken")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_expired_token_is_a_401(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    expired = _token(
        owner,
        issued=datetime.now(UTC) - timedelta(hours=1),
        lifetime=timedelta(minutes=15),
        secret=conftest.TEST_SECRET,
    )
    response = await client.get("/me", headers=_bearer(expired))
    assert_error(response, 401, "InvalidToken")
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/me", headers=owner.headers)).status_code == 200


async def test_a_token_signed_with_another_secret_is_a_401(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    forged = _token(
        owner,
        issued=datetime.now(UTC),
        lifetime=timedelta(minutes=15),
        secret="another-secret-" + "z" * 40,
    )
    assert_error(await client.get("/me", headers=_bearer(forged)), 401, "InvalidToken")


async def test_an_employee_creating_a_project_is_a_403(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    employee = await add_member(client, owner, "employee")
    response = await client.post("/projects", json={"name": "Mine"}, headers=employee.headers)
    assert_error(response, 403, "Forbidden")
    manager = await add_member(client, owner, "manager")
    allowed = await client.post("/projects", json={"name": "Mine"}, headers=manager.headers)
    assert allowed.status_code == 201, allowed.text


async def test_an_email_registered_twice_in_one_organization_is_a_409(
    client: httpx.AsyncClient,
) -> None:
    owner = await register_owner(client)
    again = await client.post(
        "/auth/register",
        json={
            "email": f"  {owner.email.upper()} ",
            "password": PASSWORD,
            "name": "Twin",
            "organization_id": owner.organization_id,
            "invite_token": await invite(client, owner, "employee"),
        },
    )
    assert_error(again, 409, "EmailAlreadyRegistered")
    elsewhere = await register_owner(client, "Elsewhere")
    other_org = await client.post(
        "/auth/register",
        json={
            "email": owner.email,
            "password": PASSWORD,
            "name": "Same email, other organization",
            "organization_id": elsewhere.organization_id,
            "invite_token": await invite(client, elsewhere, "employee"),
        },
    )
    assert other_org.status_code == 201, other_org.text


async def test_a_duplicate_project_name_is_a_409(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    first = await client.post("/projects", json={"name": "Atlas"}, headers=owner.headers)
    assert first.status_code == 201, first.text
    second = await client.post("/projects", json={"name": " Atlas "}, headers=owner.headers)
    assert_error(second, 409, "ProjectNameTaken")
    other = await register_owner(client, "Other")
    theirs = await client.post("/projects", json={"name": "Atlas"}, headers=other.headers)
    assert theirs.status_code == 201, theirs.text


async def test_too_many_failed_logins_for_one_account_are_a_429_with_retry_after(
    database_url: str,
) -> None:
    app = create_app(conftest.test_settings(database_url, login_failures_per_account=3))
    async with serve(app) as http:
        target = await register_owner(http)
        bystander = await register_owner(http)
        for _ in range(3):
            failed = await http.post(
                "/auth/login", json={"email": target.email, "password": "wrong password"}
            )
            assert_error(failed, 401, "InvalidCredentials")

        limited = await http.post(
            "/auth/login", json={"email": target.email, "password": "wrong password"}
        )
        assert_error(limited, 429, "TooManyAttempts")
        assert int(limited.headers["retry-after"]) >= 1
        # Even the right password waits now.
        assert_error(await login(http, target.email), 429, "TooManyAttempts")
        # The limit is per account: another account from the same address is unaffected.
        wrong = await http.post(
            "/auth/login", json={"email": bystander.email, "password": "wrong password"}
        )
        assert_error(wrong, 401, "InvalidCredentials")
        assert (await login(http, bystander.email)).status_code == 200


async def test_a_request_id_is_echoed_back(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "req-42.abc:7"})
    assert response.headers["x-request-id"] == "req-42.abc:7"
    failed = await client.get("/no/such/route", headers={"X-Request-Id": "req-43"})
    assert failed.headers["x-request-id"] == "req-43"


async def test_a_request_id_is_generated_when_absent_or_unsafe(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert first
    assert second
    assert first != second
    unsafe = "x" * 129
    replaced = (await client.get("/health", headers={"X-Request-Id": unsafe})).headers
    assert replaced["x-request-id"]
    assert replaced["x-request-id"] != unsafe


async def test_an_unexpected_exception_is_a_500_internal_error_without_internals(
    sqlite_url: str,
) -> None:
    app = create_app(conftest.test_settings(sqlite_url))

    async def explode() -> None:
        raise RuntimeError('SELECT password_hash FROM users; File "secret.py", line 1')

    app.add_api_route("/test-only/explode", explode)
    async with serve(app, raise_app_exceptions=False) as http:
        response = await http.get("/test-only/explode", headers={"X-Request-Id": "boom-1"})
        body = assert_error(response, 500, "InternalError")
        assert "secret" not in str(body["detail"])
        assert response.headers["x-request-id"] == "boom-1"
        metrics = (await http.get("/metrics")).text
    assert {"method": "GET", "route": "/test-only/explode", "status": "500"} in _samples(
        metrics, "workpulse_http_requests_total"
    )


async def test_metrics_label_requests_by_route_template_never_by_raw_id(
    client: httpx.AsyncClient,
) -> None:
    owner = await register_owner(client)
    raw_id = owner.id
    assert (await client.get(f"/users/{raw_id}", headers=owner.headers)).status_code == 200
    await client.get("/openapi.json")
    await client.get(f"/no/such/{raw_id}")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert raw_id not in response.text
    requests = _samples(response.text, "workpulse_http_requests_total")
    assert {"method": "GET", "route": "/users/{user_id}", "status": "200"} in requests
    assert {"method": "GET", "route": "/openapi.json", "status": "200"} in requests
    assert {"method": "GET", "route": "unmatched", "status": "404"} in requests


async def test_metrics_expose_the_database_pool(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    gauges = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("workpulse_db_pool_")
    }
    assert set(gauges) == {
        "workpulse_db_pool_size",
        "workpulse_db_pool_checked_out",
        "workpulse_db_pool_idle",
        "workpulse_db_pool_overflow",
    }
    assert gauges["workpulse_db_pool_size"] >= 1
    assert all(value >= 0 for value in gauges.values()), gauges


async def test_no_error_body_carries_a_stack_trace_or_sql(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    attempts = [
        await client.get(f"/projects/{uuid.uuid4()}", headers=owner.headers),
        await client.patch("/projects/x", json={"name": 1}, headers=owner.headers),
        await client.post("/auth/refresh", json={"refresh_token": "' OR 1=1 --"}),
        await client.post("/auth/login", json={"email": "x' --", "password": "y"}),
        await client.delete(f"/auth/sessions/{uuid.uuid4()}", headers=owner.headers),
        await client.patch(
            "/organizations/current",
            json={"timezone": "../../etc/passwd", "settings": {"idle_minutes": 0}},
            headers=owner.headers,
        ),
    ]
    for response in attempts:
        assert 400 <= response.status_code < 500, response.text
        assert_error(response, response.status_code)
        assert_no_leak(response)


async def test_a_client_gone_while_its_body_is_read_is_not_a_server_error(
    sqlite_url: str,
) -> None:
    """The client closes the connection mid-body (wrk stopping, an agent going to sleep): no
    500, nothing stored, and the handler says so instead of logging an unhandled error."""
    app = create_app(conftest.test_settings(sqlite_url))
    async with serve(app) as http:
        owner = await register_owner(http)
        # The app behind the lifespan manager, driven at the ASGI level: the body never comes.
        asgi = http._transport.app  # type: ignore[attr-defined]
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/usage/track",
            "raw_path": b"/usage/track",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {owner.access_token}".encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await asgi(scope, receive, send)
        metrics = (await http.get("/metrics")).text
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    assert start["status"] == 400
    assert {"method": "POST", "route": "/usage/track", "status": "500"} not in _samples(
        metrics, "workpulse_http_requests_total"
    )


async def test_a_database_that_refuses_the_connection_is_a_503(postgresql_url: str) -> None:
    """A connection PostgreSQL refuses with an error of its own (here: no such database; in
    production "too many clients already") is the database being unavailable, not a bug."""
    missing = postgresql_url.rsplit("/", 1)[0] + f"/missing_{uuid.uuid4().hex[:8]}"
    app = create_app(conftest.test_settings(missing), migrate=False)
    async with serve(app, raise_app_exceptions=False) as http:
        response = await http.post(
            "/auth/login", json={"email": unique_email(), "password": PASSWORD}
        )
    assert_error(response, 503)
    assert "retry-after" in response.headers


async def test_health_names_each_component_as_the_contract_shows(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["info"]["database"] == {"status": "up"}  # no "message": null beside it
