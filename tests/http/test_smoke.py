from __future__ import annotations

import httpx

from tests.api import register_owner


async def test_a_registered_owner_reads_their_profile(client: httpx.AsyncClient) -> None:
    owner = await register_owner(client)
    response = await client.get("/me", headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["role"] == "owner"
