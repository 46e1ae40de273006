"""The real JavaScript client (`socket.io-client` from npm, run with node) against
`workpulse serve`: refused with `connect_error` and the error shape, then connected with
`auth: {token}` and receiving `SESSION_UPDATE` for a session started over HTTP.

Needs node and `npm ci --prefix tests/e2e/realtime_js` (CI runs it); fails under CI=true when
either is missing, skips elsewhere with the command to run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import register_owner
from tests.e2e.process import environment, serving

CLIENT = Path(__file__).with_name("realtime_js")
TIMEOUT = 30.0  # a bound for a stuck client, never a measure


def node() -> str:
    found = shutil.which("node")
    installed = (CLIENT / "node_modules" / "socket.io-client").is_dir()
    if found is None or not installed:
        missing = "node" if found is None else f"npm ci --prefix {CLIENT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the JavaScript client test needs {missing}")
        pytest.skip(f"run `{missing}` for the JavaScript client test")
    return found


class NodeClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def next_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            line = await self.proc.stdout.readline()
        assert line, "the node client exited without a word"
        parsed: dict[str, Any] = json.loads(line)
        return parsed


@asynccontextmanager
async def node_client(url: str, token: str) -> AsyncIterator[NodeClient]:
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(CLIENT / "listen.mjs"),
        url,
        token,
        cwd=CLIENT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeClient(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_the_javascript_client_is_refused_then_connects_and_receives_session_updates(
    tmp_path: Path,
) -> None:
    node()
    async with (
        serving("serve", cwd=tmp_path, env=environment()) as (server, _),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        async with node_client(server.base_url, "not-a-token") as refused:
            error = await refused.next_line()
        assert error["type"] == "connect_error"
        assert error["data"] == {"error": "InvalidToken", "detail": error["message"]}

        owner = await register_owner(http)
        async with node_client(server.base_url, owner.access_token) as client:
            assert await client.next_line() == {"type": "connect"}
            online = await client.next_line()
            assert online["name"] == "USER_ONLINE"
            assert online["data"]["user_id"] == owner.id
            started = await http.post("/sessions/start", json={}, headers=owner.headers)
            assert started.status_code == 201, started.text
            update = await client.next_line()
        assert update["name"] == "SESSION_UPDATE"
        assert update["data"]["change"] == "start"
        assert update["data"]["session"]["id"] == started.json()["id"]
