"""The real `workpulse` executable as a child process: a clean environment, a free port, its
stderr collected line by line, and always killed when a test leaves it running."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# Generous upper bounds: reaching them means the process is stuck, never that it is slow.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

CHEAP_ARGON2 = {
    "WORKPULSE_ARGON2_TIME_COST": "1",
    "WORKPULSE_ARGON2_MEMORY_KIB": "64",
    "WORKPULSE_ARGON2_PARALLELISM": "1",
}


def executable() -> str:
    """The `workpulse` script installed beside the interpreter running the tests."""
    beside = Path(sys.executable).with_name("workpulse")
    found = str(beside) if beside.is_file() else shutil.which("workpulse")
    if found is None:
        pytest.fail("the `workpulse` executable is not installed (uv sync)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(**settings: str) -> dict[str, str]:
    """os.environ without any WORKPULSE_* key, plus cheap argon2 and the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("WORKPULSE_")}
    env.update(COLUMNS="200", NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.update(CHEAP_ARGON2)
    # Redis keys of this test only (other test runs may share the Redis server).
    env["WORKPULSE_REDIS_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    env.update(settings)
    return env


def entries(directory: Path) -> list[str]:
    """The names in `directory` (a quick local listing, fine inside a test coroutine)."""
    return sorted(path.name for path in directory.iterdir())


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def run(*args: str, cwd: Path, env: dict[str, str]) -> Finished:
    """Runs `workpulse ARGS` to its end."""
    proc = await asyncio.create_subprocess_exec(
        executable(),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"`workpulse {' '.join(args)}` still running after {START_TIMEOUT} s")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


class Running:
    """A started `workpulse` process. Its stderr is read continuously (a full pipe would block
    the child) and kept for assertions and failure messages."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int | None) -> None:
        self.proc = proc
        self.port = port
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._news = asyncio.Event()
        self._readers = [
            asyncio.create_task(self._collect(proc.stderr, self.stderr)),
            asyncio.create_task(self._collect(proc.stdout, self.stdout)),
        ]

    async def _collect(self, stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))
            self._news.set()
        self._news.set()

    @property
    def base_url(self) -> str:
        assert self.port is not None, "this process serves no HTTP"
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "\n".join([*self.stderr, *self.stdout])

    def logs(self) -> list[dict[str, Any]]:
        """The stderr lines that are JSON objects."""
        parsed = []
        for line in self.stderr:
            with suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    parsed.append(value)
        return parsed

    async def wait_for_log(self, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first JSON log line that `matches`, waiting for it to be written."""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    self._news.clear()
                    for entry in self.logs():
                        if matches(entry):
                            return entry
                    if all(reader.done() for reader in self._readers):
                        status = await self.proc.wait()
                        pytest.fail(f"exited {status} without that log line:\n{self.output()}")
                    await self._news.wait()
        except TimeoutError:
            pytest.fail(f"no such log line within {START_TIMEOUT} s:\n{self.output()}")

    async def wait_until_answering(self) -> httpx.Response:
        """Polls GET /health until the server answers (any status) and returns that answer."""
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            while True:
                if self.proc.returncode is not None:
                    pytest.fail(f"exited {self.proc.returncode} before answering:\n{self.output()}")
                try:
                    return await client.get("/health")
                except httpx.TransportError:
                    if asyncio.get_running_loop().time() > deadline:
                        pytest.fail(f"no answer within {START_TIMEOUT} s:\n{self.output()}")
                    await asyncio.sleep(0.1)

    async def stop(self) -> int:
        """SIGTERM, then its exit status (negative: killed by that signal)."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.exit_status()

    async def exit_status(self) -> int:
        """Waits for the process to end and returns its status."""
        try:
            status = await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"still running {STOP_TIMEOUT} s after SIGTERM:\n{self.output()}")
        await asyncio.gather(*self._readers)
        return status

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@asynccontextmanager
async def started(
    *args: str, cwd: Path, env: dict[str, str], port: int | None = None
) -> AsyncIterator[Running]:
    """Starts `workpulse ARGS`; on leaving, kills it if the test has not stopped it."""
    proc = await asyncio.create_subprocess_exec(
        executable(),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Running(proc, port)
    try:
        yield running
    finally:
        await running.close()


@asynccontextmanager
async def serving(
    command: str, *, cwd: Path, env: dict[str, str]
) -> AsyncIterator[tuple[Running, httpx.Response]]:
    """`workpulse serve|api` on a free port, once it answers /health (that first answer too)."""
    port = free_port()
    async with started(command, cwd=cwd, env={**env, "WORKPULSE_PORT": str(port)}, port=port) as p:
        yield p, await p.wait_until_answering()


@asynccontextmanager
async def redis_server(directory: Path, port: int) -> AsyncIterator[Running]:
    """A `redis-server` of the test's own on `port`, keeping its data in `directory` with an
    fsync'd append-only file (and no snapshots): started again on the same directory, it has
    everything it acknowledged. Yields once it answers PING; `stop()` is a clean SHUTDOWN."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("`redis-server` is not on PATH (apt-get install redis-server)")
    proc = await asyncio.create_subprocess_exec(
        found,
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
        *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
        *("--daemonize", "no", "--logfile", ""),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Running(proc, port)
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while True:
            if proc.returncode is not None:
                pytest.fail(f"redis-server exited {proc.returncode}:\n{running.output()}")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"PING\r\n")
                await writer.drain()
                answer = await asyncio.wait_for(reader.readline(), 5)
                writer.close()
                await writer.wait_closed()
                if answer == b"+PONG\r\n":
                    break
            except OSError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"redis-server not answering within {START_TIMEOUT} s")
            await asyncio.sleep(0.05)
        yield running
    finally:
        await running.close()


PGBOUNCER_USER = "nobody"  # PgBouncer refuses to run as root; as root the test drops to this


@asynccontextmanager
async def pgbouncer(
    directory: Path,
    port: int,
    *,
    server: tuple[str, int] = ("127.0.0.1", 5432),
    user: str = "postgres",
    pool_size: int = 10,
) -> AsyncIterator[Running]:
    """A `pgbouncer` of the test's own on `port`, in transaction pooling, in front of the
    PostgreSQL at `server` (trust auth) for every database, at most `pool_size` server
    connections per database. Its config and auth file live in `directory`. Yields once it
    answers a PostgreSQL startup; `stop()` is SIGTERM."""
    found, config = _pgbouncer_files(directory, port, server, user, pool_size)
    # It reads its files before dropping to the other user, so `directory` may stay private.
    drop = ["-u", PGBOUNCER_USER] if os.geteuid() == 0 else []
    proc = await asyncio.create_subprocess_exec(
        found,
        *drop,
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Running(proc, port)
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not await _answers_postgresql(port):
            if proc.returncode is not None:
                pytest.fail(f"pgbouncer exited {proc.returncode}:\n{running.output()}")
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"pgbouncer not answering within {START_TIMEOUT} s")
            await asyncio.sleep(0.05)
        yield running
    finally:
        await running.close()


async def _answers_postgresql(port: int) -> bool:
    """Whether something on `port` answers an SSLRequest as a PostgreSQL server does."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(1), 5)
        return answer in (b"N", b"S")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


def _pgbouncer_files(
    directory: Path, port: int, server: tuple[str, int], user: str, pool_size: int
) -> tuple[str, Path]:
    """The `pgbouncer` executable, and its config and auth files written in `directory`."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).is_file()), None
    )
    if found is None:
        pytest.fail("`pgbouncer` is not installed (apt-get install pgbouncer)")
    auth = directory / "userlist.txt"
    auth.write_text(f'"{user}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server[0]} port={server[1]}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {auth}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 1000",
                f"admin_users = {user}",
                "logfile =",
                "pidfile =",
                "",
            ]
        )
    )
    return found, config
