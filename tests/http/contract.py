"""What every HTTP error must look like, and an app of one's own for tests that need settings
other than the shared `client` fixture's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

# Words that only reach a response body when internals leak: a traceback, a driver or SQL.
LEAKS = (
    "Traceback",
    'File "',
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite3",
    "psycopg",
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE FROM",
    "password_hash",
)


def assert_no_leak(response: httpx.Response) -> None:
    for word in LEAKS:
        assert word not in response.text, f"{word!r} leaked into {response.text!r}"


def assert_error(response: httpx.Response, status: int, name: str | None = None) -> dict[str, Any]:
    """The contract's error body, `{"error": "<Name>", "detail": ...}`, with nothing leaked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    if name is not None:
        assert body["error"] == name, body
    assert_no_leak(response)
    return body


@asynccontextmanager
async def serve(
    app: FastAPI, *, raise_app_exceptions: bool = True, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process with its lifespan run, like the `client` fixture."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=manager.app,
                client=(address, 50000),
                raise_app_exceptions=raise_app_exceptions,
            ),
            base_url="http://testserver",
        ) as http,
    ):
        yield http
