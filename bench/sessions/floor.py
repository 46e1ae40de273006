"""The floor under `POST /sessions/{id}/activity` on this machine: the same SQL as the API's
single-event path, sent by a bare asyncpg loop (no HTTP, no SQLAlchemy, no pydantic).

Variants, each one event of one second per "request" on a migrated throwaway database
(TEST_POSTGRES_URL, default the local server):

- `before`: the statements of the first implementation: BEGIN, read the session, read the
  ledger for the event_id, insert the ledger row, update the counters, COMMIT (6 round trips);
- `after`: what the API sends now: BEGIN, read the session, one statement that inserts the
  ledger row and adds to the counters, COMMIT (4 round trips).

Reported: client CPU µs and PostgreSQL backend CPU µs per request, one request at a time; then
requests/s with `--connections` connections in parallel over 32 sessions and over one session,
for `--seconds` each (bounded), which is what PostgreSQL alone sustains on these cores.

    python3 -m uv run python bench/sessions/floor.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOAD = os.getloadavg()[0]

GET = (
    "SELECT id, organization_id, user_id, project_id, status, start_time, end_time,"
    " total_active_seconds, total_idle_seconds, last_activity_at, version"
    " FROM work_sessions WHERE organization_id = $1 AND id = $2"
)
RECORDED = (
    "SELECT event_id, activity_type, duration_seconds, timestamp, app_name, url, domain"
    " FROM activity_logs WHERE organization_id = $1 AND session_id = $2"
    " AND session_start = $3 AND event_id = ANY($4::varchar[])"
)
INSERT = (
    "INSERT INTO activity_logs (organization_id, user_id, session_id, session_start, event_id,"
    " activity_type, duration_seconds, app_name, url, domain, timestamp)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, $8)"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
UPDATE = (
    "UPDATE work_sessions SET total_active_seconds = total_active_seconds + $3,"
    " total_idle_seconds = total_idle_seconds + 0,"
    " last_activity_at = greatest(coalesce(last_activity_at, $4), $4), version = version + 1"
    " WHERE organization_id = $1 AND id = $2 AND status = 'active'"
    " AND total_active_seconds + total_idle_seconds + $3 <= $5"
    " RETURNING id, organization_id, user_id, project_id, status, start_time, end_time,"
    " total_active_seconds, total_idle_seconds, last_activity_at, version"
)
# One statement that commits by itself: lock the session row if the event fits, insert the
# ledger row if the session was locked, add to the counters if the row was inserted.
LOCKING = (
    "WITH s AS (SELECT id FROM work_sessions WHERE organization_id = $1 AND id = $3"
    " AND status = 'active' AND total_active_seconds + total_idle_seconds + $7 <= $9"
    " FOR NO KEY UPDATE),"
    " ins AS (INSERT INTO activity_logs (organization_id, user_id, session_id, session_start,"
    " event_id, activity_type, duration_seconds, timestamp)"
    " SELECT $1, $2, s.id, $4, $5, $6, $7, $8 FROM s"
    " ON CONFLICT DO NOTHING RETURNING activity_type, duration_seconds, timestamp),"
    " upd AS (UPDATE work_sessions AS w SET"
    " total_active_seconds = w.total_active_seconds"
    " + CASE WHEN ins.activity_type = 'active' THEN ins.duration_seconds ELSE 0 END,"
    " total_idle_seconds = w.total_idle_seconds"
    " + CASE WHEN ins.activity_type = 'idle' THEN ins.duration_seconds ELSE 0 END,"
    " last_activity_at = greatest(coalesce(w.last_activity_at, ins.timestamp), ins.timestamp),"
    " version = w.version + 1 FROM ins WHERE w.id = $3"
    " RETURNING w.id, w.organization_id, w.user_id, w.project_id, w.status, w.start_time,"
    " w.end_time, w.total_active_seconds, w.total_idle_seconds, w.last_activity_at, w.version)"
    " SELECT EXISTS (SELECT FROM s) AS open, EXISTS (SELECT FROM ins) AS inserted, upd.*"
    " FROM (SELECT) AS one LEFT JOIN upd ON true"
)
# The statement of adapters/db/sessions.py (_PG_RECORD_ONE), with its parameters in order.
COMBINED = (
    "WITH ins AS ("
    + INSERT.replace("RETURNING event_id", "RETURNING activity_type, duration_seconds, timestamp")
    + "),"
    " upd AS (UPDATE work_sessions AS s SET"
    " total_active_seconds = s.total_active_seconds"
    " + CASE WHEN ins.activity_type = 'active' THEN ins.duration_seconds ELSE 0 END,"
    " total_idle_seconds = s.total_idle_seconds"
    " + CASE WHEN ins.activity_type = 'idle' THEN ins.duration_seconds ELSE 0 END,"
    " last_activity_at = greatest(coalesce(s.last_activity_at, ins.timestamp), ins.timestamp),"
    " version = s.version + 1 FROM ins"
    " WHERE s.organization_id = $1 AND s.id = $3 AND s.status = 'active'"
    " AND s.total_active_seconds + s.total_idle_seconds + ins.duration_seconds <= $9"
    " RETURNING s.id, s.organization_id, s.user_id, s.project_id, s.status, s.start_time,"
    " s.end_time, s.total_active_seconds, s.total_idle_seconds, s.last_activity_at, s.version)"
    " SELECT EXISTS (SELECT FROM ins) AS inserted, upd.* FROM (SELECT) AS one"
    " LEFT JOIN upd ON true"
)


def backend_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


class Target:
    def __init__(self, organization: uuid.UUID, user: uuid.UUID, session: uuid.UUID) -> None:
        self.organization, self.user, self.session = organization, user, session
        self.start = datetime.now(UTC) - timedelta(hours=20)


async def one(conn: asyncpg.Connection, target: Target, variant: str) -> None:
    event = uuid.uuid4().hex
    now = datetime.now(UTC)
    limit = int((now - target.start).total_seconds()) + 300
    if variant == "autocommit":
        row = await conn.fetchrow(GET, target.organization, target.session)
        assert row is not None
        updated = await conn.fetchrow(
            LOCKING, target.organization, target.user, target.session, target.start,
            event, "active", 1, now, limit,
        )  # fmt: skip
        assert updated is not None
        assert updated["inserted"], updated
        return
    async with conn.transaction():
        row = await conn.fetchrow(GET, target.organization, target.session)
        assert row is not None
        if variant == "before":
            await conn.fetch(RECORDED, target.organization, target.session, target.start, [event])
            await conn.fetch(
                INSERT, target.organization, target.user, target.session, target.start,
                event, "active", 1, now,
            )  # fmt: skip
            updated = await conn.fetchrow(
                UPDATE, target.organization, target.session, 1, now, limit
            )
        else:
            updated = await conn.fetchrow(
                COMBINED, target.organization, target.user, target.session, target.start,
                event, "active", 1, now, limit,
            )  # fmt: skip
        assert updated is not None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WORKPULSE_")},
            "WORKPULSE_DATABASE_URL": url,
            "WORKPULSE_JWT_SECRET": "bench-secret-" + "x" * 40,
        }
        exe = str(Path(sys.executable).with_name("workpulse"))
        migrate = await asyncio.create_subprocess_exec(
            exe,
            "migrate",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await migrate.wait() != 0:
            sys.exit("workpulse migrate failed")
        await run(url, name, args)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(url: str, name: str, args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(url, min_size=args.connections, max_size=args.connections)
    targets = []
    async with pool.acquire() as conn:
        for k in range(32):
            org = await conn.fetchval(
                "INSERT INTO organizations (name) VALUES ($1) RETURNING id", f"o{k}"
            )
            user = await conn.fetchval(
                "INSERT INTO users (organization_id, email, name, password_hash)"
                " VALUES ($1, $2, 'n', 'x') RETURNING id",
                org,
                f"u{k}@example.com",
            )
            target = Target(org, user, uuid.uuid4())
            await conn.execute(
                "INSERT INTO work_sessions (id, organization_id, user_id, start_time)"
                " VALUES ($1, $2, $3, $4)",
                target.session,
                org,
                user,
                target.start,
            )
            targets.append(target)
        month = targets[0].start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        upper = (month + timedelta(days=32)).replace(day=1)
        part = f"activity_logs_p{month:%Y_%m}"
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", part):
            await conn.execute(
                f"CREATE TABLE {part} PARTITION OF activity_logs"
                f" FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
            )
        pids = [
            r["pid"]
            for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
        ]
    out = sys.stdout
    out.write(
        f"bench/sessions/floor.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average"
        f" {LOAD:.2f} at start\n\n| variant | client CPU µs/req | PostgreSQL CPU µs/req |"
        f" req/s, {args.connections} conn, 32 sessions | req/s, one session |\n"
        "| --- | ---: | ---: | ---: | ---: |\n"
    )
    for variant in ("before", "after", "autocommit"):
        async with pool.acquire() as conn:
            for _ in range(200):
                await one(conn, targets[0], variant)
            own, pg = time.process_time(), backend_cpu(pids)
            for k in range(args.calls):
                await one(conn, targets[k % 32], variant)
            client_us = (time.process_time() - own) / args.calls * 1e6
            pg_us = (backend_cpu(pids) - pg) / args.calls * 1e6
        rates = [await throughput(pool, targets, variant, args), 0.0]
        rates[1] = await throughput(pool, targets[:1], variant, args)
        out.write(
            f"| {variant} | {client_us:.0f} | {pg_us:.0f} | {rates[0]:.0f} | {rates[1]:.0f} |\n"
        )
    await pool.close()


async def throughput(
    pool: asyncpg.Pool, targets: list[Target], variant: str, args: argparse.Namespace
) -> float:
    deadline = time.monotonic() + args.seconds
    done = 0

    async def worker(k: int) -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.monotonic() < deadline:
                await one(conn, targets[(k + done) % len(targets)], variant)
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(args.connections)))
    return done / (time.monotonic() - started)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
