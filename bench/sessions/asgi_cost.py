"""CPU cost of one `POST /sessions/{id}/activity` in process, on PostgreSQL: no sockets, no
uvicorn, no load generator; process CPU time rather than wall time, so much steadier than the
wrk figures of `run.py` on a machine shared with other work.

The app is `create_app` with default settings on a throwaway PostgreSQL database
(TEST_POSTGRES_URL, default the local server), its logging configured as `workpulse api` does
(JSON access log to stderr, sent to a file here), its lifespan run. A user registers and starts
a session 20 h back; then, `--calls` times per repetition and one request at a time:
`POST /sessions/{id}/activity` (one second, no event_id), the same with a fresh `event_id`,
the same `event_id` again (a retry: the stored result), `POST /activity/batch` with 100 events
(per request), and `GET /me` for scale. Reported per request: this process's CPU (best and
median of `--reps` interleaved repetitions) and the CPU of the PostgreSQL backends serving this
database (from /proc, so only on the same machine), median.

    python3 -m uv run python bench/sessions/asgi_cost.py
    python3 -m uv run python bench/sessions/asgi_cost.py --cprofile   # where activity goes

PYTHONPATH=<checkout>/src measures another tree with the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import itertools
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def scope(method: str, path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"asgi-cost"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Case:
    """One kind of request; `body()` gives each call's body (a fresh event_id, or the same)."""

    def __init__(
        self, label: str, template: dict[str, Any], body: Callable[[], bytes], expect: int
    ) -> None:
        self.label, self.template, self.body, self.expect = label, template, body, expect


async def call(app: ASGIApp, case: Case, state: dict[str, Any]) -> int:
    status = 0
    body = case.body()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    template = case.template
    headers = [*template["headers"], (b"content-length", str(len(body)).encode())]
    await app({**template, "headers": headers, "state": dict(state)}, receive, send)
    return status


def backend_cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


async def backends(url: str, name: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def measure(args: argparse.Namespace, url: str, name: str, workdir: Path) -> None:
    for key in [k for k in os.environ if k.startswith("WORKPULSE_")]:
        del os.environ[key]
    os.environ.update(
        {
            "WORKPULSE_DATABASE_URL": url,
            "WORKPULSE_JWT_SECRET": "bench-secret-" + "x" * 40,
            **dict(item.split("=", 1) for item in args.env),
        }
    )
    os.chdir(workdir)

    from workpulse.entrypoints import logs
    from workpulse.entrypoints.http.app import create_app
    from workpulse.settings import load_settings

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings, role="api", migrate=True)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            registered = await client.post(
                "/auth/register",
                json={
                    "email": "bench@example.com",
                    "password": "bench-password-not-secret",
                    "name": "Bench",
                    "organization_name": "Bench",
                },
            )
            token = registered.json()["access_token"]
            started = await client.post(
                "/sessions/start",
                json={"start_time": (datetime.now(UTC) - timedelta(hours=20)).isoformat()},
                headers={"Authorization": f"Bearer {token}"},
            )
            if started.status_code != 201:
                raise SystemExit(f"start failed: {started.status_code} {started.text}")
        session_id = started.json()["id"]
        activity = scope("POST", f"/sessions/{session_id}/activity", token)
        fresh = itertools.count()
        one = json.dumps({"activityType": "active", "durationSeconds": 1}).encode()
        batch = json.dumps(
            {
                "sessionId": session_id,
                "events": [{"activityType": "idle", "durationSeconds": 1}] * 100,
            }
        ).encode()
        retry = json.dumps(
            {"activityType": "active", "durationSeconds": 1, "event_id": "the-same"}
        ).encode()

        def with_event_id() -> bytes:
            return b'{"activityType":"active","durationSeconds":1,"event_id":"e-%d"}' % next(fresh)

        cases = [
            Case("POST /sessions/{id}/activity", activity, lambda: one, 201),
            Case("  the same with a new event_id", activity, with_event_id, 201),
            Case("  a retried event_id (duplicate)", activity, lambda: retry, 201),
            Case(
                "POST /activity/batch, 100 events",
                scope("POST", "/activity/batch", token),
                lambda: batch,
                201,
            ),
            Case("GET /me (for scale)", scope("GET", "/me", token), lambda: b"", 200),
        ]
        if args.only:
            cases = [c for c in cases if args.only in c.label]
        state = dict(manager._state)  # what uvicorn hands each request as scope["state"]
        for case in cases:  # caches, lazily built objects, the pool's connections
            for _ in range(10 if "batch" in case.label else max(args.calls // 10, 20)):
                status = await call(app, case, state)
                if status != case.expect:
                    raise SystemExit(f"{case.label} answered {status}")
        pids = await backends(url, name)
        own: dict[str, list[float]] = {c.label: [] for c in cases}
        database: dict[str, list[float]] = {c.label: [] for c in cases}
        for _ in range(args.reps):  # interleaved, so that a noisy moment falls on every case
            for case in cases:
                calls = args.calls // 50 if "batch" in case.label else args.calls
                process, pg = time.process_time(), backend_cpu_seconds(pids)
                for _ in range(calls):
                    await call(app, case, state)
                own[case.label].append((time.process_time() - process) / calls * 1e6)
                database[case.label].append((backend_cpu_seconds(pids) - pg) / calls * 1e6)
        if args.cprofile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for _ in range(args.calls):
                await call(app, cases[0], state)
            profiler.disable()
    out = sys.stdout
    out.write(
        f"bench/sessions/asgi_cost.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load average {LOAD:.2f} at start, {args.reps} interleaved runs of {args.calls} "
        "sequential calls (batch: a fiftieth)\n\n"
        "| in-process request | API CPU µs, best | median | PostgreSQL CPU µs, median |\n"
        "| --- | ---: | ---: | ---: |\n"
    )
    for case in cases:
        values = own[case.label]
        out.write(
            f"| {case.label} | {min(values):.0f} | {statistics.median(values):.0f} | "
            f"{statistics.median(database[case.label]):.0f} |\n"
        )
    if args.cprofile:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(args.sort).print_stats(args.top)
        out.write(f"\ncProfile of {args.calls} POST /sessions/{{id}}/activity ({args.sort}):\n")
        out.write(text.getvalue())


LOAD = os.getloadavg()[0]


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """fd 2 to a file, as run.py does for the server: the access log is written for real."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("w") as target:
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per repetition")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument("--cprofile", action="store_true", help="also cProfile activity calls")
    parser.add_argument("--only", default="", help="only the requests whose label has this")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    parser.add_argument("--top", type=int, default=40, help="rows of the cProfile table")
    parser.add_argument(
        "--env", action="append", default=[], metavar="WORKPULSE_NAME=VALUE", help="a setting"
    )
    args = parser.parse_args()
    if any("=" not in item or not item.startswith("WORKPULSE_") for item in args.env):
        parser.error("--env takes WORKPULSE_NAME=VALUE")
    import uvloop  # uvicorn's loop, as in the server

    name = f"bench_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="wp-sessions-cost-") as tmp:
            workdir = Path(tmp)
            with stderr_to(workdir / "stderr.log"):
                uvloop.run(measure(args, url, name, workdir))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
