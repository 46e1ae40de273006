"""bench/sessions: POST /sessions/{id}/activity on PostgreSQL, over 32 sessions and over one hot
session, then POST /activity/batch with 100 events over the 32 sessions; req/s, events stored
per second (new ledger rows: accepted events only), p50, p99, and "counter minus ledger" for
every session after the run (must be 0).

    python3 -m uv run python bench/sessions/run.py   # ~1 min; needs wrk (apt-get install wrk)
    python3 -m uv run python bench/sessions/run.py --profile   # + py-spy of the API per load
    python3 bench/ingest/profile_top.py bench/results/sessions/32-sessions.raw  # its top frames

It creates a throwaway PostgreSQL database (TEST_POSTGRES_URL, default the local server),
migrates it, starts one `workpulse api` process on a free port (default settings, JSON access
log to a file; `--env WORKPULSE_X=…` changes a setting), registers 33 users with a session each
(started 23 h 50 min back: room under the wall-clock bound for ~86,000 one-second events each),
and loads 127.0.0.1 only with wrk, bounded in time and in count. Besides wrk's figures it
reports, per request, the CPU time of the API process and of the PostgreSQL backends serving
the bench database (from /proc: steadier than req/s on a shared machine), and how many
connections the pool opened during each run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "bench" / "results" / "sessions"
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"workpulse api exited with {server.returncode}")
        try:
            call(base, "GET", "/health")
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("workpulse api did not answer within 60 s")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOAD_AT_START = os.getloadavg()[0]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of these processes (all threads), from /proc."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings by the processes alive at the second: all of it
    for one that started meanwhile (the pool opens connections as concurrency grows). One that
    ended meanwhile is not counted (none do with a pool of fixed size and no overflow)."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def sessions_established(url: str, name: str) -> int:
    """Connections established to the database so far (`pg_stat_database.sessions`; a
    backend's count reaches the statistics at its first report, a psql session's at its end,
    so this query's own psql session counts at the next reading)."""
    return int(psql(url, f"SELECT sessions FROM pg_stat_database WHERE datname = '{name}'"))


def backends(url: str, name: str) -> list[int]:
    """The PostgreSQL server processes serving the bench database (the API's pool)."""
    rows = psql(url, f"SELECT pid FROM pg_stat_activity WHERE datname = '{name}'"
                " AND pid <> pg_backend_pid()")  # fmt: skip
    return [int(pid) for pid in rows.split()]


def wrk(
    bases: list[str],
    targets: Path,
    args: argparse.Namespace,
    watched: tuple[list[int], str, str] | None = None,
    **env: str,
) -> dict[str, float]:
    """One wrk run per API process at once (the connections shared out between them); with
    `watched` (server pids, database url and name), the servers' and the database's CPU per
    request and the connections the pools opened. With several processes, req/s and requests
    are summed and p50/p99 are the worst of the runs' (wrk's percentiles do not merge)."""
    share = max(1, args.connections // len(bases))
    threads = max(1, min(share, args.threads // len(bases) or 1))
    environment = {
        **os.environ,
        "BENCH_EVENT": args.event,
        "BENCH_TARGETS": str(targets),
        "BENCH_MAX_REQUESTS": str(args.max_requests),
        **env,
    }
    server, url, name = watched or ([], "", "")
    if server and args.profile:
        out = RESULTS / (env.get("BENCH_LABEL") or "run").replace(" ", "-")
        subprocess.Popen([
            args.pyspy, "record", "--nonblocking", "--rate", "250", "--format", "raw",
            "--duration", str(args.duration), "--output", f"{out}.raw", "--pid", str(server[0]),
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    database = backends(url, name) if url else []
    ledger = int(psql(url, "SELECT count(*) FROM activity_logs")) if url else 0
    ended = sessions_established(url, name) if url else 0
    before = cpu_seconds(server), cpu_seconds(database)
    runs = []
    for base in bases:
        command = [
            "wrk", f"-t{threads}", f"-c{share}", f"-d{args.duration}s", "--timeout=5s",
            "--latency", "-s", str(HERE / "activity.lua"), base,
        ]  # fmt: skip
        runs.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
            )
        )
    outputs = [run.communicate(timeout=120) for run in runs]
    after = cpu_seconds(server), cpu_seconds(database + (backends(url, name) if url else []))
    # Minus the two psql sessions in between (the reading above, the backends() call).
    opened = (sessions_established(url, name) - ended - 2) if url else 0
    stored = (int(psql(url, "SELECT count(*) FROM activity_logs")) - ledger) if url else 0
    total: dict[str, float] = {"rps": 0.0, "requests": 0.0, "p50": 0.0, "p99": 0.0}
    seconds = 0.0
    non2xx = 0
    for text, _ in outputs:
        rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
        found = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
        assert rps is not None, text
        assert found is not None, text
        total["rps"] += float(rps.group(1))
        total["requests"] += int(found.group(1))
        seconds = max(
            seconds, float(found.group(2)) * {"ms": 0.001, "s": 1, "m": 60}[found.group(3)]
        )
        for p, v, u in re.findall(r"\s+(50|99)%\s+([\d.]+)(us|ms|s)", text):
            ms = float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
            total[f"p{p}"] = max(total[f"p{p}"], ms)
        failed = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        non2xx += int(failed.group(1)) if failed else 0
    requests = total["requests"]
    return {
        **total,
        "stored_per_second": stored / seconds,
        "non_2xx": non2xx,
        "server_us": spent(before[0], after[0]) / requests * 1e6,
        "postgres_us": spent(before[1], after[1]) / requests * 1e6,
        "opened": opened,
    }


def psql(url: str, sql: str) -> str:
    """Run one statement; retried for a while when the server has no connection slot left
    (the machine's PostgreSQL is shared with other test runs)."""
    for _ in range(40):
        done = subprocess.run(
            ["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return done.stdout
        if "too many clients" not in done.stderr and "remaining connection" not in done.stderr:
            break
        time.sleep(0.25)
    sys.exit(f"psql failed: {done.stderr}")


def drift(url: str) -> tuple[int, int]:
    """(sessions checked, sessions whose counters differ from their ledger)."""
    rows = psql(
        url,
        "SELECT s.total_active_seconds + s.total_idle_seconds = COALESCE((SELECT"
        " sum(duration_seconds) FROM activity_logs a WHERE a.session_id = s.id"
        " AND a.session_start = s.start_time), 0) FROM work_sessions s",
    ).split()
    return len(rows), rows.count("f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument(
        "--env", action="append", default=[], metavar="WORKPULSE_NAME=VALUE",
        help="a setting for the API process (default: none, the defaults); repeatable",
    )  # fmt: skip
    parser.add_argument("--profile", action="store_true", help=f"py-spy raw profiles in {RESULTS}")
    parser.add_argument(
        "--apis", type=int, default=1,
        help="API processes on the one database, the connections shared out between them",
    )  # fmt: skip
    parser.add_argument(
        "--event", default='{"activityType":"active","durationSeconds":1}',
        help="the JSON of one event, e.g. with an appName (default: one second, active)",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    args.pyspy = shutil.which("py-spy")
    if args.profile:
        if args.pyspy is None:
            sys.exit("py-spy is missing: python3 -m pip install py-spy (on PATH)")
        RESULTS.mkdir(parents=True, exist_ok=True)

    name = f"bench_{uuid.uuid4().hex[:8]}"
    psql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    workdir = Path(tempfile.mkdtemp(prefix="bench-sessions-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WORKPULSE_")},
        "WORKPULSE_DATABASE_URL": url,
        "WORKPULSE_JWT_SECRET": "bench-secret-" + "x" * 40,
        "WORKPULSE_PORT": str(port),
        **dict(item.split("=", 1) for item in args.env),
    }
    exe = str(Path(sys.executable).with_name("workpulse"))
    servers: list[subprocess.Popen[bytes]] = []
    bases = [base]
    try:
        subprocess.run([exe, "migrate"], env=env, cwd=workdir, check=True, capture_output=True)
        with (workdir / "api.log").open("wb") as log:
            server = subprocess.Popen([exe, "api"], env=env, cwd=workdir, stderr=log, stdout=log)
            servers.append(server)
            wait_ready(base, server)
            for _ in range(args.apis - 1):  # more API processes on the same database
                port = free_port()
                bases.append(f"http://127.0.0.1:{port}")
                more = subprocess.Popen(
                    [exe, "api"], env={**env, "WORKPULSE_PORT": str(port)}, cwd=workdir,
                    stderr=log, stdout=log,
                )  # fmt: skip
                servers.append(more)
                wait_ready(bases[-1], more)
            # As far back as a start may be (24 h): room for ~86,000 one-second events each.
            start = (datetime.now(UTC) - timedelta(hours=23, minutes=50)).isoformat()
            lines = []
            for k in range(33):
                registered = call(base, "POST", "/auth/register", {
                    "email": f"bench{k}@example.com", "password": "bench password",
                    "name": f"Bench {k}", "organization_name": f"Bench {k}",
                })  # fmt: skip
                token = registered["access_token"]
                session = call(base, "POST", "/sessions/start", {"start_time": start}, token)
                lines.append(f"{session['id']} {token}")
            many, hot = workdir / "many.txt", workdir / "hot.txt"
            many.write_text("\n".join(lines[:32]) + "\n")
            hot.write_text(lines[32] + "\n")
            wrk(bases, many, argparse.Namespace(**{**vars(args), "duration": 3}))  # warm-up
            watched = ([s.pid for s in servers], url, name)
            results = {
                "32 sessions": wrk(bases, many, args, watched, BENCH_LABEL="32 sessions"),
                "one hot session": wrk(bases, hot, args, watched, BENCH_LABEL="hot session"),
                "batch of 100 events, 32 sessions": wrk(
                    bases, many, args, watched, BENCH_LABEL="batch", BENCH_BATCH="100"
                ),
            }  # fmt: skip
        checked, differing = drift(url)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    revision = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    say(f"\nbench/sessions, {when}, git {revision}, load average {LOAD_AT_START:.2f} at start, "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.apis} API "
        f"process(es), "
        f"settings: {' '.join(args.env) or 'defaults'}, event {args.event}\n")  # fmt: skip
    say("| load | req/s | events stored/s | p50 ms | p99 ms | non-2xx | API CPU µs/req | "
        "PostgreSQL CPU µs/req | connections opened |")  # fmt: skip
    say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in results.items():
        events = r["stored_per_second"]  # new ledger rows: accepted events only
        say(f"| {label} | {r['rps']:.0f} | {events:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['non_2xx']:.0f} | {r['server_us']:.0f} | {r['postgres_us']:.0f} | "
            f"{r['opened']:.0f} |")  # fmt: skip
    say(f"\ncounter minus ledger: {differing} of {checked} sessions differ (must be 0)")


if __name__ == "__main__":
    main()
