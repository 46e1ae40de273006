"""bench/ingest: ping ingestion on PostgreSQL + Redis and in embedded mode (issue 4).

    python3 -m uv run python bench/ingest/run.py                  # everything, ~8 minutes
    python3 -m uv run python bench/ingest/run.py --phases single,batch --batch-workers 2
    python3 -m uv run python bench/ingest/run.py --profile        # + py-spy of the servers

Phases (all on 127.0.0.1, bounded in time and count; needs wrk: apt-get install -y wrk):
- single:    `POST /usage/track` with one ping, wrk -t2 -c64, interleaved runs of WorkPulse
             (`workpulse api`, one process, no worker running) and of the naive baseline
             (naive_app.py: FastAPI + pydantic + PyJWT + one XADD, one process); medians.
             Then a worker starts and drains what was accepted (its rate on 1-ping entries).
- halfrate:  both at half of their own maximum, at a constant rate from the open-loop client in
             load.py (wrk2 is not packaged here): p50/p99 from each request's due time; the
             worker runs beside WorkPulse.
- sustained: `--sustained-seconds` at `--sustained-share` of WorkPulse's maximum single-ping
             rate (open loop, one worker), 5 % of the requests repeating an earlier ping; per
             second: accepted, stream backlog, stored; then the drain time, and the exact
             check stored rows = accepted and 202-answered pings = stored + duplicates.
- batch:     `--batch-pings` pings in requests of 500 (several users with two devices each,
             shuffled), `--batch-in-flight` requests at a time, with 1 and then 2 workers:
             pings/s until the stream is empty and every accepted ping is a row in PostgreSQL.
- embedded:  `workpulse serve` (SQLite, no Redis) with the same wrk load as `single`.
The peak VmRSS of every server process is sampled every 0.2 s, per phase.

Each run gets a throwaway PostgreSQL database (TEST_POSTGRES_URL, default the local server) and
a Redis key prefix of its own (TEST_REDIS_URL), both removed at the end. WorkPulse runs with its
default settings except: cheap argon2 (registration is not measured), access tokens valid for an
hour (longer than the run), and a backlog bound of 1,000,000 stream entries (the `single` phase
queues ~100,000 entries with no worker running; the default bound is 100,000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import load
import uvloop
from procs import (
    HERE,
    HOST,
    RESULTS,
    CpuMeter,
    Device,
    RssSampler,
    Server,
    clean_environment,
    free_port,
    loadavg,
    pids_matching,
    postgres_database,
    register_users,
    say,
    start,
    wait_for_line,
    wait_ready,
    workpulse,
)
from redis.asyncio import Redis

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret-" + "x" * 40
PHASES = ("single", "halfrate", "sustained", "batch", "embedded")
BENCH_SETTINGS = {
    "WORKPULSE_ARGON2_TIME_COST": "1",
    "WORKPULSE_ARGON2_MEMORY_KIB": "64",
    "WORKPULSE_ARGON2_PARALLELISM": "1",
    "WORKPULSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
    "WORKPULSE_INGEST_BACKLOG_ENTRIES": "1000000",
}
DRAIN_TIMEOUT = 600.0  # seconds: reaching it means stuck, and the run says so
HOUR = 3600.0


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-202 answers + socket errors
    cpu_us: float  # server CPU per request


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(output: str, percentile: str) -> float:
    found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)", output, re.M)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def wrk(
    args: argparse.Namespace, server: Server, tokens: Path, seconds: float, label: str
) -> WrkRun:
    cap = int(seconds * 50_000 / args.threads)  # far above one process's rate; refused if hit
    argv = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--timeout=5s",
        "--latency", "-s", str(HERE / "single.lua"), server.base,
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_TOKENS": str(tokens),
        "BENCH_THREADS": str(args.threads),
        "BENCH_RUN": f"{label}-{uuid.uuid4().hex[:8]}",
        "BENCH_MAX_REQUESTS": str(cap),
    }
    before = server.cpu_seconds()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    cpu = server.cpu_seconds() - before
    with (RESULTS / "wrk.log").open("a") as log:
        log.write(f"$ {' '.join(argv)}  # {label}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0 or "Requests/sec" not in done.stdout:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    out = done.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if requests >= cap * args.threads:
        raise SystemExit("wrk hit its request cap: the figures would be wrong")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(found.group(1))
    if found := re.search(r"^answers other than 202: (\d+)", out, re.M):
        errors = max(errors, int(found.group(1)))  # a 200 or 3xx is wrong here too
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return WrkRun(rps, _ms(out, "50"), _ms(out, "99"), requests, errors, cpu / requests * 1e6)


def median(runs: list[WrkRun], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def tokens_file(name: str, devices: list[Device], first: float) -> Path:
    path = RESULTS / f"{name}.tokens"
    path.write_text("".join(f"{d.token} {int(first)}\n" for d in devices))
    return path


# --- the stores, as the benchmark looks at them -------------------------------------------------


@dataclass
class Stores:
    pg: asyncpg.Connection
    redis: Redis
    stream: str
    cpu: CpuMeter  # api, workers, PostgreSQL (this database's backends), Redis

    def per_ping(self, pings: int) -> str:
        """CPU µs per ping of each group since `cpu.start()`."""
        spent = self.cpu.stop()
        return ", ".join(f"{name} {s / max(pings, 1) * 1e6:.0f}" for name, s in spent.items())

    async def backlog(self) -> int:
        """Stream entries not yet stored (workers delete an entry after its commit)."""
        return int(await self.redis.xlen(self.stream))

    async def stored(self, devices: list[Device]) -> int:
        users = sorted({d.user_id for d in devices})
        found = await self.pg.fetchval(
            "SELECT count(*) FROM pings WHERE user_id = ANY($1::uuid[])", users
        )
        return int(found)

    async def drained(self, since: float) -> float:
        """Seconds from `since` (monotonic) until the stream is empty."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while await self.backlog():
            if time.monotonic() > deadline:
                raise SystemExit(f"the stream was not drained within {DRAIN_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)
        return time.monotonic() - since


# --- phases -------------------------------------------------------------------------------------


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    maxima: dict[str, float] = field(default_factory=dict)

    def add(self, text: str = "") -> None:
        self.lines.append(text)
        say(text)


def single(
    args: argparse.Namespace, report: Report, api: Server, naive: Server, tokens: Path
) -> None:
    report.add(
        f"\n### Single pings, wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
        f"{args.runs} interleaved runs (load average {loadavg()})\n"
    )
    for server in (naive, api):
        wrk(args, server, tokens, args.warmup, f"warmup-{server.name}")
    runs: dict[str, list[WrkRun]] = {"naive": [], "api": []}
    for n in range(args.runs):
        for server in (naive, api):
            one = wrk(args, server, tokens, args.duration, f"{server.name}-{n}")
            runs[server.name].append(one)
            say(
                f"  run {n + 1} {server.name:6} {one.rps:7.0f} req/s  p50 {one.p50_ms:6.2f} ms  "
                f"p99 {one.p99_ms:7.2f} ms  {one.cpu_us:5.0f} µs CPU/req  errors {one.errors}  "
                f"(load {loadavg()})"
            )
    report.add("| target | req/s | p50 ms | p99 ms | server CPU µs/req | errors (all runs) |")
    report.add("| --- | ---: | ---: | ---: | ---: | ---: |")
    labels = {"naive": "naive FastAPI + pydantic + PyJWT + XADD", "api": "WorkPulse `api`"}
    for name, own in runs.items():
        report.add(
            f"| {labels[name]} | {median(own, 'rps'):.0f} | {median(own, 'p50_ms'):.2f} | "
            f"{median(own, 'p99_ms'):.2f} | {median(own, 'cpu_us'):.0f} | "
            f"{sum(r.errors for r in own)} |"
        )
        report.maxima[name] = median(own, "rps")
    ratio = report.maxima["api"] / report.maxima["naive"]
    per_run = ", ".join(
        f"{a.rps / b.rps:.2f}x" for a, b in zip(runs["api"], runs["naive"], strict=True)
    )
    report.add(
        f"\nWorkPulse ÷ naive req/s: **{ratio:.2f}x** (per run: {per_run}; goal ≥ 1.5x: "
        f"{'met' if ratio >= 1.5 else 'missed'}). CPU per request, naive ÷ WorkPulse: "
        f"{median(runs['naive'], 'cpu_us') / median(runs['api'], 'cpu_us'):.2f}x."
    )


async def drain_after_single(report: Report, stores: Stores) -> None:
    entries = await stores.backlog()
    started = time.monotonic()
    stores.cpu.start()
    seconds = await stores.drained(started)
    report.add(
        f"\nOne worker then stored the {entries} single-ping entries left by these runs in "
        f"{seconds:.1f} s: **{entries / seconds:.0f} entries/s** (one ping per entry); CPU µs "
        f"per ping: {stores.per_ping(entries)}."
    )


async def halfrate(
    args: argparse.Namespace,
    report: Report,
    api: Server,
    naive: Server,
    devices: list[Device],
    workers: list[Server],
) -> None:
    """The naive app, then WorkPulse's API twice: with its workers paused (SIGSTOP: the API
    alone, as the maximum it is half of was measured), then with them running beside it on the
    same two cores (they derive what the API accepts, as the naive app's data never is)."""
    report.add(
        f"\n### At half of each one's maximum, constant rate, {args.half_seconds:g} s, "
        f"latencies after the first {args.half_warmup:g} s (open-loop client, "
        f"{args.connections} connections; load average {loadavg()})\n"
    )
    report.add(
        "| target | rate asked | rate served | p50 ms | p99 ms | p99.9 ms | non-202 "
        "| server CPU µs/req | client CPU µs/req |"
    )
    report.add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    first = time.time() - 30 * HOUR
    p99s: dict[str, float] = {}
    for server, name in ((naive, "naive"), (api, "api alone"), (api, "api")):
        rate = report.maxima["naive" if name == "naive" else "api"] / 2
        paused = workers if name == "api alone" else []
        for worker in paused:
            os.kill(worker.pid, signal.SIGSTOP)
        tally = load.Tally()
        make = load.SinglePings(
            server.port or 0, devices, first=first, tag=f"half-{name.replace(' ', '-')}"
        )
        cpu_before, own_before = server.cpu_seconds(), time.process_time()
        served = await load.fixed_rate(
            server.port or 0,
            make,
            rate=rate,
            seconds=args.half_seconds,
            connections=args.connections,
            tally=tally,
            warmup=args.half_warmup,
        )
        for worker in paused:
            os.kill(worker.pid, signal.SIGCONT)
        server_us = (server.cpu_seconds() - cpu_before) / max(tally.requests, 1) * 1e6
        client_us = (time.process_time() - own_before) / max(tally.requests, 1) * 1e6
        bad = tally.requests - tally.statuses.get(202, 0)
        label = {
            "naive": "naive baseline",
            "api alone": "WorkPulse `api` (workers paused)",
            "api": "WorkPulse `api` (worker running)",
        }[name]
        report.add(
            f"| {label} | {rate:.0f} | {served:.0f} | {tally.percentile(0.5):.2f} | "
            f"{tally.percentile(0.99):.2f} | {tally.percentile(0.999):.2f} | {bad} | "
            f"{server_us:.0f} | {client_us:.0f} |"
        )
        if name != "naive":
            p99s[name] = tally.percentile(0.99)
    alone, beside = p99s["api alone"], p99s["api"]
    report.add(
        f"\nWorkPulse p99 at half its maximum rate: **{alone:.1f} ms** with its workers "
        f"paused (goal < 20 ms: {'met' if alone < 20 else 'missed'}), **{beside:.1f} ms** "
        f"with a worker running on the same cores ({'met' if beside < 20 else 'missed'})."
    )


async def sustained(
    args: argparse.Namespace, report: Report, api: Server, stores: Stores, devices: list[Device]
) -> None:
    rate = report.maxima["api"] * args.sustained_share
    report.add(
        f"\n### {args.sustained_seconds:g} s at {args.sustained_share:.0%} of the maximum: "
        f"{rate:.0f} pings/s, one worker (load average {loadavg()})\n"
    )
    tally = load.Tally()
    make = load.SinglePings(
        api.port or 0, devices, first=time.time() - 20 * HOUR, tag="sustained", repeat_every=20
    )
    timeline: list[tuple[float, int, int, int]] = []
    started = time.monotonic()

    async def watch() -> None:
        while True:
            timeline.append(
                (
                    time.monotonic() - started,
                    tally.accepted,
                    await stores.backlog(),
                    await stores.stored(devices),
                )
            )
            await asyncio.sleep(1.0)

    watcher = asyncio.create_task(watch())
    stores.cpu.start()
    served = await load.fixed_rate(
        api.port or 0,
        make,
        rate=rate,
        seconds=args.sustained_seconds,
        connections=args.connections,
        tally=tally,
    )
    load_end = time.monotonic()
    drain = await stores.drained(load_end)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    stored = await stores.stored(devices)
    cpu = stores.per_ping(tally.accepted)
    answered = tally.accepted + tally.duplicates
    report.add("| second | accepted so far | stored so far | backlog (entries) |")
    report.add("| ---: | ---: | ---: | ---: |")
    for at, accepted, backlog, done in timeline[:: max(1, len(timeline) // 12)]:
        report.add(f"| {at:.0f} | {accepted} | {done} | {backlog} |")
    peak = max((b for _, _, b, _ in timeline), default=0)
    report.add(
        f"\nServed {served:.0f} req/s (asked {rate:.0f}); p50 "
        f"{tally.percentile(0.5):.2f} ms, p99 {tally.percentile(0.99):.2f} ms; answers "
        f"{dict(sorted(tally.statuses.items()))}. Peak backlog {peak} entries; drained "
        f"**{drain:.1f} s** after the load stopped. CPU µs per accepted ping: {cpu}."
    )
    # A request that failed without an answer (status 0, a 5xx) may or may not have been stored.
    unknown = tally.requests - tally.statuses.get(202, 0)
    exact = stored == tally.accepted and tally.duplicates == make.repeats
    if unknown:
        report.add(
            f"{unknown} requests got no 202 (statuses {dict(sorted(tally.statuses.items()))}): "
            f"their pings may or may not be stored, so stored must lie in [{tally.accepted}, "
            f"{tally.accepted + unknown}]: {tally.accepted <= stored <= tally.accepted + unknown}."
        )
    report.add(
        f"Pings answered 202: {answered} = {tally.accepted} accepted + {tally.duplicates} "
        f"duplicates (repeats sent: {make.repeats}); rows in PostgreSQL: {stored}. "
        f"**{'Exact' if exact else 'NOT EXACT'}**: stored "
        f"{'=' if stored == tally.accepted else '≠'} accepted, duplicates "
        f"{'=' if tally.duplicates == make.repeats else '≠'} repeats."
    )
    if tally.first_errors:
        report.add(f"First unexpected answers: {tally.first_errors}")


async def batch(
    args: argparse.Namespace,
    report: Report,
    api: Server,
    stores: Stores,
    devices: list[Device],
    workers: int,
) -> None:
    requests = load.batches(
        api.port or 0,
        devices,
        pings=args.batch_pings,
        per_request=args.batch_size,
        first=time.time() - 3 * 24 * HOUR,
        tag=f"batch{workers}",
        seed=workers,
    )
    tally = load.Tally()
    started = time.monotonic()
    stores.cpu.start()
    await load.send_all(api.port or 0, requests, in_flight=args.batch_in_flight, tally=tally)
    accepted_in = time.monotonic() - started
    total = await stores.drained(started)
    stored = await stores.stored(devices)
    cpu = stores.per_ping(tally.accepted)
    report.add(
        f"| {workers} | {tally.accepted} | {accepted_in:.1f} | {tally.accepted / accepted_in:.0f} "
        f"| {total:.1f} | **{tally.accepted / total:.0f}** | "
        f"{'yes' if stored == tally.accepted else f'NO ({stored} rows)'} | "
        f"{tally.statuses.get(503, 0)} | {cpu} | {loadavg().split()[0]} |"
    )
    if tally.rejected or tally.duplicates or set(tally.statuses) - {202, 503}:
        report.add(f"Unexpected answers: {tally.statuses} {tally.first_errors}")


def rss_table(report: Report, sampler: RssSampler) -> None:
    report.add("\n### Peak RSS (VmRSS sampled every 0.2 s)\n")
    report.add("| phase | process | peak RSS MB |")
    report.add("| --- | --- | ---: |")
    for (phase, name), kib in sampler.peaks.items():
        report.add(f"| {phase} | {name} | {kib / 1024:.0f} |")


# --- processes ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def redis_mode(
    args: argparse.Namespace, workdir: Path
) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
    tag = uuid.uuid4().hex[:10]
    with postgres_database(ADMIN_URL, f"bench_ingest_{tag}") as url:
        prefix = f"bench-ingest-{tag}"
        env = clean_environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_REDIS_URL=REDIS_URL,
            WORKPULSE_REDIS_PREFIX=prefix,
            WORKPULSE_JWT_SECRET=SECRET,
            **BENCH_SETTINGS,
            **dict(item.split("=", 1) for item in args.env),
        )
        migrated = await asyncio.to_thread(
            subprocess.run,
            [*workpulse(), "migrate"],
            cwd=workdir,
            env=env,
            capture_output=True,
            check=False,
        )
        if migrated.returncode != 0:
            raise SystemExit(f"workpulse migrate failed:\n{migrated.stderr.decode()}")
        try:
            yield url, prefix, env
        finally:
            await remove_prefix(prefix)


async def remove_prefix(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()


def start_api(env: dict[str, str], workdir: Path, name: str = "api") -> Server:
    port = free_port()
    server = start(
        name,
        [*workpulse(), "api" if name == "api" else "serve", "--host", HOST, "--port", str(port)],
        cwd=workdir,
        env=env,
        port=port,
    )
    wait_ready(server)
    return server


def start_naive(prefix: str, workdir: Path) -> Server:
    port = free_port()
    env = clean_environment(
        BENCH_JWT_SECRET=SECRET, BENCH_REDIS_URL=REDIS_URL, BENCH_STREAM=f"{prefix}:naive"
    )
    server = start(
        "naive",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(HERE),
            "naive_app:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ],
        cwd=workdir,
        env=env,
        port=port,
    )
    wait_ready(server, "/")
    return server


def start_worker(env: dict[str, str], workdir: Path, n: int) -> Server:
    server = start(f"worker{n}", [*workpulse(), "worker"], cwd=workdir, env=env)
    wait_for_line(server, "worker started")
    return server


def profile(args: argparse.Namespace, server: Server, label: str, seconds: float) -> None:
    """py-spy records `server` (non-blocking) in the background for `seconds`."""
    if not args.profile:
        return
    out = RESULTS / f"{label}-{server.name}.raw"
    subprocess.Popen(
        [
            args.pyspy,
            "record",
            "--nonblocking",
            "--rate",
            "250",
            "--format",
            "raw",
            "--duration",
            f"{seconds:g}",
            "--output",
            str(out),
            "--pid",
            str(server.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_redis_phases(args: argparse.Namespace, report: Report, rss: RssSampler) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        async with redis_mode(args, Path(tmp)) as (url, prefix, env):
            await redis_phases(args, report, rss, Path(tmp), url, prefix, env)


async def redis_phases(
    args: argparse.Namespace,
    report: Report,
    rss: RssSampler,
    workdir: Path,
    url: str,
    prefix: str,
    env: dict[str, str],
) -> None:
    running: list[Server] = []
    workers: list[Server] = []
    redis_title = "redis-server " + REDIS_URL.split("//", 1)[1].split("/", 1)[0]
    database = f" {url.rsplit('/', 1)[1]} "
    meter = CpuMeter(
        {
            "api": lambda: [s.pid for s in running if s.name == "api"],
            "workers": lambda: [w.pid for w in workers],
            "PostgreSQL": lambda: pids_matching(database),
            "Redis": lambda: pids_matching(redis_title),
        }
    )
    pg = await asyncpg.connect(url)
    redis = Redis.from_url(REDIS_URL)
    stores = Stores(pg, redis, f"{prefix}:pings", meter)
    try:
        api = start_api(env, workdir)
        running.append(api)
        rss.watch(api)
        wanted = set(args.phases)

        def scale_workers(count: int) -> None:
            while len(workers) < count:
                workers.append(start_worker(env, workdir, len(workers) + 1))
                running.append(workers[-1])
                rss.watch(workers[-1])

        if wanted & {"single", "halfrate", "sustained"}:
            naive = start_naive(prefix, workdir)
            running.append(naive)
            rss.watch(naive)
            devices = register_users(api.base, "single", args.users)
            tokens = tokens_file("single", devices, time.time() - 40 * HOUR)
            rss.phase = "single"
            profile(args, api, "single", args.duration)
            single(args, report, api, naive, tokens)
            rss.phase = "drain after single"
            scale_workers(1)
            profile(args, workers[0], "drain", 10)
            await drain_after_single(report, stores)
            if "halfrate" in wanted:
                rss.phase = "halfrate"
                await halfrate(args, report, api, naive, devices, workers)
            naive.stop()
            rss.forget(naive)
            if "sustained" in wanted:
                rss.phase = "sustained"
                own = register_users(api.base, "sustained", args.users)
                await sustained(args, report, api, stores, own)
        if "batch" in wanted:
            report.add(
                f"\n### Batched, requests of {args.batch_size} pings, "
                f"{args.batch_in_flight} in flight, until stored in PostgreSQL\n"
            )
            report.add(
                "| workers | pings accepted | all 202 after s | API pings/s | all stored "
                "after s | end-to-end pings/s | stored = accepted | 503 retries | CPU µs/ping "
                "| load |"
            )
            report.add("| ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | --- | ---: |")
            for count in args.batch_workers:
                for extra in workers[count:]:
                    extra.stop()
                    rss.forget(extra)
                del workers[count:]
                scale_workers(count)
                rss.phase = f"batch, {count} worker(s)"
                own = register_users(api.base, f"batch{count}", args.batch_users)
                for server in (api, *workers):
                    profile(args, server, f"batch{count}", 15)
                await batch(args, report, api, stores, own, count)
    finally:
        for server in reversed(running):
            server.stop()
        await pg.close()
        await redis.aclose()


def run_embedded(args: argparse.Namespace, report: Report, rss: RssSampler) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-embedded-") as tmp:
        env = clean_environment(
            **{k: v for k, v in BENCH_SETTINGS.items() if "BACKLOG" not in k},
            **dict(item.split("=", 1) for item in args.env),
        )
        rss.phase = "embedded"
        serve = start_api(env, Path(tmp), "serve")
        rss.watch(serve)
        try:
            devices = register_users(serve.base, "embedded", args.users)
            tokens = tokens_file("embedded", devices, time.time() - 40 * HOUR)
            rss.phase = "embedded"
            report.add(
                f"\n### Embedded (`workpulse serve`, SQLite), single pings, wrk -t{args.threads} "
                f"-c{args.connections} -d{args.duration:g}s, {args.runs} runs "
                f"(load average {loadavg()})\n"
            )
            wrk(args, serve, tokens, args.warmup, "warmup-serve")
            profile(args, serve, "embedded", args.duration)
            runs = [wrk(args, serve, tokens, args.duration, f"serve-{n}") for n in range(args.runs)]
            report.add("| req/s (runs) | median req/s | p50 ms | p99 ms | CPU µs/req | errors |")
            report.add("| --- | ---: | ---: | ---: | ---: | ---: |")
            rps = median(runs, "rps")
            report.add(
                f"| {', '.join(f'{r.rps:.0f}' for r in runs)} | **{rps:.0f}** | "
                f"{median(runs, 'p50_ms'):.2f} | {median(runs, 'p99_ms'):.2f} | "
                f"{median(runs, 'cpu_us'):.0f} | {sum(r.errors for r in runs)} |"
            )
            report.add(f"\nGoal ≥ 2,000 pings/s: {'met' if rps >= 2000 else 'missed'}.")
            total, pending = count_pending(Path(tmp) / "workpulse.db")
            report.add(
                f"Right after the last run the database held {total} pings, {pending} of them "
                "still pending (not yet derived by the in-process worker)."
            )
        finally:
            serve.stop()


def count_pending(database: Path) -> tuple[int, int]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        total, pending = conn.execute("SELECT count(*), sum(pending) FROM pings").fetchone()
    return int(total), int(pending or 0)


# --- main ---------------------------------------------------------------------------------------


def git_state() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(HERE), *argv], capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--", "../../src")
    return f"git {git('rev-parse', '--short', 'HEAD')}" + (
        " with uncommitted changes in src/" if dirty else ""
    )


def versions() -> str:
    names = ("fastapi", "pydantic", "uvicorn", "redis", "hiredis", "asyncpg", "sqlalchemy")
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=lambda s: s.split(","), default=list(PHASES))
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--users", type=int, default=16, help="users (2 devices each) per phase")
    parser.add_argument(
        "--half-warmup",
        type=float,
        default=2.0,
        help="halfrate: seconds at the rate whose latencies are not kept (caches warm up)",
    )
    parser.add_argument("--half-seconds", type=float, default=15)
    parser.add_argument("--sustained-seconds", type=float, default=60)
    parser.add_argument("--sustained-share", type=float, default=0.8)
    parser.add_argument("--batch-pings", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-users", type=int, default=20)
    parser.add_argument("--batch-in-flight", type=int, default=4)
    parser.add_argument(
        "--batch-workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2]
    )
    parser.add_argument("--profile", action="store_true", help="py-spy raw profiles, see RESULTS")
    parser.add_argument("--env", action="append", default=[], metavar="WORKPULSE_X=VALUE")
    args = parser.parse_args()
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if {"halfrate", "sustained"} & set(args.phases) and "single" not in args.phases:
        parser.error("halfrate and sustained need the maximum rate that `single` measures")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    args.pyspy = shutil.which("py-spy") or "/tmp/pyspy-venv/bin/py-spy"
    if args.profile and not Path(args.pyspy).exists():
        raise SystemExit("py-spy is missing: python3 -m pip install py-spy (on PATH)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wrk.log").write_text("")

    report = Report()
    report.add(f"# bench/ingest, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    report.add(f"command: python {' '.join(sys.argv)}")
    import workpulse

    source = Path(workpulse.__file__).parent
    report.add(f"workpulse from {source}")
    report.add(f"{git_state()}; Python {platform.python_version()}; {versions()}")
    report.add(f"{os.cpu_count()} CPUs; load average at start {loadavg()}")
    with RssSampler() as rss:
        if set(args.phases) - {"embedded"}:
            uvloop.run(run_redis_phases(args, report, rss))
        if "embedded" in args.phases:
            run_embedded(args, report, rss)
    rss_table(report, rss)
    report.add(f"\nload average at end {loadavg()}; logs and wrk output in {RESULTS}")
    (RESULTS / "report.md").write_text("\n".join(report.lines) + "\n")


if __name__ == "__main__":
    main()
