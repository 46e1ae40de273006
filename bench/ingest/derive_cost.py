"""The worker's derivation alone, in process: batches of live traffic (every device a few new
pings since the last batch, as a worker sees them under single-ping load) stored and derived by
`ingest.store_and_derive`, on SQLite or PostgreSQL. Reports process CPU per ping, wall time per
batch and statements per batch; no HTTP, no queue, nothing else in the process.

    python3 -m uv run python bench/ingest/derive_cost.py                       # SQLite file
    python3 -m uv run python bench/ingest/derive_cost.py --database postgresql://127.0.0.1/test
    python3 -m uv run python bench/ingest/derive_cost.py --users 32 --per-batch 2000 --batches 20

Each user is in an organization of its own, as the bench/ingest users are. PYTHONPATH=<tree>/src
measures another tree on the same data.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvloop

from workpulse import bootstrap
from workpulse.adapters.db import migrate
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.pings import Ping
from workpulse.services import ingest
from workpulse.services.identity import Device, Registration, register
from workpulse.services.ports import OwnedPing
from workpulse.settings import Settings

APPS = [
    ("Editor", None),
    ("Browser", "github.com"),
    ("Browser", "docs.python.org"),
    ("Slack", None),
]


async def users(container: bootstrap.Container, count: int) -> list[tuple[OrganizationId, UserId]]:
    made: list[tuple[OrganizationId, UserId]] = []
    for n in range(count):
        pair = await register(
            Registration(
                email=f"derive-{uuid.uuid4().hex[:10]}@example.com",
                password="correct horse battery",
                name=f"U{n}",
                organization_name=f"Derive {n}",
            ),
            Device(device_id="laptop"),
            uow_factory=container.database,
            hasher=container.hasher,
            tokens=container.tokens,
            clock=container.clock,
            policy=container.auth_policy,
        )
        claims = container.tokens.decode(pair.access_token, container.clock.now())
        made.append((claims.organization_id, claims.user_id))
    return made


def batch(
    rng: random.Random,
    owners: list[tuple[OrganizationId, UserId]],
    clocks: dict[Any, datetime],
    size: int,
    n: int,
) -> list[OwnedPing]:
    devices = [(u, d) for u in range(len(owners)) for d in ("laptop", "desktop")]
    out = []
    for k in range(size):
        u, d = devices[k % len(devices)]
        # Every device on one wall clock, a ping each ~5 s: a batch holds the same stretch of
        # time for all of them, as live traffic does.
        clocks[(u, d)] = max(
            clocks[(u, d)] + timedelta(seconds=1),
            clocks["now"] + timedelta(seconds=5 * (k // len(devices)) + rng.uniform(-1, 1)),
        )
        app, domain = rng.choice(APPS) if rng.random() < 0.2 else APPS[u % len(APPS)]
        org, user = owners[u]
        out.append(
            OwnedPing(
                org,
                user,
                Ping(
                    device_id=d,
                    app_name=app,
                    url=None,
                    domain=domain,
                    title=None,
                    idle=rng.random() < 0.05,
                    start=clocks[(u, d)],
                    end=None,
                    event_id=f"b{n}-{k}",
                ),
            )
        )
    clocks["now"] += timedelta(seconds=5 * (size // len(devices)))
    rng.shuffle(out)
    return out


async def run(args: argparse.Namespace, url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        jwt_secret="derive-cost-" + "x" * 32,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
        log_level="warning",
    )
    async with bootstrap.build(settings, role="worker") as container:
        await migrate.upgrade(container.engine)
        owners = await users(container, args.users)
        rng = random.Random(3)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        clocks: dict[Any, datetime] = {
            (u, d): start for u in range(len(owners)) for d in ("laptop", "desktop")
        }
        clocks["now"] = start
        statements = 0

        @sa.event.listens_for(container.engine.sync_engine, "before_cursor_execute")
        def count(*_: object) -> None:
            nonlocal statements
            statements += 1

        cpu_per_ping, walls, counts = [], [], []
        for n in range(args.warmup + args.batches):
            pings = batch(rng, owners, clocks, args.per_batch, n)
            statements = 0
            cpu, wall = time.process_time(), time.perf_counter()
            await ingest.store_and_derive(
                pings,
                uow_factory=container.database,
                settings_of=container.settings_of,
                partitions=container.partitions,
            )
            if n >= args.warmup:
                cpu_per_ping.append((time.process_time() - cpu) / len(pings) * 1e6)
                walls.append((time.perf_counter() - wall) * 1000)
                counts.append(statements)
        cpu_per_ping.sort()
        walls.sort()
        mid = len(walls) // 2
        sys.stdout.write(
            f"{settings.database_url.split(':')[0]}: {args.users} users x 2 devices, "
            f"each in its own organization, {args.per_batch} pings/batch, "
            f"{args.batches} batches: CPU {cpu_per_ping[mid]:.0f} µs/ping (median; "
            f"{cpu_per_ping[0]:.0f}-{cpu_per_ping[-1]:.0f}), wall {walls[mid]:.0f} ms/batch, "
            f"{sorted(counts)[mid]} statements/batch\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--per-batch", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    sys.stdout.write(
        f"# derive_cost, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}\n"
    )
    with tempfile.TemporaryDirectory(prefix="derive-cost-") as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'derive.db'}"
        uvloop.run(run(args, url))


if __name__ == "__main__":
    main()
