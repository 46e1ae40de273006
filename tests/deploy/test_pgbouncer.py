"""The database layer through a real PgBouncer in transaction pooling (Debian's 1.18, which keeps
no prepared statement for a client). Many client connections share two server connections, so
a statement prepared on one server connection is run on another unless the driver prepares it
unnamed within the same round of messages: `WORKPULSE_DATABASE_POOLER=pgbouncer` does that;
the default (prepared-statement caches on) is shown to fail there, so the passing run means
something.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api import register_owner
from tests.conftest import test_settings
from tests.e2e.process import free_port, pgbouncer
from workpulse import bootstrap
from workpulse.entrypoints.http.app import create_app
from workpulse.settings import SettingsError, load_settings

SOURCE = Path(__file__).resolve().parents[2] / "src" / "workpulse"
CLIENTS = 16  # client connections, against 2 server connections
ROUNDS = 25  # transactions per client

# Different texts are different prepared statements.
STATEMENTS: list[tuple[str, Callable[[int, int], int]]] = [
    ("SELECT CAST(:a AS integer) + CAST(:b AS integer)", lambda a, b: a + b),
    ("SELECT CAST(:a AS integer) * CAST(:b AS integer)", lambda a, b: a * b),
    ("SELECT length(repeat('x', CAST(:a AS integer))) + CAST(:b AS integer)", lambda a, b: a + b),
    ("SELECT CAST(:a AS bigint) - CAST(:b AS bigint)", lambda a, b: a - b),
]


@pytest.fixture
async def bouncer_url(postgresql_url: str, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    direct = sa.make_url(postgresql_url)
    async with pgbouncer(
        tmp_path, port, server=(direct.host or "127.0.0.1", direct.port or 5432), pool_size=2
    ):
        yield direct.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


async def _load(engine: AsyncEngine) -> list[str]:
    """CLIENTS concurrent clients, each running ROUNDS transactions of every statement, with
    the results checked. Returns the errors met (an empty list: every answer was right)."""
    errors: list[str] = []

    async def client(number: int) -> None:
        for round_ in range(ROUNDS):
            try:
                async with engine.begin() as conn:
                    for text, expected in STATEMENTS:
                        a, b = number + 1, round_ + 2
                        got = await conn.scalar(sa.text(text), {"a": a, "b": b})
                        assert got == expected(a, b), (text, a, b, got)
            except sa.exc.DBAPIError as exc:
                errors.append(str(exc.orig))

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return errors


async def _settled(engine: AsyncEngine) -> AsyncEngine:
    """Every pooled client connection opened before the load, so that all of them take part."""
    conns = [await engine.connect() for _ in range(CLIENTS)]
    for conn in conns:
        await conn.close()
    return engine


async def test_the_pgbouncer_pooler_setting_runs_every_statement_right_through_transaction_pooling(
    bouncer_url: str,
) -> None:
    settings = test_settings(
        bouncer_url, database_pooler="pgbouncer", db_pool_size=CLIENTS, db_max_overflow=0
    )
    assert settings.db_statement_cache_size == 0
    engine = bootstrap.database_engine(settings)
    try:
        errors = await _load(await _settled(engine))
    finally:
        await engine.dispose()
    assert errors == []


async def _reuse_on_another_server_connection(engine: AsyncEngine) -> str | None:
    """Client B prepares and runs a statement on one server connection, then runs it again in
    a later transaction that PgBouncer must give another server connection (the first one is
    held by client C, and the pool has two). Returns the error of that second run, if any."""
    statement = sa.text("SELECT CAST(:a AS integer) + 1")
    pid = sa.text("SELECT pg_backend_pid()")
    async with engine.connect() as a, engine.connect() as b, engine.connect() as c:
        await a.begin()
        first = await a.scalar(pid)  # A holds one server connection...
        await b.begin()
        assert await b.scalar(statement, {"a": 1}) == 2  # ...so B runs on the other
        second = await b.scalar(pid)
        await b.commit()
        assert first != second
        await c.begin()
        assert await c.scalar(pid) == second  # C holds B's server connection
        await a.commit()
        try:
            await b.begin()
            assert await b.scalar(pid) == first  # B is on A's server connection now
            assert await b.scalar(statement, {"a": 2}) == 3
            await b.commit()
        except sa.exc.DBAPIError as exc:
            await b.rollback()
            return str(exc.orig)
        finally:
            await c.commit()
    return None


async def test_the_pgbouncer_pooler_setting_runs_a_statement_again_on_another_server_connection(
    bouncer_url: str,
) -> None:
    settings = test_settings(bouncer_url, database_pooler="pgbouncer")
    engine = bootstrap.database_engine(settings)
    try:
        assert await _reuse_on_another_server_connection(engine) is None
    finally:
        await engine.dispose()


async def test_prepared_statement_caches_fail_through_transaction_pooling(
    bouncer_url: str,
) -> None:
    """The control: the direct-PostgreSQL default is wrong behind PgBouncer 1.18."""
    settings = test_settings(bouncer_url)
    assert (settings.database_pooler, settings.db_statement_cache_size) == ("direct", 100)
    engine = bootstrap.database_engine(settings)
    try:
        error = await _reuse_on_another_server_connection(engine)
    finally:
        await engine.dispose()
    assert error is not None
    assert "prepared statement" in error
    assert "does not exist" in error


async def test_the_application_is_healthy_and_serves_requests_through_pgbouncer(
    bouncer_url: str,
) -> None:
    app = create_app(test_settings(bouncer_url, database_pooler="pgbouncer"))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        health = await client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["info"]["database"]["status"] == "up"
        owner = await register_owner(client)
        me = await client.get("/me", headers=owner.headers)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == owner.id


# Session state does not survive PgBouncer's transaction pooling: the next transaction of the
# same client may run on another server connection, and the state stays on the old one.
SESSION_SCOPED = [
    (r"pg_(try_)?advisory_lock(_shared)?\s*\(", "session advisory lock: use pg_advisory_xact_lock"),
    (r"pg_advisory_unlock", "session advisory unlock"),
    (r"\bLISTEN\s+\w", "LISTEN keeps a session subscription"),
    # SET opening a statement (after a quote or `;`), not UPDATE's SET.
    (r"[\"';]\s*SET\s+(SESSION\s+)?(?!LOCAL\b)[a-z_.]+\s*(=|TO\b)", "SET without LOCAL"),
    (r"set_config\([^)]*,\s*(false|False)\s*\)", "set_config(..., false) is session-wide"),
    (r"\bPREPARE\s+\w+\s+(AS|\()", "SQL-level PREPARE"),
    (r"\b(CREATE\s+)?TEMP(ORARY)?\s+TABLE\b", "temporary tables live in the session"),
    (r"\bWITH\s+HOLD\b", "holdable cursors outlive the transaction"),
]


def test_no_source_file_relies_on_postgresql_session_state() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        text = path.read_text()
        for pattern, why in SESSION_SCOPED:
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(SOURCE)}:{line}: {why}: {match.group(0)!r}")
    assert found == []
    # The advisory locks the adapters take are transaction-scoped ones.
    xact = [p for p in SOURCE.rglob("*.py") if "pg_advisory_xact_lock" in p.read_text()]
    assert xact, "the adapters lock devices and partition creation with pg_advisory_xact_lock"


@pytest.mark.parametrize(
    ("environ", "outcome"),
    [
        ({}, ("direct", 100)),
        ({"WORKPULSE_DATABASE_POOLER": "pgbouncer"}, ("pgbouncer", 0)),
        (
            {"WORKPULSE_DATABASE_POOLER": "pgbouncer", "WORKPULSE_DB_STATEMENT_CACHE_SIZE": "0"},
            ("pgbouncer", 0),
        ),
        ({"WORKPULSE_DB_STATEMENT_CACHE_SIZE": "0"}, ("direct", 0)),
        (
            {"WORKPULSE_DATABASE_POOLER": "pgbouncer", "WORKPULSE_DB_STATEMENT_CACHE_SIZE": "50"},
            "WORKPULSE_DB_STATEMENT_CACHE_SIZE must be 0",
        ),
        (
            {"WORKPULSE_DATABASE_POOLER": "pgbouncer", "WORKPULSE_DATABASE_URL": "sqlite:///x.db"},
            "WORKPULSE_DATABASE_POOLER needs a postgresql://",
        ),
        ({"WORKPULSE_DATABASE_POOLER": "direct"}, ("direct", 100)),
        ({"WORKPULSE_DATABASE_POOLER": "odyssey"}, "WORKPULSE_DATABASE_POOLER: Input should be"),
    ],
)
def test_the_pooler_setting_turns_the_statement_caches_off_and_refuses_contradictions(
    environ: dict[str, str],
    outcome: tuple[str, int] | str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    values = {
        "WORKPULSE_DATABASE_URL": "postgresql://workpulse@pgbouncer:6432/workpulse",
        "WORKPULSE_JWT_SECRET": "s" * 40,
        **environ,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    if isinstance(outcome, str):
        with pytest.raises(SettingsError, match=re.escape(outcome)):
            load_settings()
    else:
        settings = load_settings()
        assert (settings.database_pooler, settings.db_statement_cache_size) == outcome
