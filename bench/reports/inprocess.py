"""Where a report request's time goes, in process: WorkPulse's ASGI app (`create_app`, default
settings, on a database loaded by `run.py --keep`) called through httpx's ASGI transport, one
request at a time, no uvicorn and no load generator. Prints wall and process-CPU time per call
for each report, then, with `--cprofile`, the functions that take the time.

    python3 -m uv run python bench/reports/inprocess.py bench_reports_xxxxxxxx
    python3 -m uv run python bench/reports/inprocess.py bench_reports_xxxxxxxx --cprofile team

Wall minus CPU is mostly waiting for PostgreSQL (the same machine, so its CPU is not counted
here). The access log is sent to a file, as in `run.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import sys
import time
from pathlib import Path

import dataset
import httpx
from asgi_lifespan import LifespanManager
from dataset import DAYS, PASSWORD, day_of, owner_email, say

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / "bench" / "results" / "reports"
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def paths(users: list[dataset.Member], count: int) -> dict[str, list[tuple[str, str]]]:
    pick = random.Random(3)
    chosen = [(pick.choice(users), pick.randrange(29, DAYS)) for _ in range(count)]
    found: dict[str, list[tuple[str, str]]] = {"day": [], "kathmandu": [], "range": [], "team": []}
    for m, d in chosen:
        day = day_of(d).isoformat()
        first = day_of(d - 29).isoformat()
        found["day"].append((f"/reports/apps?date={day}&tz=UTC&user_id={m.id}", m.organization_id))
        found["kathmandu"].append(
            (f"/reports/apps?date={day}&tz=Asia/Kathmandu&user_id={m.id}", m.organization_id)
        )
        found["range"].append(
            (
                f"/reports/range?from={first}&to={day}&group_by=day&tz=UTC&user_id={m.id}",
                m.organization_id,
            )
        )
        found["team"].append((f"/reports/team?date={day}&tz=UTC", m.organization_id))
    return found


async def measure(args: argparse.Namespace) -> None:
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + args.database
    os.environ["WORKPULSE_DATABASE_URL"] = url
    os.environ["WORKPULSE_JWT_SECRET"] = "bench-reports-inprocess-" + "x" * 40
    from workpulse.entrypoints import logs
    from workpulse.entrypoints.http.app import create_app
    from workpulse.settings import load_settings

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    users = await dataset.members(url)
    app = create_app(settings, role="api", migrate=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            tokens = {}
            for number in range(dataset.ORGANIZATIONS):
                answer = await client.post(
                    "/auth/login", json={"email": owner_email(number), "password": PASSWORD}
                )
                answer.raise_for_status()
                tokens[answer.json()["user"]["organization_id"]] = answer.json()["access_token"]
            for name, requests in paths(users, args.calls + 5).items():
                if args.cprofile and name != args.cprofile:
                    continue

                async def one(path: str, org: str) -> None:
                    answer = await client.get(
                        path, headers={"Authorization": "Bearer " + tokens[org]}
                    )
                    if answer.status_code != 200:
                        sys.exit(f"{path}: {answer.status_code} {answer.text[:300]}")

                for path, org in requests[:5]:  # warm-up
                    await one(path, org)
                profiler = cProfile.Profile() if args.cprofile else None
                wall, cpu = time.perf_counter(), time.process_time()
                if profiler:
                    profiler.enable()
                for path, org in requests[5:]:
                    await one(path, org)
                if profiler:
                    profiler.disable()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                say(
                    f"{name:10} {wall / args.calls * 1000:8.2f} ms wall "
                    f"{cpu / args.calls * 1000:8.2f} ms CPU per call ({args.calls} calls)"
                )
                if profiler:
                    out = io.StringIO()
                    stats = pstats.Stats(profiler, stream=out)
                    stats.sort_stats("tottime").print_stats(args.top)
                    say(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="a database kept by run.py --keep")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--cprofile", metavar="REPORT", help="day, kathmandu, range or team")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "inprocess-access.log").open("w") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            asyncio.run(measure(args))
        finally:
            os.dup2(saved, 2)


if __name__ == "__main__":
    main()
