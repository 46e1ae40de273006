"""bench/scaleout: what a second `workpulse api` process buys on this machine (issue 9).

    python3 -m uv run python bench/scaleout/run.py                 # ~3 minutes once quiet
    python3 -m uv run python bench/scaleout/run.py --start-by 17:52 --quiet-below 3
    python3 -m uv run python bench/scaleout/run.py --rounds 1 --duration 3 --no-wait   # a trial

A throwaway PostgreSQL database and a Redis key prefix of its own (both removed at the end),
`workpulse migrate`, two `workpulse api` processes on free ports and one `workpulse worker`;
the same settings as bench/ingest (cheap argon2, 1-hour access tokens). Then, in `--rounds`
interleaved rounds (the order of the two layouts alternates from round to round):
- `POST /usage/track`, one ping per request (bench/ingest/single.lua: 16 users x 2 devices,
  each device's pings 5 s apart in time order, a time window of its own per run):
  - 1 API: wrk -t2 -c64 against the first API process (the second one stays idle);
  - 2 APIs: two wrk -t1 -c32 at the same time, one per API process, half the devices each;
  after each run the worker drains the stream before the next run starts (drain time shown);
- `GET /me` (bench/http_baseline/wrk_bounded.lua, one user's token) the same two ways; the
  worker is idle then, so this isolates the API processes' own scaling.
req/s of the two instances are summed; p50/p99 come from their merged latency distributions
(quantiles.lua prints each one's quantiles on a grid; they are merged weighted by requests).
CPU per request is read from /proc/<pid>/stat: both API processes together, wrk itself
(getrusage of children), and for pings the worker, this database's PostgreSQL backends and Redis
(over the run and its drain). Medians over the rounds.

Before measuring, the script waits until the 1-minute load average is below `--quiet-below`, or
until `--start-by` (HH:MM UTC, today) at the latest, and reports the load it started at.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCALEOUT = Path(__file__).resolve().parent
INGEST = SCALEOUT.parent / "ingest"
sys.path.insert(0, str(INGEST))  # bench/ingest's helpers (procs.py, load.py), reused unchanged

import procs  # noqa: E402
from procs import (  # noqa: E402
    HOST,
    CpuMeter,
    Device,
    Server,
    clean_environment,
    cpu_of,
    free_port,
    loadavg,
    pids_matching,
    postgres_database,
    psql,
    register_users,
    say,
    start,
    wait_for_line,
    wait_ready,
    workpulse,
)
from redis import Redis  # noqa: E402


def _ingest_run() -> Any:
    """bench/ingest/run.py as a module of another name (this file is `run` too)."""
    spec = importlib.util.spec_from_file_location("ingest_run", INGEST / "run.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {INGEST / 'run.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ingest = _ingest_run()
RESULTS = SCALEOUT.parents[1] / "bench" / "results" / "scaleout"
procs.RESULTS = RESULTS  # procs.start() writes each process's log there
SINGLE_LUA = INGEST / "single.lua"
ME_LUA = SCALEOUT.parent / "http_baseline" / "wrk_bounded.lua"
QUANTILES_LUA = SCALEOUT / "quantiles.lua"
HOUR = 3600.0
WINDOW = 3 * HOUR  # each ping run's own time window (a device's 10 s of pings span < 1.5 h)
DRAIN_TIMEOUT = 300.0


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class Instance:
    """One wrk process: its target, threads, connections and (for pings) devices."""

    server: Server
    threads: int
    connections: int
    devices: list[Device]


@dataclass
class Outcome:
    requests: int
    rps: float
    errors: int
    quantiles: list[tuple[float, float]]  # (percent, ms)
    output: str


@dataclass
class Run:
    endpoint: str
    apis: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    api_us: float  # CPU of both API processes per request
    idle_api_us: float  # of which the API process wrk did not load (1-API layout)
    wrk_us: float
    others_us: dict[str, float] = field(default_factory=dict)  # worker, PostgreSQL, Redis
    drain_s: float = 0.0
    load: str = ""
    api_cores: float = 0.0  # CPU of the API processes ÷ wall time of the wrk run
    machine_cores: float = 0.0  # the whole machine's busy CPU ÷ the same wall time


def parse(output: str, cap: int) -> Outcome:
    found = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None or rate is None:
        raise SystemExit(f"wrk gave no result:\n{output}")
    requests = int(found.group(1))
    if requests >= cap:
        raise SystemExit("wrk hit its request cap: the figures would be wrong")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    if non2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non2xx.group(1))
    if not202 := re.search(r"^answers other than 202: (\d+)", output, re.M):
        errors = max(errors, int(not202.group(1)))
    quantiles = [
        (float(q), int(us) / 1000) for q, us in re.findall(r"^quantile (\S+) (\d+)$", output, re.M)
    ]
    if not quantiles:
        raise SystemExit(f"wrk printed no quantiles:\n{output}")
    return Outcome(requests, float(rate.group(1)), errors, quantiles, output)


def merged_percentile(outcomes: list[Outcome], percent: float) -> float:
    """The `percent` percentile of the instances' distributions together: each grid point stands
    for the share of its instance's requests between the previous grid point and itself."""
    points: list[tuple[float, float]] = []
    for one in outcomes:
        previous = 0.0
        for q, ms in one.quantiles:
            points.append((ms, (q - previous) / 100 * one.requests))
            previous = q
    points.sort()
    total = sum(w for _, w in points)
    wanted, seen = percent / 100 * total, 0.0
    for ms, weight in points:
        seen += weight
        if seen >= wanted - 1e-9:
            return ms
    return points[-1][0]


