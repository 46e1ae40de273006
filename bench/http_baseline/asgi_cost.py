"""CPU cost of one request through each app's ASGI stack, in process: no sockets, no uvicorn,
no load generator, and process CPU time rather than wall time, so much less noise than the wrk
figures of `run.py` (on a shared machine, still some: compare ratios from the same run).

The WorkPulse app is `create_app` with default settings on an embedded SQLite database in a
temporary directory, its logging configured as `workpulse api` configures it (JSON access log to
stderr, which goes to a file here), its lifespan run. A user registers through the app; then
`GET /me` (and `GET /health`) are called one after another, `--calls` times per repetition; the
process CPU time per call, best and median of `--reps` interleaved repetitions, is reported. The
minimal app gets the same `GET /me`. One request at a time: what concurrency adds (thread-pool
queueing, GIL contention, a cache stampede) shows only under wrk.

    python3 -m uv run python bench/http_baseline/asgi_cost.py
    python3 -m uv run python bench/http_baseline/asgi_cost.py --cprofile   # where /me goes

Use it to check a change to src/ cheaply (PYTHONPATH=<checkout>/src): ~10 µs differences show
here, not in a wrk run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

HERE = Path(__file__).resolve().parent
ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def scope(path: str, token: str | None) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"asgi-cost"), (b"accept", b"*/*")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: ASGIApp, template: dict[str, Any], state: dict[str, Any]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    # A new scope per request, as uvicorn builds one (with a copy of the lifespan state).
    await app(
        {**template, "headers": list(template["headers"]), "state": dict(state)}, receive, send
    )
    return status


async def warm(app: ASGIApp, template: dict[str, Any], state: dict[str, Any], calls: int) -> None:
    for _ in range(calls):  # caches, lazily built objects, the pool's connections
        if await call(app, template, state) != 200:
            raise SystemExit(f"{template['path']} did not answer 200")


async def cpu_us(
    app: ASGIApp, template: dict[str, Any], state: dict[str, Any], calls: int
) -> float:
    """Mean CPU time per call in µs: process time, all threads (a thread-pool hop counts),
    and time the process spends waiting for a CPU does not."""
    started = time.process_time()
    for _ in range(calls):
        await call(app, template, state)
    return (time.process_time() - started) / calls * 1e6


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send fd 2 to a file, as run.py does for the server: the access log is written for real."""
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


async def measure(args: argparse.Namespace, workdir: Path) -> None:
    for key in [k for k in os.environ if k.startswith("WORKPULSE_")]:
        del os.environ[key]
    os.environ.update(item.split("=", 1) for item in args.env)
    os.chdir(workdir)  # the embedded database and its secret live in the working directory

    from workpulse.entrypoints import logs
    from workpulse.entrypoints.http.app import create_app
    from workpulse.settings import load_settings

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    workpulse = create_app(settings, role="api", migrate=True)
    async with LifespanManager(workpulse) as manager:
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
        if registered.status_code != 201:
            raise SystemExit(f"register failed: {registered.status_code} {registered.text}")
        token = registered.json()["access_token"]
        os.environ["BENCH_JWT_SECRET"] = (workdir / "workpulse.db.jwt-secret").read_text().strip()
        sys.path.insert(0, str(HERE))
        minimal = importlib.import_module("minimal_app").app

        state = dict(manager._state)  # what uvicorn hands each request as scope["state"]
        cases = [
            ("minimal FastAPI + PyJWT, GET /me", minimal, scope("/me", token)),
            ("WorkPulse GET /me", workpulse, scope("/me", token)),
            ("WorkPulse GET /health", workpulse, scope("/health", None)),
        ]
        for _label, app, template in cases:
            await warm(app, template, state, max(args.calls // 5, 200))
        samples: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        for _ in range(args.reps):  # interleaved, so that a noisy moment falls on every case
            for label, app, template in cases:
                samples[label].append(await cpu_us(app, template, state, args.calls))
        # Best of the runs, as timeit reports: other processes only ever add time.
        results = [
            (label, min(values), statistics.median(values)) for label, values in samples.items()
        ]
        if args.cprofile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.calls):
                await call(workpulse, scope("/me", token), state)
            profiler.disable()
    out = sys.stdout
    out.write("| in-process ASGI call | CPU µs/request, best | median |\n| --- | ---: | ---: |\n")
    for label, best, median in results:
        out.write(f"| {label} | {best:.1f} | {median:.1f} |\n")
    out.write(
        f"\nWorkPulse /me ÷ minimal: {results[1][1] / results[0][1]:.2f}x best, "
        f"{results[1][2] / results[0][2]:.2f}x median ({args.reps} interleaved runs of "
        f"{args.calls} sequential calls; no server, no sockets)\n"
    )
    if args.cprofile:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(args.top)
        out.write(f"\ncProfile of {args.calls} WorkPulse GET /me calls (tottime):\n")
        out.write(text.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per repetition")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument("--cprofile", action="store_true", help="also cProfile /me calls")
    parser.add_argument("--top", type=int, default=30, help="rows of the cProfile table")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="WORKPULSE_NAME=VALUE",
        help="a WorkPulse setting (default: none, the defaults); repeatable",
    )
    args = parser.parse_args()
    if any("=" not in item or not item.startswith("WORKPULSE_") for item in args.env):
        parser.error("--env takes WORKPULSE_NAME=VALUE")
    import uvloop  # uvicorn's loop, as in the server

    with tempfile.TemporaryDirectory(prefix="wp-asgi-cost-") as tmp:
        workdir = Path(tmp)
        with stderr_to(workdir / "stderr.log"):
            uvloop.run(measure(args, workdir))


if __name__ == "__main__":
    main()
