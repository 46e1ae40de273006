"""`workpulse serve` with no configuration: a SQLite file and a generated secret in the working
directory, and nothing else needed."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import httpx

from tests.api import PASSWORD, unique_email
from tests.e2e.process import entries, environment, serving
from workpulse.adapters.db import migrate


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


async def test_serve_in_an_empty_directory_creates_a_private_database_and_secret_and_is_healthy(
    tmp_path: Path,
) -> None:
    async with serving("serve", cwd=tmp_path, env=environment()) as (server, health):
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok"
        assert body["info"].keys() == {"database"}, "no Redis in the embedded mode"
        assert body["info"]["database"]["status"] == "up"
        assert not body.get("error")
        created = {name: _mode(tmp_path / name) for name in entries(tmp_path)}
        assert await server.stop() == 0, server.output()

    # The database's -wal and -shm files included: all readable by their owner only.
    assert {"workpulse.db", "workpulse.db.jwt-secret"} <= created.keys()
    assert set(created.values()) == {0o600}, created
    database, secret = tmp_path / "workpulse.db", tmp_path / "workpulse.db.jwt-secret"
    assert _mode(database) == 0o600
    assert _mode(secret) == 0o600
    assert len(secret.read_text().strip()) >= 32
    assert _revision(database) == migrate.head()


async def test_a_token_issued_before_a_restart_still_works_after_it(tmp_path: Path) -> None:
    email = unique_email("restart")
    async with serving("serve", cwd=tmp_path, env=environment()) as (server, _):
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            registered = await client.post(
                "/auth/register",
                json={
                    "email": email,
                    "password": PASSWORD,
                    "name": "Restart",
                    "organization_name": "Embedded",
                },
            )
            assert registered.status_code == 201, registered.text
            login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
        assert await server.stop() == 0, server.output()
    secret = (tmp_path / "workpulse.db.jwt-secret").read_text()

    async with serving("serve", cwd=tmp_path, env=environment()) as (server, _):
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            again = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert await server.stop() == 0, server.output()

    assert me.status_code == 200, me.text
    assert me.json()["email"] == email
    assert again.status_code == 200, again.text
    assert (tmp_path / "workpulse.db.jwt-secret").read_text() == secret
    assert not any(e["event"] == "database migrated" for e in server.logs())


async def test_api_leaves_an_empty_database_alone_and_serve_migrates_it(tmp_path: Path) -> None:
    database = tmp_path / "workpulse.db"
    database.touch()

    async with serving("api", cwd=tmp_path, env=environment()) as (api, health):
        assert health.status_code == 200, health.text
        assert await api.stop() == 0, api.output()
    assert _tables(database) == set()

    async with serving("serve", cwd=tmp_path, env=environment()) as (serve, health):
        assert health.status_code == 200, health.text
        assert await serve.stop() == 0, serve.output()
    assert _revision(database) == migrate.head()
    assert {"alembic_version", "organizations", "users"} <= _tables(database)
    assert any(e["event"] == "database migrated" for e in serve.logs())
