"""Small HTTP steps the tests share: register, log in, authorize."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Member:
    id: str
    organization_id: str
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def _member(body: dict[str, Any]) -> Member:
    user = body["user"]
    return Member(
        id=user["id"],
        organization_id=user["organization_id"],
        email=user["email"],
        role=user["role"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


async def register_owner(client: httpx.AsyncClient, name: str = "Acme") -> Member:
    response = await client.post(
        "/auth/register",
        json={
            "email": unique_email("owner"),
            "password": PASSWORD,
            "name": "Owner",
            "organization_name": f"{name} {uuid.uuid4().hex[:6]}",
        },
    )
    assert response.status_code == 201, response.text
    return _member(response.json())


async def invite(client: httpx.AsyncClient, admin: Member, role: str) -> str:
    response = await client.post(
        "/organizations/current/invites", json={"role": role}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["invite_token"]
    return token


async def add_member(client: httpx.AsyncClient, admin: Member, role: str) -> Member:
    token = await invite(client, admin, role)
    response = await client.post(
        "/auth/register",
        json={
            "email": unique_email(role),
            "password": PASSWORD,
            "name": role.title(),
            "organization_id": admin.organization_id,
            "invite_token": token,
        },
    )
    assert response.status_code == 201, response.text
    return _member(response.json())


async def login(
    client: httpx.AsyncClient, email: str, organization_id: str | None = None, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": PASSWORD, **extra}
    if organization_id:
        body["organization_id"] = organization_id
    return await client.post("/auth/login", json=body)