def run_wrk(
    instances: list[Instance], *, seconds: float, endpoint: str, label: str, first: float
) -> tuple[list[Outcome], float]:
    """Runs the instances at the same time; returns their outcomes and wrk's own CPU seconds."""
    started: list[tuple[list[str], subprocess.Popen[str], int]] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for n, one in enumerate(instances):
        cap = int(seconds * 50_000 / one.threads)  # far above one process's rate
        env = {
            **os.environ,
            "BENCH_THREADS": str(one.threads),
            "BENCH_MAX_REQUESTS": str(cap),
            "BENCH_RUN": f"{label}-{n}-{uuid.uuid4().hex[:8]}",
        }
        if endpoint == "track":
            tokens = RESULTS / f"{label}-{n}.tokens"
            tokens.write_text("".join(f"{d.token} {int(first)}\n" for d in one.devices))
            env |= {"BENCH_BASE_SCRIPT": str(SINGLE_LUA), "BENCH_TOKENS": str(tokens)}
        else:
            env |= {"BENCH_BASE_SCRIPT": str(ME_LUA), "BENCH_TOKEN": one.devices[0].token}
        path = "/usage/track" if endpoint == "track" else "/me"
        argv = [
            "wrk", f"-t{one.threads}", f"-c{one.connections}", f"-d{seconds:g}s",
            "--timeout=5s", "--latency", "-s", str(QUANTILES_LUA), one.server.base + path,
        ]  # fmt: skip
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started.append((argv, process, cap * one.threads))
    outcomes = []
    with (RESULTS / "wrk.log").open("a") as log:
        for argv, process, cap in started:
            out, _ = process.communicate(timeout=seconds + 60)
            log.write(f"$ {' '.join(argv)}  # {label}\n{out}\n")
            if process.returncode != 0:
                raise SystemExit(f"wrk failed ({process.returncode}):\n{out}")
            outcomes.append(parse(out, cap))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return outcomes, wrk_cpu


