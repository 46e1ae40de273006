"""bench/reports: report latency and throughput over HTTP with auth, on PostgreSQL with 10 million
intervals over 1,000 users and 90 days, against the seed's non-sargable query in the same run.

    python3 -m uv run python bench/reports/run.py --keep          # load (~minutes) + measure
    python3 -m uv run python bench/reports/run.py --reuse NAME    # measure on a kept database
    python3 -m uv run python bench/reports/inprocess.py NAME --cprofile team  # where time goes

What it does:
1. creates a PostgreSQL database (TEST_POSTGRES_URL, default the local server), runs
   `workpulse migrate`, starts one `workpulse api` process on it (default settings: JSON access
   log, written to a file), registers 10 organization owners over HTTP and inserts 99 employees
   per organization with SQL; then generates the intervals and rollups inside PostgreSQL
   (dataset.py says how, and what it drops and re-creates for the load);
2. checks the rollups against the product's own `tally` for a sample of user-days (exits if
   they differ), and that WorkPulse's day report per app equals the baseline's for a sample;
3. starts `cast_app.py` (one uvicorn process: the same JWT check, asyncpg, the seed's cast query);
4. prints EXPLAIN (ANALYZE, BUFFERS) of WorkPulse's queries for one user-day (the SQL its adapters
   send, captured from the engine) and of the cast query;
5. loads each target with wrk on 127.0.0.1, rotating over many users, days and owners' tokens
   (reports.lua): at 1 connection for latency, at 32 for throughput; `--runs` interleaved rounds,
   medians reported, with the server's CPU time per request (from /proc);
6. drops the database unless `--keep` (or `--reuse`).

Every wrk run is bounded in time (-d) and in count (a per-thread cap). Raw wrk output and the
server logs stay in bench/results/reports/ (git-ignored). `inprocess.py` measures the same
reports without sockets (CPU per call, and where it goes with --cprofile); py-spy could not
attach to a running process on this machine ("Failed to find python version"), only start one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import dataset
import sqlalchemy as sa
from dataset import DAYS, PASSWORD, Member, day_of, owner_email, say, utc_day

from workpulse.adapters.db.engine import create_engine
from workpulse.adapters.db.rollups import SqlRollupStore
from workpulse.adapters.db.usage import SqlUsageStore
from workpulse.domain.ids import OrganizationId, UserId

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "bench" / "results" / "reports"
HOST = "127.0.0.1"
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-reports-secret-" + "x" * 40
KATHMANDU = "Asia/Kathmandu"


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(name: str, argv: list[str], env: dict[str, str]) -> Server:
    port = free_port()
    log = RESULTS / f"{name}.log"
    with log.open("wb") as out:  # a file, never an unread pipe: the access log is large
        process = subprocess.Popen(
            [*argv, "--host", HOST, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited ({process.returncode}); see {log}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return server
        time.sleep(0.2)
    sys.exit(f"{name} did not listen within 60 s; see {log}")


def call(base: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if body is None else "POST"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def psql(url: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def git_state() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--", "src")
    return git("rev-parse", "--short", "HEAD") + (
        " (src/ has uncommitted changes)" if dirty else ""
    )


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- owners and targets -------------------------------------------------------------------------


@dataclass
class Owners:
    """Per organization (by its id): the owner's access token. `expires` is monotonic time."""

    tokens: dict[str, str] = field(default_factory=dict)
    expires: float = 0.0


def register(base: str) -> dict[int, tuple[str, str]]:
    """org number -> (organization id, owner user id)."""
    owners = {}
    for org in range(dataset.ORGANIZATIONS):
        status, body = call(
            base,
            "/auth/register",
            {
                "email": owner_email(org),
                "password": PASSWORD,
                "name": f"Owner {org}",
                "organization_name": f"Bench reports {org:02d}",
            },
        )
        if status != 201:
            sys.exit(f"register failed: {status} {body}")
        owners[org] = (body["user"]["organization_id"], body["user"]["id"])
    return owners


