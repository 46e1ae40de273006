"""HTTP baseline: `GET /me` and `GET /health` of a real `workpulse api` process against a minimal
FastAPI app doing the same JWT check, measured with wrk on 127.0.0.1 in the same run.

    python3 -m uv run python bench/http_baseline/run.py             # ~2 minutes
    python3 -m uv run python bench/http_baseline/run.py --profile   # then py-spy both /me
    python3 -m uv run python bench/http_baseline/run.py --targets minimal,me \
        --env WORKPULSE_LOG_LEVEL=warning                           # a setting's effect

What it does:
1. checks that `wrk` is installed (it installs nothing; it says how when it is missing);
2. in a temporary directory, runs `workpulse migrate` then `workpulse api` (one uvicorn process,
   embedded SQLite, default settings: info-level JSON access log to stderr, which goes to a file),
   registers a user over HTTP and takes its access token;
3. starts `minimal_app.py` as one uvicorn process with the same JWT secret;
4. warms each target up, then runs wrk `--runs` times per target, interleaved (minimal, /me,
   /health, minimal, ...) so that noise from other processes on the machine falls on all three;
5. prints a Markdown table of medians: req/s, p50, p99, and the server's CPU time per request
   (from /proc, less sensitive to neighbours than req/s), plus the ratios;
6. with `--profile` (needs `py-spy` on PATH), records both apps under `GET /me` load and charges
   each one's CPU per request to buckets of frames (`profile_summary.py`), side by side.

`workpulse api` has no multi-process option, so both apps run as one process each. The servers
import `workpulse` as this Python does: set PYTHONPATH to measure another checkout's src/.

Every load is bounded: `-d` seconds, and a per-thread response cap in `wrk_bounded.lua`; only
127.0.0.1 is targeted. Raw wrk output and server logs stay in `bench/results/http_baseline/`
(git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RESULTS = REPO / "bench" / "results" / "http_baseline"
LUA = HERE / "wrk_bounded.lua"
HOST = "127.0.0.1"
GOAL = 1.2
NOISE = 0.05  # run-to-run spread of req/s on the shared 2-core machine (docs/benchmarks.md)
PASSWORD = "bench-password-not-secret"
WRK_HINT = (
    "wrk is not installed. Install it and run again:\n"
    "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y wrk\n"
    "  macOS: brew install wrk\n"
)
PYSPY_HINT = (
    "py-spy is not on PATH. Install it (it is not a project dependency), e.g.\n"
    "  python3 -m pip install py-spy     or     uv tool install py-spy\n"
)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


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
        """User + system CPU of the whole process (all threads) so far, from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        # after the ")" of comm: state is field 3, utime 14 and stime 15 (1-based, man proc)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(name: str, argv: list[str], *, cwd: Path, env: dict[str, str], port: int) -> Server:
    log = RESULTS / f"{name}.stderr.log"
    with log.open("wb") as stderr:  # a file, never an unread pipe: the access log is large
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
    return Server(name, process, port, log)


def request(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_ready(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"{server.name} exited ({server.process.returncode}); see {server.log}"
            )
        with contextlib.suppress(OSError):
            request("GET", server.base + path)
            return
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not answer within {timeout:.0f} s; see {server.log}")


def login(workpulse: Server, email: str) -> tuple[str, float]:
    """A new access token and the monotonic time it expires at."""
    status, body = request(
        "POST", workpulse.base + "/auth/login", {"email": email, "password": PASSWORD}
    )
    if status != 200:
        raise SystemExit(f"login failed: {status} {body}")
    token: str = body["access_token"]
    return token, time.monotonic() + body["expires_in"]


# --- wrk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    label: str
    server: str
    path: str
    authenticated: bool


TARGETS = {
    "minimal": Target("minimal FastAPI + PyJWT, GET /me", "minimal", "/me", True),
    "me": Target("WorkPulse GET /me", "workpulse", "/me", True),
    "health": Target("WorkPulse GET /health", "workpulse", "/health", False),
}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses + socket errors
    cpu_us_per_request: float


@dataclass
class Series:
    target: Target
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(float(getattr(run, attr)) for run in self.runs)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(found.group(1))
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in found.groups())
    return rps, p50, p99, total, errors