# --- the measurement ----------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    apis: list[Server]
    worker: Server
    devices: list[Device]
    redis: Redis
    stream: str
    meter: CpuMeter
    first: float  # the first ping run's window starts here
    windows: int = 0
    pings_answered: int = 0  # 202s counted by wrk
    in_flight: int = 0  # connections of the ping runs: requests unanswered when wrk stopped

    def layout(self, apis: int, connections: int) -> list[Instance]:
        if apis == 1:
            return [Instance(self.apis[0], 2, connections, self.devices)]
        half = connections // 2
        return [
            Instance(self.apis[0], 1, half, self.devices[0::2]),
            Instance(self.apis[1], 1, half, self.devices[1::2]),
        ]

    def drained(self) -> float:
        """Seconds until the stream is empty (the worker deletes an entry after its commit)."""
        started = time.monotonic()
        while self.redis.xlen(self.stream):
            if time.monotonic() - started > DRAIN_TIMEOUT:
                raise SystemExit(f"the stream was not drained within {DRAIN_TIMEOUT:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def measure(self, endpoint: str, apis: int, seconds: float, label: str) -> Run:
        load = loadavg()
        first = self.first + self.windows * WINDOW
        self.windows += 1
        api_before = {s.pid: cpu_of(s.pid) for s in self.apis}
        self.meter.start()
        busy_before, wall_before = machine_busy(), time.monotonic()
        outcomes, wrk_cpu = run_wrk(
            self.layout(apis, self.args.connections),
            seconds=seconds,
            endpoint=endpoint,
            label=label,
            first=first,
        )
        api_spent = {s.pid: cpu_of(s.pid) - api_before[s.pid] for s in self.apis}
        wall = time.monotonic() - wall_before
        machine = (machine_busy() - busy_before) / wall
        drain = self.drained() if endpoint == "track" else 0.0
        others = self.meter.stop()
        requests = sum(o.requests for o in outcomes)
        if endpoint == "track":
            self.pings_answered += requests - sum(o.errors for o in outcomes)
            self.in_flight += self.args.connections
        per = 1e6 / max(requests, 1)
        return Run(
            endpoint=endpoint,
            apis=apis,
            rps=sum(o.rps for o in outcomes),
            p50_ms=merged_percentile(outcomes, 50),
            p99_ms=merged_percentile(outcomes, 99),
            requests=requests,
            errors=sum(o.errors for o in outcomes),
            api_us=sum(api_spent.values()) * per,
            idle_api_us=(api_spent[self.apis[1].pid] * per) if apis == 1 else 0.0,
            wrk_us=wrk_cpu * per,
            others_us={k: v * per for k, v in others.items()} if endpoint == "track" else {},
            drain_s=drain,
            load=load,
            api_cores=sum(api_spent.values()) / wall,
            machine_cores=machine,
        )


def machine_busy() -> float:
    """CPU seconds all cores of the machine have been busy (not idle, not waiting for I/O)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(below: float, start_by: datetime | None) -> str:
    deadline = start_by or datetime.now(UTC).replace(microsecond=0)
    say(f"waiting for a 1-minute load average below {below} (at the latest {deadline:%H:%M} UTC)")
    while True:
        now = datetime.now(UTC)
        current = os.getloadavg()[0]
        if current < below:
            return f"{loadavg()} (below {below} at {now:%H:%M:%S} UTC)"
        if now >= deadline:
            return f"{loadavg()} (still {current:.2f} at the {deadline:%H:%M} UTC deadline)"
        say(f"  {now:%H:%M:%S} load {loadavg()}")
        time.sleep(min(10.0, max(0.5, (deadline - now).total_seconds())))


def med(runs: list[Run], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in runs))


def report_rows(runs: list[Run], lines: list[str]) -> None:
    names = {"track": "`POST /usage/track` (1 ping)", "me": "`GET /me`"}
    lines.append(
        "| endpoint | API processes | req/s (runs) | median req/s | p50 ms | p99 ms | API CPU "
        "µs/req | wrk CPU µs/req | worker / PostgreSQL / Redis CPU µs/req | drain after s "
        "| API cores busy | machine cores busy | errors |"
    )
    lines.append(
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
    )
    for endpoint in ("track", "me"):
        for apis in (1, 2):
            own = [r for r in runs if r.endpoint == endpoint and r.apis == apis]
            if not own:
                continue
            others = "—"
            if endpoint == "track":
                others = " / ".join(
                    f"{statistics.median(r.others_us[k] for r in own):.0f}"
                    for k in ("worker", "PostgreSQL", "Redis")
                )
            lines.append(
                f"| {names[endpoint]} | {apis} | {', '.join(f'{r.rps:.0f}' for r in own)} | "
                f"**{med(own, 'rps'):.0f}** | {med(own, 'p50_ms'):.2f} | {med(own, 'p99_ms'):.2f} "
                f"| {med(own, 'api_us'):.0f} | {med(own, 'wrk_us'):.0f} | {others} | "
                f"{med(own, 'drain_s'):.1f} | {med(own, 'api_cores'):.2f} | "
                f"{med(own, 'machine_cores'):.2f} | {sum(r.errors for r in own)} |"
            )
    for endpoint in ("track", "me"):
        one = [r for r in runs if r.endpoint == endpoint and r.apis == 1]
        two = [r for r in runs if r.endpoint == endpoint and r.apis == 2]
        if one and two:
            ratio = med(two, "rps") / med(one, "rps")
            per_round = ", ".join(f"{b.rps / a.rps:.2f}x" for a, b in zip(one, two, strict=True))
            lines.append(
                f"\n{names[endpoint]}: 2 ÷ 1 API processes **{ratio:.2f}x** req/s (per round: "
                f"{per_round}); idle second API in the 1-API runs: "
                f"{med(one, 'idle_api_us'):.1f} µs/req."
            )


def measure_all(args: argparse.Namespace, workdir: Path, lines: list[str]) -> None:
    tag = uuid.uuid4().hex[:10]
    with postgres_database(ingest.ADMIN_URL, f"bench_scaleout_{tag}") as url:
        prefix = f"bench-scaleout-{tag}"
        env = clean_environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_REDIS_URL=ingest.REDIS_URL,
            WORKPULSE_REDIS_PREFIX=prefix,
            WORKPULSE_JWT_SECRET=ingest.SECRET,
            **ingest.BENCH_SETTINGS,
        )
        running: list[Server] = []
        redis = Redis.from_url(ingest.REDIS_URL)
        try:
            migrated = subprocess.run(
                [*workpulse(), "migrate"], cwd=workdir, env=env, capture_output=True, check=False
            )
            if migrated.returncode != 0:
                raise SystemExit(f"workpulse migrate failed:\n{migrated.stderr.decode()}")
            apis = []
            for n in (1, 2):
                port = free_port()
                argv = [*workpulse(), "api", "--host", HOST, "--port", str(port)]
                apis.append(start(f"api{n}", argv, cwd=workdir, env=env, port=port))
                running.append(apis[-1])
            for api in apis:
                wait_ready(api)
            worker = start("worker", [*workpulse(), "worker"], cwd=workdir, env=env)
            running.append(worker)
            wait_for_line(worker, "worker started")
            devices = register_users(apis[0].base, "scaleout", args.users)
            database = f" {url.rsplit('/', 1)[1]} "
            redis_title = "redis-server " + ingest.REDIS_URL.split("//", 1)[1].split("/", 1)[0]
            meter = CpuMeter(
                {
                    "worker": lambda: [worker.pid],
                    "PostgreSQL": lambda: pids_matching(database),
                    "Redis": lambda: pids_matching(redis_title),
                }
            )
            runs = 2 * (2 * args.rounds + 2)  # ping windows needed, warm-ups included
            bench = Bench(
                args, apis, worker, devices, redis, f"{prefix}:pings", meter,
                first=time.time() - (runs + 1) * WINDOW,
            )  # fmt: skip
            start_load = wait_for_quiet(args.quiet_below, args.start_by) if args.wait else loadavg()
            lines.append(f"load average at the start of the measurement: {start_load}")
            lines.append(
                f"\n### wrk -d{args.duration:g}s, {args.connections} connections in all, "
                f"{args.rounds} interleaved rounds after a {args.warmup:g} s warm-up per "
                f"process and endpoint\n"
            )
            for endpoint in ("track", "me"):
                for apis_count in (1, 2):
                    bench.measure(endpoint, apis_count, args.warmup, f"warmup-{endpoint}")
            found: list[Run] = []
            for n in range(args.rounds):
                order = (1, 2) if n % 2 == 0 else (2, 1)
                for endpoint in ("track", "me"):
                    for apis_count in order:
                        one = bench.measure(
                            endpoint, apis_count, args.duration, f"{endpoint}{apis_count}-{n}"
                        )
                        found.append(one)
                        say(
                            f"  round {n + 1} {endpoint:5} {apis_count} API: {one.rps:6.0f} "
                            f"req/s  p50 {one.p50_ms:6.2f}  p99 {one.p99_ms:7.2f} ms  API "
                            f"{one.api_us:4.0f} µs/req  wrk {one.wrk_us:4.0f}  "
                            f"{' '.join(f'{k} {v:.0f}' for k, v in one.others_us.items())}  "
                            f"drain {one.drain_s:.1f} s  errors {one.errors}  API cores "
                            f"{one.api_cores:.2f}  machine busy {one.machine_cores:.2f} "
                            f"(load {one.load})"
                        )
            report_rows(found, lines)
            answered, most = bench.pings_answered, bench.pings_answered + bench.in_flight
            stored = int(psql(url, "SELECT count(*) FROM pings"))
            lines.append(
                f"\nPings: {stored} rows in PostgreSQL for {answered} 202 answers counted by wrk "
                f"(warm-ups included); rows may exceed answers by the requests in flight when "
                f"wrk stopped, at most {bench.in_flight}: "
                f"{'within' if answered <= stored <= most else 'OUTSIDE'} [{answered}, {most}]."
            )
        finally:
            for server in reversed(running):
                server.stop()
            redis.close()
            asyncio.run(ingest.remove_prefix(prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64, help="in all, split over APIs")
    parser.add_argument("--users", type=int, default=16, help="users, 2 devices each")
    parser.add_argument("--quiet-below", type=float, default=3.0)
    parser.add_argument(
        "--start-by",
        type=lambda s: datetime.now(UTC).replace(
            hour=int(s.split(":")[0]), minute=int(s.split(":")[1]), second=0, microsecond=0
        ),
        default=None,
        help="HH:MM UTC today: measure then at the latest (default: 30 minutes from now)",
    )
    parser.add_argument("--no-wait", dest="wait", action="store_false")
    args = parser.parse_args()
    if args.start_by is None:
        args.start_by = datetime.fromtimestamp(time.time() + 1800, UTC)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wrk.log").write_text("")
    lines = [
        f"# bench/scaleout, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"command: python {' '.join(sys.argv)}",
        f"{ingest.git_state()}; Python {platform.python_version()}; {ingest.versions()}",
        f"{os.cpu_count()} CPUs; load average when the script started {loadavg()}",
    ]
    for line in lines:
        say(line)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        measure_all(args, Path(tmp), lines)
    lines.append(f"\nload average at the end {loadavg()}; logs and wrk output in {RESULTS}")
    text = "\n".join(lines) + "\n"
    (RESULTS / "report.md").write_text(text)
    say("\n" + text)


if __name__ == "__main__":
    main()
