"""Processes and stores for bench/ingest: servers on free ports with their logs in files, a
throwaway PostgreSQL database, a Redis key prefix of the run's own, and an RSS sampler."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / "bench" / "results" / "ingest"
PASSWORD = "bench-password-not-secret"
START_TIMEOUT = 60.0


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def workpulse() -> list[str]:
    """The `workpulse` command of the interpreter running this script."""
    return [sys.executable, "-m", "workpulse.entrypoints.cli"]


def clean_environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("WORKPULSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


@dataclass
class Server:
    """A started process (an HTTP server when `port` is set), its output going to `log`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the process (all threads) so far, from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], port: int | None = None
) -> Server:
    log = RESULTS / f"{name}.log"
    with log.open("wb") as out:  # a file, never an unread pipe: the access log is large
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    return Server(name, process, log, port)


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_ready(server: Server, path: str = "/health") -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"{server.name} exited ({server.process.returncode}); see {server.log}"
            )
        with contextlib.suppress(OSError):
            call(server.base, "GET", path)
            return
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not answer within {START_TIMEOUT:.0f} s; see {server.log}")


def wait_for_line(server: Server, text: str) -> None:
    """Until the process's log has a line containing `text` (e.g. "worker started")."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"{server.name} exited ({server.process.returncode}); see {server.log}"
            )
        if text in server.log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    server.stop()  # not left running behind the benchmark that gave up on it
    raise SystemExit(f"{server.name} did not log {text!r} within {START_TIMEOUT:.0f} s")


def psql(url: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def postgres_database(admin_url: str, name: str) -> Iterator[str]:
    """A throwaway database on the server of `admin_url`, dropped on leaving."""
    psql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Device:
    """One login (device session) of a user: what a desktop agent holds."""

    user_id: str
    device_id: str
    token: str


def register_users(base: str, tag: str, users: int, devices: int = 2) -> list[Device]:
    """`users` users, each in an organization of its own, logged in from `devices` devices."""
    found: list[Device] = []
    for n in range(users):
        email = f"{tag}-{n}@example.com"
        status, body = call(
            base,
            "POST",
            "/auth/register",
            {"email": email, "password": PASSWORD, "name": f"U{n}", "organization_name": email},
            headers={"X-Device-Id": f"{tag}-{n}-d0"},
        )
        if status != 201:
            raise SystemExit(f"register failed: {status} {body}")
        found.append(Device(body["user"]["id"], f"{tag}-{n}-d0", body["access_token"]))
        for d in range(1, devices):
            status, body = call(
                base,
                "POST",
                "/auth/login",
                {"email": email, "password": PASSWORD},
                headers={"X-Device-Id": f"{tag}-{n}-d{d}"},
            )
            if status != 200:
                raise SystemExit(f"login failed: {status} {body}")
            found.append(Device(found[-1].user_id, f"{tag}-{n}-d{d}", body["access_token"]))
    return found


@dataclass
class RssSampler:
    """Samples VmRSS of named processes every `every` seconds in a thread; keeps the peak per
    (phase, process). `phase` names what the samples taken from now on belong to."""

    every: float = 0.2
    phase: str = "setup"
    pids: dict[str, int] = field(default_factory=dict)
    peaks: dict[tuple[str, str], int] = field(default_factory=dict)  # KiB
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, server: Server) -> None:
        self.pids[server.name] = server.pid

    def forget(self, server: Server) -> None:
        self.pids.pop(server.name, None)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, pid in list(self.pids.items()):
                kib = rss_kib(pid)
                if kib is not None:
                    key = (self.phase, name)
                    self.peaks[key] = max(self.peaks.get(key, 0), kib)


def rss_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_matching(text: str) -> list[int]:
    """Processes whose command line contains `text` (PostgreSQL backends of one database show
    it in their title: "postgres: 15/main: postgres <database> 127.0.0.1(…)")."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


@dataclass
class CpuMeter:
    """CPU seconds spent by named groups of processes between `start()` and `stop()`: the
    servers, and the PostgreSQL backends serving the run's database. Backends that end in
    between lose their share (the pools keep theirs open)."""

    groups: dict[str, Callable[[], list[int]]]
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._before = {
            name: {pid: cpu_of(pid) for pid in pids()} for name, pids in self.groups.items()
        }

    def stop(self) -> dict[str, float]:
        for name, pids in self.groups.items():
            before = self._before.get(name, {})
            self.spent[name] = sum(cpu_of(pid) - before.get(pid, 0.0) for pid in pids())
        return self.spent
