"""Every command the image and compose.yaml run is a `workpulse` command, and this test runs
each of them outside a container, with the environment compose gives it (hosts mapped to the
local PostgreSQL, a PgBouncer started here and the local Redis): `migrate` brings the database
to head through the direct URL, `api` becomes healthy through PgBouncer and the image's own
HEALTHCHECK command says so (and says it no longer once it stopped), `worker` and `scheduler`
start and stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer

from tests.conftest import REDIS_URL, TEST_SECRET, create_postgres_database, drop_postgres_database
from tests.deploy.files import (
    DOCKERFILE,
    command_of,
    compose,
    healthcheck_of,
    image_environment,
    last,
    stages,
    workpulse_services,
)
from tests.e2e.process import environment, free_port, pgbouncer, run, started
from workpulse.adapters.db import migrate
from workpulse.adapters.db.engine import create_engine
from workpulse.entrypoints.cli import app as cli

# What compose's `${NAME:?message}` become here; the passwords are unused (trust auth).
INTERPOLATED = {"POSTGRES_PASSWORD": "unused", "WORKPULSE_JWT_SECRET": TEST_SECRET}


def _cli_commands() -> set[str]:
    group = typer.main.get_command(cli)
    return set(getattr(group, "commands", {}))


def test_every_command_of_the_image_and_compose_is_a_workpulse_command() -> None:
    final = stages(DOCKERFILE)[-1]
    entrypoint = last(final, "ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form() == ["workpulse"]
    commands = {"CMD": command_of({})}
    commands |= {name: command_of(s) for name, s in workpulse_services(compose()).items()}
    known = _cli_commands()
    assert {"api", "worker", "scheduler", "migrate"} <= known
    for name, command in commands.items():
        assert command[0] == "workpulse", name
        assert command[1] in known, (name, command)
        assert len(command) == 2, (name, "no options: settings come from the environment")


def _interpolate(value: str) -> str:
    for name, replacement in INTERPOLATED.items():
        while "${" + name in value:
            start = value.index("${" + name)
            value = value[:start] + replacement + value[value.index("}", start) + 1 :]
    assert "${" not in value, value
    return value


def _local(value: str, database: str, bouncer: int) -> str:
    """A compose URL with its service host mapped to what runs here."""
    if value.startswith("postgresql://"):
        url = sa.make_url(value)
        port = {"postgres": 5432, "pgbouncer": bouncer}[url.host or ""]
        local = sa.make_url(database).set(port=port)
        return local.render_as_string(hide_password=False)
    if value.startswith("redis://"):
        assert sa.make_url(value).host == "redis"
        return REDIS_URL
    return value


def environment_of(service: dict[str, Any], database: str, bouncer: int) -> dict[str, str]:
    """The image's ENV, then the service's environment, interpolated and mapped to local hosts;
    listening on 127.0.0.1 and a free port instead of the container's 0.0.0.0:8000."""
    env = {k: v for k, v in image_environment().items() if k.startswith("WORKPULSE_")}
    for key, value in service.get("environment", {}).items():
        env[key] = _local(_interpolate(str(value)), database, bouncer)
    env["WORKPULSE_HOST"] = "127.0.0.1"
    env["WORKPULSE_PORT"] = str(free_port())
    return environment(**env)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


def _started(entry: dict[str, Any], *, role: str) -> bool:
    return entry.get("event") == "started" and entry.get("role") == role


async def _healthcheck(command: list[str], env: dict[str, str]) -> int:
    """The image's HEALTHCHECK command, run as is (its `python` is this environment's)."""
    assert command[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:],
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_each_compose_command_runs_here_with_the_compose_environment(
    database: str, tmp_path: Path
) -> None:
    services = workpulse_services(compose())
    async with AsyncExitStack() as stack:
        bouncer = free_port()
        await stack.enter_async_context(pgbouncer(tmp_path, bouncer))
        envs = {name: environment_of(s, database, bouncer) for name, s in services.items()}
        argv = {name: command_of(s)[1:] for name, s in services.items()}

        finished = await run(*argv["migrate"], cwd=tmp_path, env=envs["migrate"])
        assert finished.returncode == 0, finished.stderr
        engine = create_engine(database, pool_size=1, max_overflow=0)
        try:
            assert await migrate.current_revision(engine) == migrate.head()
        finally:
            await engine.dispose()

        api_port = int(envs["api"]["WORKPULSE_PORT"])
        api = await stack.enter_async_context(
            started(*argv["api"], cwd=tmp_path, env=envs["api"], port=api_port)
        )
        others = [
            await stack.enter_async_context(started(*argv[name], cwd=tmp_path, env=envs[name]))
            for name in ("worker", "scheduler")
        ]
        health = await api.wait_until_answering()
        assert health.status_code == 200, health.text
        assert {k: v["status"] for k, v in health.json()["info"].items()} == {
            "database": "up",
            "redis": "up",
        }
        for process, role in zip(others, ("worker", "scheduler"), strict=True):
            start = await process.wait_for_log(partial(_started, role=role))
            assert start["settings"]["database_pooler"] == "pgbouncer"

        check = healthcheck_of(services["api"])
        assert check is not None
        assert await _healthcheck(check, envs["api"]) == 0
        for process in [api, *others]:
            assert await process.stop() == 0, process.output()
        assert await _healthcheck(check, envs["api"]) != 0