def login(base: str) -> Owners:
    owners = Owners()
    for org in range(dataset.ORGANIZATIONS):
        status, body = call(base, "/auth/login", {"email": owner_email(org), "password": PASSWORD})
        if status != 200:
            sys.exit(f"login failed: {status} {body}")
        owners.tokens[body["user"]["organization_id"]] = body["access_token"]
        owners.expires = time.monotonic() + body["expires_in"]
    return owners


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    server: str  # "workpulse" or "cast"
    goal_p50_ms: float | None
    # (path, organization id) pairs; the token is the organization owner's at run time
    requests: list[tuple[str, str]]


def targets(users: list[Member], count: int, seed: int = 11) -> dict[str, Target]:
    pick = random.Random(seed)
    orgs = sorted({m.organization_id for m in users})

    def user_days(first_day: int) -> list[tuple[Member, str]]:
        pairs = {
            (pick.randrange(len(users)), pick.randrange(first_day, DAYS)) for _ in range(count)
        }
        ordered = sorted(pairs)
        pick.shuffle(ordered)
        return [(users[u], day_of(d).isoformat()) for u, d in ordered]

    day = [
        (f"/reports/apps?date={d}&tz=UTC&user_id={m.id}", m.organization_id)
        for m, d in user_days(0)
    ]
    kathmandu = [
        (f"/reports/apps?date={d}&tz={KATHMANDU}&user_id={m.id}", m.organization_id)
        for m, d in user_days(1)
    ]
    ranges = []
    for m, d in user_days(29):
        first = (datetime.fromisoformat(d) - timedelta(days=29)).date().isoformat()
        ranges.append(
            (
                f"/reports/range?from={first}&to={d}&group_by=day&tz=UTC&user_id={m.id}",
                m.organization_id,
            )
        )
    team = [
        (f"/reports/team?date={day_of(d).isoformat()}&tz=UTC", o) for o in orgs for d in range(DAYS)
    ]
    pick.shuffle(team)
    return {
        "day": Target("day", "day report per app, one user (UTC)", "workpulse", 5.0, day),
        "range": Target("range", "30-day range by day, one user", "workpulse", 20.0, ranges),
        "team": Target("team", "team day report, 100 users", "workpulse", 30.0, team),
        "kathmandu": Target(
            "kathmandu", f"day report per app, {KATHMANDU}", "workpulse", 5.0, kathmandu
        ),
        "cast": Target("cast", "baseline: cast query, same day reports", "cast", None, day),
    }


def write_targets(target: Target, owners: Owners) -> Path:
    path = RESULTS / f"targets-{target.key}.txt"
    path.write_text("".join(f"{p} {owners.tokens[o]}\n" for p, o in target.requests))
    return path


# --- checks -------------------------------------------------------------------------------------


def check_answers(
    servers: dict[str, Server], owners: Owners, all_targets: dict[str, Target]
) -> None:
    """WorkPulse and the baseline give the same seconds per app for sample day reports (UTC days:
    no interval crosses a UTC midnight here, so the cast form is right on this data); the range
    has 30 rows and the team report 100 users."""
    for path, org in all_targets["day"].requests[:20]:
        token = owners.tokens[org]
        status, ours = call(servers["workpulse"].base, path, token=token)
        status_cast, theirs = call(servers["cast"].base, path, token=token)
        if status != 200 or status_cast != 200:
            sys.exit(f"{path}: {status} {ours} / {status_cast} {theirs}")
        mine = {a["app_name"]: a["seconds"] for a in ours["apps"]}
        cast = {a["app_name"]: a["seconds"] for a in theirs["apps"]}
        if mine != cast or not mine:
            sys.exit(f"{path}: WorkPulse {mine} differs from the cast query's {cast}")
    path, org = all_targets["range"].requests[0]
    status, body = call(servers["workpulse"].base, path, token=owners.tokens[org])
    if status != 200 or len(body["rows"]) != 30 or body["total_seconds"] <= 0:
        sys.exit(f"{path}: {status} {body}")
    path, org = all_targets["team"].requests[0]
    status, body = call(servers["workpulse"].base, path, token=owners.tokens[org])
    if status != 200 or len(body["users"]) != dataset.USERS_PER_ORGANIZATION:
        sys.exit(f"{path}: {status} {str(body)[:500]}")
    path, org = all_targets["kathmandu"].requests[0]
    status, body = call(servers["workpulse"].base, path, token=owners.tokens[org])
    if status != 200:
        sys.exit(f"{path}: {status} {body}")


