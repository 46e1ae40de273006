"""The `workpulse` commands as real processes: help, graceful stop on SIGTERM, structured logs."""

from __future__ import annotations

import asyncio
import json
import signal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import PASSWORD, unique_email
from tests.conftest import TEST_SECRET
from tests.e2e.process import entries, environment, run, serving, started

DESCRIPTIONS = {
    "": "time tracking and workforce productivity backend",
    "serve": "Everything in one process",
    "api": "The HTTP API alone",
    "worker": "An ingestion worker",
    "scheduler": "The job scheduler",
    "migrate": "Bring the database schema up to date",
}


@pytest.mark.parametrize("command", list(DESCRIPTIONS))
async def test_every_command_describes_itself_in_its_help(command: str, tmp_path: Path) -> None:
    finished = await run(*([command] if command else []), "--help", cwd=tmp_path, env=environment())

    assert finished.returncode == 0, finished.stderr
    assert "Usage: workpulse" in finished.stdout
    assert DESCRIPTIONS[command] in finished.stdout
    if not command:
        for name in ("serve", "api", "worker", "scheduler", "migrate"):
            assert name in finished.stdout
    assert not entries(tmp_path), "help creates no file"


async def _refuses_connections(port: int) -> None:
    """Waits until nothing accepts connections on `port` any more."""
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)


async def test_sigterm_stops_accepting_finishes_the_request_in_flight_and_exits_0(
    tmp_path: Path,
) -> None:
    async with serving("serve", cwd=tmp_path, env=environment()) as (server, _):
        assert server.port is not None
        body = json.dumps(
            {
                "email": unique_email("inflight"),
                "password": PASSWORD,
                "name": "In Flight",
                "organization_name": "Graceful",
            }
        ).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /auth/register HTTP/1.1\r\n"
            b"Host: workpulse\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        # "100 Continue" is sent when the application asks for the body: the request is in flight.
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert interim.startswith(b"HTTP/1.1 100"), interim

        server.proc.send_signal(signal.SIGTERM)
        await _refuses_connections(server.port)
        writer.write(body)
        await writer.drain()

        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode()
        status_line, *header_lines = head.strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        answer = json.loads(await reader.readexactly(int(headers["content-length"])))
        writer.close()

        assert status_line.startswith("HTTP/1.1 201"), (status_line, answer)
        assert answer["access_token"]
        assert headers.get("connection") == "close"
        assert await server.exit_status() == 0, server.output()


@pytest.mark.parametrize("command", ["worker", "scheduler"])
async def test_background_process_logs_its_start_and_exits_0_on_sigterm(
    command: str, tmp_path: Path, postgresql_url: str, redis_url: str
) -> None:
    env = environment(
        WORKPULSE_DATABASE_URL=postgresql_url,
        WORKPULSE_REDIS_URL=redis_url,
        WORKPULSE_JWT_SECRET=TEST_SECRET,
    )
    async with started(command, cwd=tmp_path, env=env) as process:
        started_line = await process.wait_for_log(lambda e: e["event"] == f"{command} started")
        await process.wait_for_log(lambda e: e["event"] == "started" and e.get("role") == command)

        assert await process.stop() == 0, process.output()
        await process.wait_for_log(lambda e: e["event"] == f"{command} stopped")
    if command == "worker":
        assert started_line["queue"] == "redis"
    assert TEST_SECRET not in process.output()


def _access_line(request_id: str, entry: dict[str, Any]) -> bool:
    return entry["event"] == "request" and entry.get("request_id") == request_id


async def test_logs_are_json_lines_and_the_access_line_carries_the_response_request_id(
    tmp_path: Path,
) -> None:
    async with serving("serve", cwd=tmp_path, env=environment()) as (server, first):
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            chosen = await client.get("/health", headers={"X-Request-Id": "e2e-trace-42"})
        generated = first.headers["X-Request-Id"]

        for request_id in (generated, "e2e-trace-42"):
            access = await server.wait_for_log(partial(_access_line, request_id))
            assert access["path"] == "/health"
            assert access["status"] == 200
            assert access["logger"] == "workpulse.access"
        assert chosen.headers["X-Request-Id"] == "e2e-trace-42"
        assert len(generated) >= 16
        assert await server.stop() == 0

    lines = [line for line in server.stderr if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert {"event", "level", "timestamp"} <= entry.keys(), line
