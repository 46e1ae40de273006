"""bench/realtime: 2,000 Socket.IO connections over two `workpulse api` processes (PostgreSQL +
Redis), SESSION_UPDATE events fanned out to each organization's managers; connect time, delivery
latency and memory per socket.

    (cd bench/realtime && npm ci)                       # socket.io-client for the clients
    python3 -m uv run python bench/realtime/run.py      # ~1 min

It creates a throwaway PostgreSQL database (TEST_POSTGRES_URL, default the local server) and its
own Redis key prefix, starts two `workpulse api` processes on free ports of 127.0.0.1, and makes
20 organizations of 10 watchers (owner and managers) and one employee with a session. The
watchers' sockets (10 per watcher, alternating between the processes) are opened by one node
process with the real socket.io-client. Then employees post activity (alternating processes) at
a steady rate; every event reaches the 100 sockets of its organization.

Latency is from the moment the HTTP request was sent to the moment a socket received the event:
the commit happens inside that span, so these figures bound commit-to-receipt from above. Memory
per socket is the growth of the API processes' resident memory from before the sockets to after,
divided by the sockets. Argon2 runs with cheap parameters (hashing is not under test).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
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
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


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


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def organization(base: str, k: int, watchers: int, start: str) -> dict[str, Any]:
    password = "bench password"
    owner = call(base, "POST", "/auth/register", {
        "email": f"owner{k}@example.com", "password": password, "name": f"Owner {k}",
        "organization_name": f"Bench {k}",
    })  # fmt: skip
    org_id, owner_token = owner["user"]["organization_id"], owner["access_token"]

    def member(role: str, n: int) -> str:
        invite = call(base, "POST", "/organizations/current/invites", {"role": role}, owner_token)
        joined = call(base, "POST", "/auth/register", {
            "email": f"{role}{n}-{k}@example.com", "password": password, "name": f"{role} {n}",
            "organization_id": org_id, "invite_token": invite["invite_token"],
        })  # fmt: skip
        return str(joined["access_token"])

    tokens = [owner_token] + [member("manager", n) for n in range(watchers - 1)]
    employee = member("employee", 0)
    session = call(base, "POST", "/sessions/start", {"start_time": start}, employee)
    return {"watchers": tokens, "employee": employee, "session_id": session["id"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organizations", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=10, help="owner + managers per org")
    parser.add_argument("--tabs", type=int, default=10, help="sockets per watcher")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="events per second")
    args = parser.parse_args()
    if shutil.which("node") is None or not (HERE / "node_modules" / "socket.io-client").is_dir():
        sys.exit("needs node and `npm ci` in bench/realtime")

    load_at_start = os.getloadavg()[0]
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    psql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WORKPULSE_")},
        "WORKPULSE_DATABASE_URL": url,
        "WORKPULSE_REDIS_URL": REDIS_URL,
        "WORKPULSE_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "WORKPULSE_JWT_SECRET": "bench-secret-" + "x" * 40,
        "WORKPULSE_ARGON2_TIME_COST": "1",
        "WORKPULSE_ARGON2_MEMORY_KIB": "64",
        "WORKPULSE_ARGON2_PARALLELISM": "1",
        "WORKPULSE_LOG_LEVEL": "warning",
    }
    exe = str(Path(sys.executable).with_name("workpulse"))
    servers: list[subprocess.Popen[bytes]] = []
    clients: subprocess.Popen[str] | None = None
    try:
        subprocess.run([exe, "migrate"], env=env, cwd=workdir, check=True, capture_output=True)
        bases = []
        for k in range(2):
            port = free_port()
            log = (workdir / f"api{k}.log").open("wb")
            servers.append(
                subprocess.Popen(
                    [exe, "api"], env={**env, "WORKPULSE_PORT": str(port)}, cwd=workdir,
                    stdout=log, stderr=log,
                )
            )  # fmt: skip
            bases.append(f"http://127.0.0.1:{port}")
        for base, server in zip(bases, servers, strict=True):
            wait_ready(base, server)

        start = (datetime.now(UTC) - timedelta(hours=20)).isoformat()
        orgs = [
            organization(bases[k % 2], k, args.watchers, start) for k in range(args.organizations)
        ]
        targets = [
            {"url": bases[(w + t) % 2], "token": token}
            for org in orgs
            for w, token in enumerate(org["watchers"])
            for t in range(args.tabs)
        ]
        (workdir / "targets.json").write_text(json.dumps(targets))
        time.sleep(1)
        rss_before = [rss_kib(s.pid) for s in servers]

        clients = subprocess.Popen(
            ["node", str(HERE / "clients.mjs"), str(workdir / "targets.json"), "50"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE,
        )  # fmt: skip
        assert clients.stdout is not None
        assert clients.stdin is not None
        ready = json.loads(clients.stdout.readline())
        time.sleep(2)  # the connect-time presence writes settle
        rss_after = [rss_kib(s.pid) for s in servers]

        sent: dict[tuple[str, int], float] = {}
        answered: dict[tuple[str, int], float] = {}
        cpu_before = [cpu_seconds(s.pid) for s in [*servers, clients]]
        began = time.monotonic()
        for i in range(args.events):
            org = orgs[i % len(orgs)]
            pause = began + i / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t_send = time.time() * 1000
            result = call(
                bases[i % 2],
                "POST",
                f"/sessions/{org['session_id']}/activity",
                {"activityType": "active", "durationSeconds": 1},
                org["employee"],
            )
            key = (result["session"]["id"], result["session"]["version"])
            sent[key], answered[key] = t_send, time.time() * 1000
        time.sleep(3)  # let the last events arrive
        cpu_used = [
            cpu_seconds(s.pid) - b for s, b in zip([*servers, clients], cpu_before, strict=True)
        ]
        clients.stdin.close()
        receipts = json.loads(clients.stdout.readline())["receipts"]
        clients.wait(timeout=30)
    finally:
        if clients is not None and clients.poll() is None:
            clients.kill()
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    from_send = [t - sent[(s, v)] for s, v, t in receipts if (s, v) in sent]
    from_answer = [t - answered[(s, v)] for s, v, t in receipts if (s, v) in answered]
    expected = args.events * args.watchers * args.tabs
    per_process = len(targets) / 2
    growth = [
        (after - before) / per_process for before, after in zip(rss_before, rss_after, strict=True)
    ]
    connect = ready["connect_ms"]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    say(f"\nbench/realtime, {when}, git {revision}, load average {load_at_start:.2f} at start")
    say(f"{ready['connected']} sockets connected ({ready['failed']} failed) over 2 processes in "
        f"{ready['total_ms'] / 1000:.1f} s, 50 connecting at a time")  # fmt: skip
    say("\n| measure | p50 | p99 | max |")
    say("| --- | ---: | ---: | ---: |")
    say(f"| connect, ms | {percentile(connect, 0.5):.1f} | {percentile(connect, 0.99):.1f} | "
        f"{max(connect):.1f} |")  # fmt: skip
    say(f"| request sent → event received, ms | {percentile(from_send, 0.5):.1f} | "
        f"{percentile(from_send, 0.99):.1f} | {max(from_send):.1f} |")  # fmt: skip
    say(f"| response received → event received, ms | {percentile(from_answer, 0.5):.1f} | "
        f"{percentile(from_answer, 0.99):.1f} | {max(from_answer):.1f} |")  # fmt: skip
    say(f"\nevents: {args.events} at {args.rate:g}/s, deliveries {len(receipts)} of {expected} "
        f"expected (mean {statistics.mean(from_send):.1f} ms)")  # fmt: skip
    slowest: dict[tuple[str, int], float] = {}
    for s, v, t in receipts:
        if (s, v) in sent:
            slowest[(s, v)] = max(slowest.get((s, v), 0.0), t - sent[(s, v)])
    first = min(sent.values())
    late = sorted((sent[k] - first) / 1000 for k, worst in slowest.items() if worst > 100)
    say(f"events with a delivery over 100 ms: {len(late)} of {len(sent)}, sent at s "
        + ", ".join(f"{t:.1f}" for t in late[:30]))  # fmt: skip
    say(f"CPU during the events phase, s: API processes {cpu_used[0]:.2f} and {cpu_used[1]:.2f}, "
        f"node clients {cpu_used[2]:.2f}; API CPU per delivery "
        f"{1e6 * (cpu_used[0] + cpu_used[1]) / max(1, len(receipts)):.0f} µs")  # fmt: skip
    say("resident memory per socket, KiB: " + ", ".join(f"{g:.1f}" for g in growth)
        + f" (processes grew {rss_before} → {rss_after} KiB)")  # fmt: skip


if __name__ == "__main__":
    main()