# --- EXPLAIN ------------------------------------------------------------------------------------


async def explain(url: str, member: Member, day_index: int) -> dict[str, list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL WorkPulse's adapters send for one user's UTC day
    (captured from the engine as sent) and of the cast query; each run twice, the second kept."""
    day = day_of(day_index)
    start, end = utc_day(day)
    org, user = OrganizationId(uuid.UUID(member.organization_id)), UserId(uuid.UUID(member.id))
    engine = create_engine(url, pool_size=1, max_overflow=0)
    sent: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    plans: dict[str, list[str]] = {}
    try:
        async with engine.connect() as conn:
            sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
            await SqlRollupStore(conn).read(org, [user], start, end)
            rollup_sql = sent[-1]
            await SqlUsageStore(conn).of_users(org, [user], [(start, end)])
            interval_sql = sent[-1]
            sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)
            for label, (statement, parameters) in (
                ("WorkPulse: hourly rollups of the day (SqlRollupStore.read)", rollup_sql),
                ("WorkPulse: intervals of the day (SqlUsageStore.of_users)", interval_sql),
            ):
                for _ in range(2):
                    rows = await conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, tuple(parameters)
                    )
                plans[label] = [r[0] for r in rows]
    finally:
        await engine.dispose()
    import cast_app

    conn2 = await asyncpg.connect(url)
    try:
        for _ in range(2):
            rows2 = await conn2.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + cast_app.QUERY, uuid.UUID(member.id), "UTC", day
            )
        plans["baseline: the seed's cast query"] = [r[0] for r in rows2]
    finally:
        await conn2.close()
    return plans


def plan_summary(lines: list[str]) -> str:
    """Execution time, the top node's buffers, rows read and thrown away, and the scans."""
    text = "\n".join(lines)
    scans = re.findall(
        r"((?:Index Only Scan|Index Scan|Bitmap Heap Scan|Seq Scan)(?: using \S+)? on \S+)", text
    )
    execution = re.search(r"Execution Time: ([\d.]+) ms", text)
    buffers = next((line.strip() for line in lines if "Buffers:" in line), "no buffers line")
    removed = sum(
        int(n) for n in re.findall(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", text)
    )
    shown = ", ".join(sorted(set(scans))[:4]) + (" …" if len(set(scans)) > 4 else "")
    return (
        f"execution {execution.group(1) if execution else '?'} ms; {buffers} (top node);"
        f" rows removed by filter {removed:,}; {len(scans)} scan nodes: {shown}"
    )


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(args: argparse.Namespace, server: Server, targets_file: Path, connections: int,
        seconds: float, log: IO[str]) -> Run:  # fmt: skip
    threads = min(args.threads, connections)
    cap = int(seconds * args.max_rps / threads)
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout=30s", "--latency",
        "-s", str(HERE / "reports.lua"), server.base,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_TARGETS": str(targets_file), "BENCH_MAX_REQUESTS": str(cap)}
    before = server.cpu_seconds()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    cpu = server.cpu_seconds() - before
    log.write(f"$ {' '.join(argv)}  # {targets_file.name}\n{done.stdout}{done.stderr}\n")
    log.flush()
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if total >= cap * threads:
        sys.exit(f"wrk hit the request cap ({cap}/thread): raise --max-rps")
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    ):
        errors += sum(int(g) for g in found.groups())
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        requests=total,
        errors=errors,
        cpu_us=cpu / max(total, 1) * 1e6,
    )