def wrk(
    args: argparse.Namespace, url: str, token: str | None, seconds: float, log: IO[str]
) -> tuple[float, float, float, int, int]:
    # The per-thread cap bounds the count; it is far above what one process serves in `seconds`.
    cap = int(seconds * args.max_rps / args.threads)
    argv = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout=5s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "BENCH_TOKEN": token or "", "BENCH_MAX_REQUESTS": str(cap)}
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    result = parse_wrk(done.stdout)
    if result[3] >= cap * args.threads:
        raise SystemExit(f"wrk hit the request cap ({cap}/thread): raise --max-rps")
    return result


# --- the run ------------------------------------------------------------------------------------


def versions() -> str:
    names = ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "pyjwt")
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return ", ".join(found)


def git_state(source: Path) -> str:
    """The commit of the checkout that `source` (the imported workpulse package) belongs to."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(source), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--", ".")
    return f"git {head}" + (", with uncommitted changes" if dirty else "")


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


@contextlib.contextmanager
def servers(args: argparse.Namespace, workdir: Path) -> Iterator[dict[str, Server]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPULSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    settings = dict(item.split("=", 1) for item in args.env)
    cli = [sys.executable, "-m", "workpulse.entrypoints.cli"]
    migrate = subprocess.run(
        [*cli, "migrate"],
        cwd=workdir,
        env={**env, **settings},
        capture_output=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise SystemExit(f"workpulse migrate failed:\n{migrate.stderr.decode()}")
    running: dict[str, Server] = {}
    try:
        port = free_port()
        running["workpulse"] = start(
            "workpulse",
            [*cli, "api", "--host", HOST, "--port", str(port)],
            cwd=workdir,
            env={**env, **settings},
            port=port,
        )
        wait_ready(running["workpulse"], "/health")
        secret_file = workdir / "workpulse.db.jwt-secret"  # the embedded mode's generated secret
        port = free_port()
        running["minimal"] = start(
            "minimal",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(HERE),
                "minimal_app:app",
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
            env={**env, "BENCH_JWT_SECRET": secret_file.read_text().strip()},
            port=port,
        )
        wait_ready(running["minimal"], "/me")
        yield running
    finally:
        for server in running.values():
            server.stop()


def check_answers(running: dict[str, Server], token: str) -> None:
    """Both /me answer 200 for the same user, and refuse a request without a token."""
    status, mine = request("GET", running["workpulse"].base + "/me", token=token)
    status_min, minimal = request("GET", running["minimal"].base + "/me", token=token)
    if status != 200 or status_min != 200 or mine["id"] != minimal["id"]:
        raise SystemExit(f"/me answers differ: {status} {mine} vs {status_min} {minimal}")
    for server in running.values():
        refused, _ = request("GET", server.base + "/me")
        if refused != 401:
            raise SystemExit(f"{server.name} /me without a token answered {refused}, not 401")
    status, health = request("GET", running["workpulse"].base + "/health")
    if status != 200:
        raise SystemExit(f"/health answered {status} {health}")


def measure(args: argparse.Namespace, running: dict[str, Server], email: str) -> list[Series]:
    """Warm up, then interleaved rounds. One token serves every round while it has time left:
    a new token would make the first requests of a run miss WorkPulse's token and session
    caches all at once, a cold start that the warm-up exists to keep out of the figures."""
    series = [Series(TARGETS[name]) for name in args.targets]
    round_seconds = len(series) * (args.duration + 2)
    with (RESULTS / "wrk.log").open("w") as log:
        token, expires = login(running["workpulse"], email)
        for one in series:  # warm-up: imports, caches, connection pools
            target = one.target
            server = running[target.server]
            wrk(
                args,
                server.base + target.path,
                token if target.authenticated else None,
                args.warmup,
                log,
            )
        for round_ in range(1, args.runs + 1):
            if time.monotonic() + round_seconds + 30 > expires:  # a long run outlives the TTL
                token, expires = login(running["workpulse"], email)
                wrk(args, running["workpulse"].base + "/me", token, args.warmup, log)
            for one in series:
                server = running[one.target.server]
                before = server.cpu_seconds()
                rps, p50, p99, total, errors = wrk(
                    args,
                    server.base + one.target.path,
                    token if one.target.authenticated else None,
                    args.duration,
                    log,
                )
                cpu_us = (server.cpu_seconds() - before) / max(total, 1) * 1e6
                one.runs.append(Run(rps, p50, p99, total, errors, cpu_us))
                say(
                    f"  run {round_}/{args.runs}  {one.target.label:34} {rps:8.0f} req/s  "
                    f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  {cpu_us:6.0f} µs CPU/req  "
                    f"errors {errors}  (load {loadavg()})"
                )
    return series


def table(series: list[Series], args: argparse.Namespace) -> str:
    rows = [
        "| target | req/s | p50 ms | p99 ms | server CPU µs/req | errors (all runs) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for one in series:
        errors = sum(run.errors for run in one.runs)
        rows.append(
            f"| {one.target.label} | {one.median('rps'):.0f} | {one.median('p50_ms'):.2f} "
            f"| {one.median('p99_ms'):.2f} | {one.median('cpu_us_per_request'):.0f} | {errors} |"
        )
    rows.append("")
    by_name = dict(zip(args.targets, series, strict=True))
    if "minimal" in by_name and "me" in by_name:
        minimal, me = by_name["minimal"], by_name["me"]
        ratio = minimal.median("rps") / me.median("rps")
        cpu_ratio = me.median("cpu_us_per_request") / minimal.median("cpu_us_per_request")
        if abs(ratio - GOAL) < NOISE * GOAL:
            verdict = f"at the goal ≤ {GOAL}x within this machine's ±{NOISE:.0%} run-to-run noise"
        else:
            verdict = ("meets" if ratio <= GOAL else "misses") + f" the goal ≤ {GOAL}x"
        rows.append(
            f"Ratio minimal req/s ÷ WorkPulse /me req/s: **{ratio:.2f}x** ({verdict}); "
            f"CPU per request, /me ÷ minimal: {cpu_ratio:.2f}x."
        )
    rows.append(
        f"Medians of {args.runs} interleaved runs per target, each wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s after a {args.warmup:g} s warm-up."
    )
    return "\n".join(rows)


def record(
    args: argparse.Namespace, server: Server, token: str, fmt: str, out: Path, log: IO[str]
) -> float:
    """One py-spy recording of `server` while wrk loads GET /me; returns its CPU µs/request.

    `--nonblocking`: py-spy reads the process without pausing it, so the load is not disturbed.
    """
    spy = subprocess.Popen(
        [
            args.pyspy,
            "record",
            "--nonblocking",
            "--rate",
            str(args.profile_rate),
            "--duration",
            f"{args.duration:g}",
            "--format",
            fmt,
            "--output",
            str(out),
            "--pid",
            str(server.process.pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    before = server.cpu_seconds()
    total = wrk(args, server.base + "/me", token, args.duration + 1, log)[3]
    cpu_us = (server.cpu_seconds() - before) / max(total, 1) * 1e6
    if spy.wait(timeout=60) != 0:
        raise SystemExit(f"py-spy failed on {server.name} (needs ptrace rights: run as root?)")
    return cpu_us


def profile(args: argparse.Namespace, running: dict[str, Server], email: str) -> None:
    """Profile GET /me of both servers and charge the difference to buckets of frames."""
    from profile_summary import compare, hottest, load

    token, _ = login(running["workpulse"], email)
    measured = {}
    with (RESULTS / "wrk-profile.log").open("w") as log:
        wrk(args, running["workpulse"].base + "/me", token, args.warmup, log)  # a new token
        for name in ("minimal", "workpulse"):
            server = running[name]
            raw = RESULTS / f"{name}-me.raw"
            cpu_us = record(args, server, token, "raw", raw, log)
            record(args, server, token, "flamegraph", RESULTS / f"{name}-me.svg", log)
            measured[name] = (name, load(raw), cpu_us)
    say(f"\n## Where GET /me spends its CPU (py-spy --rate {args.profile_rate}, non-blocking)\n")
    say(compare(measured["minimal"], measured["workpulse"]))
    say("Hottest WorkPulse frames, inclusive share of samples (entry frames left out):\n")
    say("\n".join(hottest(measured["workpulse"][1], 30)))
    say(f"\nFlame graphs: {RESULTS}/minimal-me.svg, {RESULTS}/workpulse-me.svg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per target")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per target")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--max-rps", type=int, default=100_000, help="request cap per run = duration x this"
    )
    parser.add_argument("--profile", action="store_true", help="then profile /me with py-spy")
    parser.add_argument("--profile-rate", type=int, default=500, help="py-spy samples/s")
    parser.add_argument(
        "--targets",
        type=lambda text: text.split(","),
        default=list(TARGETS),
        help=f"comma-separated, of {','.join(TARGETS)} (default: all)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="WORKPULSE_NAME=VALUE",
        help="a setting for the WorkPulse process (default: none, the defaults); repeatable",
    )
    parser.add_argument("--json", type=Path, help="also write the medians and runs here")
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    if any("=" not in item or not item.startswith("WORKPULSE_") for item in args.env):
        parser.error("--env takes WORKPULSE_NAME=VALUE")
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        sys.stderr.write(WRK_HINT)
        raise SystemExit(2)
    args.pyspy = shutil.which("py-spy")
    if args.profile and args.pyspy is None:
        sys.stderr.write(PYSPY_HINT)
        raise SystemExit(2)
    RESULTS.mkdir(parents=True, exist_ok=True)

    import workpulse

    started = datetime.now(UTC)
    say(f"# HTTP baseline, {started:%Y-%m-%d %H:%M} UTC")
    say(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    source = Path(workpulse.__file__).parent
    say(f"workpulse from {source} ({git_state(source)})")
    say(f"Python {platform.python_version()}, {versions()}")
    say(f"{os.cpu_count()} CPUs, load average at start {loadavg()}, wrk {args.wrk}")
    say(f"WorkPulse settings: {' '.join(args.env) or 'defaults'}\n")

    with (
        tempfile.TemporaryDirectory(prefix="wp-http-baseline-") as tmp,
        servers(args, Path(tmp)) as running,
    ):
        email = "bench@example.com"
        status, body = request(
            "POST",
            running["workpulse"].base + "/auth/register",
            {"email": email, "password": PASSWORD, "name": "Bench", "organization_name": "Bench"},
        )
        if status != 201:
            raise SystemExit(f"register failed: {status} {body}")
        check_answers(running, body["access_token"])
        series = measure(args, running, email)
        say("\n" + table(series, args))
        say(f"\nload average at end {loadavg()}; wrk output and server logs in {RESULTS}")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "date": started.isoformat(),
                        "args": {k: v for k, v in vars(args).items() if k != "json"},
                        "targets": [
                            {
                                "label": one.target.label,
                                "median_rps": one.median("rps"),
                                "median_p50_ms": one.median("p50_ms"),
                                "median_p99_ms": one.median("p99_ms"),
                                "median_cpu_us_per_request": one.median("cpu_us_per_request"),
                                "runs": [vars(run) for run in one.runs],
                            }
                            for one in series
                        ],
                    },
                    indent=2,
                )
            )
        if args.profile:
            profile(args, running, email)


if __name__ == "__main__":
    main()
