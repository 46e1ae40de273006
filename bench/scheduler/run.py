"""What the scheduler's jobs cost on PostgreSQL, for one organization of N users.

In a throwaway database: N users with a working day each (12 spans in 3 apps, some idle),
derived by the worker's own code; then, timed with the job code (services/summaries.py and
services/alerts.py):
1. the midnight run: every user's day summarized;
2. a steady run 15 minutes later with nothing due and no late data (what most runs cost);
3. a run after late data for 1% of the users (their day recomputed);
4. the idle check with N active sessions, N/2 of them idle (one alert each), then again (no
   new alert);
5. the overtime check over the day.

    python3 -m uv run python bench/scheduler/run.py --users 1000

Prints a Markdown block with the command, date, git revision and load average at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from workpulse import bootstrap
from workpulse.adapters.db import migrate
from workpulse.adapters.db.engine import async_url, create_engine
from workpulse.adapters.notifier import InProcessNotifier
from workpulse.domain.ids import OrganizationId, UserId, WorkSessionId
from workpulse.domain.organizations import Organization, OrganizationSettings
from workpulse.domain.pings import Ping
from workpulse.domain.roles import Role
from workpulse.domain.sessions import SessionStatus, WorkSession
from workpulse.domain.users import User
from workpulse.services import alerts, ingest, summaries
from workpulse.services.ports import OwnedPing
from workpulse.settings import Settings

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY = date(2026, 6, 10)
T = TypeVar("T")


async def timed(label: str, work: Callable[[], Awaitable[T]], rows: list[str]) -> T:
    began = time.perf_counter()
    result = await work()
    rows.append(f"| {label} | {time.perf_counter() - began:.3f} s |")
    return result


def usage(organization_id: OrganizationId, user_id: UserId) -> list[OwnedPing]:
    start = datetime.combine(DAY, clock_time(8), UTC)
    owned = []
    for n in range(12):
        app, domain = [("Editor", None), ("Browser", "github.com"), ("Slack", None)][n % 3]
        begin = start + timedelta(minutes=40 * n)
        ping = Ping(
            device_id="laptop",
            app_name=app,
            url=None,
            domain=domain,
            title=None,
            idle=n % 5 == 4,
            start=begin,
            end=begin + timedelta(minutes=35),
            event_id=f"b{n}",
        )
        owned.append(OwnedPing(organization_id, user_id, ping))
    return owned


async def main(users: int) -> None:
    load = os.getloadavg()
    git = await asyncio.create_subprocess_exec(
        "git", "rev-parse", "--short", "HEAD", stdout=asyncio.subprocess.PIPE
    )
    revision = (await git.communicate())[0].decode().strip()
    name = f"bench_scheduler_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(async_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(ADMIN_URL).set(database=name).render_as_string(False)
    rows: list[str] = []
    try:
        engine = create_engine(url, pool_size=2, max_overflow=0)
        await migrate.upgrade(engine)
        await engine.dispose()
        settings = Settings(_env_file=None, database_url=url, jwt_secret="b" * 48)
        async with bootstrap.build(settings, role="bench") as container:
            created = datetime.combine(DAY, clock_time(0), UTC)
            organization = Organization(
                OrganizationId(uuid.uuid4()),
                "Bench",
                "free",
                "UTC",
                OrganizationSettings(),
                created,
            )
            members = [
                User(
                    UserId(uuid.uuid4()),
                    organization.id,
                    f"u{n}@example.com",
                    f"U{n}",
                    Role.EMPLOYEE,
                    True,
                    None,
                    created,
                )
                for n in range(users)
            ]
            async with container.database() as uow:
                await uow.organizations.add(organization)
                for member in members:
                    await uow.users.add(member, "x")
                await uow.commit()
            for offset in range(0, users, 50):
                batch = [
                    p for m in members[offset : offset + 50] for p in usage(organization.id, m.id)
                ]
                await ingest.store_and_derive(
                    batch,
                    uow_factory=container.database,
                    settings_of=container.settings_of,
                    partitions=container.partitions,
                )
            midnight = datetime.combine(DAY + timedelta(days=1), clock_time(0), UTC)
            db = container.database

            written = await timed(
                f"summaries at midnight ({users} user-days)",
                lambda: summaries.summarize(organization, uow_factory=db, now=midnight),
                rows,
            )
            assert len(written) == users, len(written)
            # Past the late-data margin, so that only real changes count.
            await asyncio.sleep(1)
            steady = await timed(
                "summaries 15 min later, nothing due, no late data",
                lambda: summaries.summarize(
                    organization,
                    uow_factory=db,
                    now=midnight + timedelta(minutes=15),
                    late_margin=timedelta(0),
                ),
                rows,
            )
            assert steady == [], len(steady)
            late = members[: max(1, users // 100)]
            for member in late:
                extra = usage(organization.id, member.id)[0]
                await ingest.store_and_derive(
                    [OwnedPing(organization.id, member.id, _late(extra.ping))],
                    uow_factory=db,
                    settings_of=container.settings_of,
                    partitions=container.partitions,
                )
            recomputed = await timed(
                f"summaries after late data for {len(late)} users",
                lambda: summaries.summarize(
                    organization,
                    uow_factory=db,
                    now=midnight + timedelta(minutes=30),
                    late_margin=timedelta(0),
                ),
                rows,
            )
            assert len(recomputed) == len(late), len(recomputed)

            now = datetime.combine(DAY, clock_time(15), UTC)
            async with db() as uow:
                for n, member in enumerate(members):
                    await uow.sessions.start(
                        WorkSession(
                            WorkSessionId(uuid.uuid4()),
                            organization.id,
                            member.id,
                            None,
                            SessionStatus.ACTIVE,
                            now - timedelta(minutes=30 if n % 2 else 2),
                            None,
                            0,
                            0,
                            None,
                            1,
                        )
                    )
                await uow.commit()
            notifier = InProcessNotifier()
            raised = await timed(
                f"idle check, {users} active sessions, {users // 2} new alerts",
                lambda: alerts.check_idle(organization, uow_factory=db, notifier=notifier, now=now),
                rows,
            )
            again = await timed(
                "idle check again (same episodes: no alert)",
                lambda: alerts.check_idle(organization, uow_factory=db, notifier=notifier, now=now),
                rows,
            )
            assert (raised, again) == (users // 2, 0), (raised, again)
            await timed(
                "overtime check over the day",
                lambda: alerts.check_overtime(
                    organization, uow_factory=db, notifier=notifier, now=now + timedelta(hours=4)
                ),
                rows,
            )
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
    command = "python3 -m uv run python " + shlex.join(["bench/scheduler/run.py", *sys.argv[1:]])
    sys.stdout.write(
        f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, revision {revision}, "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n\n"
    )
    sys.stdout.write("| step | time |\n| --- | --- |\n" + "\n".join(rows) + "\n")


def _late(ping: Ping) -> Ping:
    """The same span ten hours later, as a late-arriving ping of the same day."""
    return Ping(
        device_id=ping.device_id,
        app_name=ping.app_name,
        url=ping.url,
        domain=ping.domain,
        title=ping.title,
        idle=False,
        start=ping.start + timedelta(hours=10),
        end=(ping.end or ping.start) + timedelta(hours=10),
        event_id="late",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    asyncio.run(main(parser.parse_args().users))