def settle(servers: dict[str, Server], url: str) -> None:
    """Wait until the previous run's backlog is done: at 32 connections a slow report leaves
    up to 32 requests in flight when wrk stops, which the server (or PostgreSQL, for the cast
    query) keeps working on into the next run. Idle: no server used more than 20 ms of CPU in
    half a second and no query of the database is running."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        before = {name: s.cpu_seconds() for name, s in servers.items()}
        time.sleep(0.5)
        busy = any(s.cpu_seconds() - before[name] > 0.02 for name, s in servers.items())
        running = psql(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'active' AND pid <> pg_backend_pid()",
        ).strip()
        if not busy and running == "0":
            return


def med(runs: list[Run], attr: str) -> float:
    return statistics.median(float(getattr(r, attr)) for r in runs)


def measure(
    args: argparse.Namespace,
    servers: dict[str, Server],
    base: str,
    url: str,
    chosen: list[Target],
) -> dict[tuple[str, int], list[Run]]:
    results: dict[tuple[str, int], list[Run]] = {}
    levels = (1, args.connections)
    per_round = len(chosen) * len(levels) * (args.duration + 2)
    owners = Owners()
    files: dict[str, Path] = {}
    with (RESULTS / "wrk.log").open("w") as log:
        for round_ in range(0, args.runs + 1):  # round 0: warm-up
            if time.monotonic() + per_round + 60 > owners.expires:  # tokens last 15 min
                owners = login(base)
                files = {t.key: write_targets(t, owners) for t in chosen}
            for target in chosen:
                server = servers[target.server]
                for connections in levels:
                    seconds = args.warmup if round_ == 0 else args.duration
                    settle(servers, url)
                    run = wrk(args, server, files[target.key], connections, seconds, log)
                    tag = "warm-up" if round_ == 0 else f"run {round_}/{args.runs}"
                    say(
                        f"  {tag:9} {target.key:9} c{connections:<3} {run.rps:8.1f} req/s"
                        f"  p50 {run.p50_ms:8.2f} ms  p99 {run.p99_ms:8.2f} ms"
                        f"  {run.cpu_us:7.0f} µs CPU/req  errors {run.errors}  (load {loadavg()})"
                    )
                    if round_ > 0:
                        results.setdefault((target.key, connections), []).append(run)
    return results


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the database after the run")
    parser.add_argument("--reuse", metavar="NAME", help="measure on a database kept by --keep")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (interleaved)")
    parser.add_argument("--connections", type=int, default=32, help="the throughput level")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--max-rps", type=int, default=50_000, help="cap = duration x this")
    parser.add_argument("--samples", type=int, default=200, help="user-days in the rollup check")
    parser.add_argument("--paths", type=int, default=20_000, help="distinct user-days per target")
    parser.add_argument(
        "--targets", default="day,range,team,kathmandu,cast", help="comma-separated subset"
    )
    parser.add_argument("--load-only", action="store_true", help="create and load, then stop")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    RESULTS.mkdir(parents=True, exist_ok=True)

    started = datetime.now(UTC)
    say(f"# bench/reports, {started:%Y-%m-%d %H:%M} UTC")
    say("command: python3 -m uv run python bench/reports/run.py " + " ".join(sys.argv[1:]))
    say(f"git {git_state()}; {os.cpu_count()} CPUs; load average at start {loadavg()}")

    name = args.reuse or f"bench_reports_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    keep = args.keep or bool(args.reuse)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPULSE_")}
    env |= {"WORKPULSE_DATABASE_URL": url, "WORKPULSE_JWT_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "workpulse.entrypoints.cli"]
    servers: dict[str, Server] = {}
    if not args.reuse:
        psql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        if not args.reuse:
            subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
        servers["workpulse"] = start("workpulse", [*cli, "api"], env)
        base = servers["workpulse"].base
        if not args.reuse:
            say(f"\n## Data set: database {name}")
            owners = register(base)
            asyncio.run(dataset.add_employees(url, owners))
            users = asyncio.run(dataset.members(url))
            steps = asyncio.run(dataset.load(url, users))
            for step, seconds in steps.items():
                say(f"  {step}: {seconds:.1f} s")
        users = asyncio.run(dataset.members(url))
        intervals, rollups = asyncio.run(dataset.counts(url))
        say(f"  {len(users)} users, {intervals:,} intervals, {rollups:,} hourly rollup rows")
        if len(users) != dataset.ORGANIZATIONS * dataset.USERS_PER_ORGANIZATION:
            sys.exit(f"expected {dataset.ORGANIZATIONS * dataset.USERS_PER_ORGANIZATION} users")
        compared = asyncio.run(dataset.check_rollups(url, users, args.samples))
        say(f"  rollups equal tally() over the intervals: {compared:,} rows compared "
            f"({args.samples} random user-days + one organization's day)")  # fmt: skip
        if args.load_only:
            return

        servers["cast"] = start(
            "cast",
            [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "cast_app:app",
             "--no-access-log", "--no-server-header", "--log-level", "warning"],
            {**env, "BENCH_JWT_SECRET": SECRET, "BENCH_DATABASE_URL": url},
        )  # fmt: skip
        all_targets = targets(users, args.paths)
        check_answers(servers, login(base), all_targets)
        say("  WorkPulse's day reports equal the cast query's for 20 sample user-days")

        say("\n## EXPLAIN (ANALYZE, BUFFERS), one user's UTC day")
        for label, lines in asyncio.run(explain(url, users[123], 45)).items():
            say(f"\n{label}: {plan_summary(lines)}\n```")
            say("\n".join(lines))
            say("```")

        chosen = [all_targets[k] for k in args.targets.split(",")]
        say(f"\n## Load (wrk -t{args.threads}, {args.duration:g} s per run, {args.runs} rounds)")
        results = measure(args, servers, base, url, chosen)
        say(f"\n## Result (medians of {args.runs} rounds), load average at end {loadavg()}\n")
        c = args.connections
        say(
            "| report | p50 ms (c1) | p99 ms (c1) | goal p50 | req/s (c1) "
            f"| req/s (c{c}) | p50 ms (c{c}) | p99 ms (c{c}) | server CPU µs/req (c{c}) | errors |"
        )
        say("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for target in chosen:
            one, many = results[(target.key, 1)], results[(target.key, args.connections)]
            goal = ""
            if target.goal_p50_ms is not None:
                met = med(one, "p50_ms") <= target.goal_p50_ms
                goal = f"≤ {target.goal_p50_ms:g} ms: " + ("met" if met else "**missed**")
            errors = sum(r.errors for r in one + many)
            say(
                f"| {target.label} | {med(one, 'p50_ms'):.2f} | {med(one, 'p99_ms'):.2f} | {goal} "
                f"| {med(one, 'rps'):.0f} | {med(many, 'rps'):.0f} | {med(many, 'p50_ms'):.2f} "
                f"| {med(many, 'p99_ms'):.2f} | {med(many, 'cpu_us'):.0f} | {errors} |"
            )
        if ("day", 1) in results and ("cast", 1) in results:
            latency = med(results[("cast", 1)], "p50_ms") / med(results[("day", 1)], "p50_ms")
            throughput = med(results[("day", c)], "rps") / med(results[("cast", c)], "rps")
            verdict = "met" if min(latency, throughput) >= 20 else "**missed**"
            say(
                f"\nWorkPulse day report vs the cast baseline: p50 at c1 {latency:.1f}x lower,"
                f" req/s at c{c} {throughput:.1f}x higher (goal ≥ 20x end to end: {verdict})"
            )
    finally:
        for server in servers.values():
            server.stop()
        if keep:
            say(f"\ndatabase kept: {name} (reuse with --reuse {name}; drop with"
                f" psql -c 'DROP DATABASE \"{name}\" WITH (FORCE)')")  # fmt: skip
        else:
            psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
