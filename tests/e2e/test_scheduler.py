"""Real `workpulse scheduler` and `serve` processes: two schedulers on PostgreSQL run each
scheduled time once; a scheduler killed in the middle of a job leaves whole data and another
takes the run over and completes it; alerts reach Socket.IO clients and the HTTP API.

Jobs run every second here (the periods are settings), so a test sees many scheduled times.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

from tests.api import add_member, register_owner
from tests.conftest import TEST_SECRET, create_postgres_database, drop_postgres_database, migrated
from tests.conftest import test_settings as settings_for
from tests.e2e.process import Running, environment, free_port, run, serving, started
from tests.e2e.test_realtime import listening
from tests.services.test_jobs import organization_with
from tests.services.test_jobs_summaries import daily_usage, store
from workpulse import bootstrap
from workpulse.adapters.db.engine import create_engine
from workpulse.adapters.db.tables import alerts, daily_summaries, job_runs
from workpulse.bootstrap import Container
from workpulse.domain.ids import DeviceSessionId
from workpulse.domain.roles import Principal
from workpulse.services import reports, sessions

# Generous upper bound for something to happen; reaching it means it is not going to.
WAIT = 60.0
FAST = {
    "WORKPULSE_SCHEDULER_TICK_SECONDS": "0.2",
    "WORKPULSE_SCHEDULER_LEASE_SECONDS": "2",
    "WORKPULSE_SCHEDULER_RETRY_SECONDS": "1",
    "WORKPULSE_SCHEDULER_IDLE_SECONDS": "1",
    "WORKPULSE_SCHEDULER_OVERTIME_SECONDS": "1",
    "WORKPULSE_SCHEDULER_SUMMARIES_SECONDS": "1",
}


@asynccontextmanager
async def private_postgresql() -> AsyncIterator[str]:
    """A database of this test's own: the schedulers go over every organization in it."""
    url = await create_postgres_database()
    try:
        yield await migrated(url)
    finally:
        await drop_postgres_database(url)


@asynccontextmanager
async def container_on(url: str) -> AsyncIterator[Container]:
    async with bootstrap.build(settings_for(url)) as built:
        yield built


async def until(condition: Any, what: str) -> None:
    """Polls `condition()` (async) until true; fails after WAIT seconds."""
    try:
        async with asyncio.timeout(WAIT):
            # The database is polled: nothing there to wait on.
            for _ in itertools.count():
                if await condition():
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT} s: {what}") from None


def starts(process: Running) -> list[tuple[str, str, int]]:
    return [
        (e["job"], e["scheduled_for"], e["attempt"])
        for e in process.logs()
        if e.get("event") == "job started"
    ]


async def test_two_schedulers_on_postgresql_run_each_scheduled_time_once(
    tmp_path: Path, redis_url: str
) -> None:
    async with private_postgresql() as url, container_on(url) as container:
        organization, (user,) = await organization_with(
            container, [None], created_at=datetime.now(UTC) - timedelta(days=3)
        )
        principal = Principal(user.id, organization.id, user.role, DeviceSessionId(uuid.uuid4()))
        # Silent for an hour: idle, so every idle check (both processes, every second) finds
        # the same episode.
        await sessions.start(
            principal,
            project_id=None,
            start_time=datetime.now(UTC) - timedelta(hours=1),
            deps=container.session_deps,
        )
        env = environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_REDIS_URL=redis_url,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            **FAST,
        )

        async def finished_runs() -> dict[str, int]:
            async with container.engine.connect() as conn:
                rows = await conn.execute(
                    sa.select(job_runs.c.job, sa.func.count())
                    .where(job_runs.c.outcome == "succeeded")
                    .group_by(job_runs.c.job)
                )
                return {str(job): int(count) for job, count in rows}

        async def enough() -> bool:
            found = await finished_runs()
            return all(found.get(job, 0) >= 8 for job in ("idle-alerts", "daily-summaries"))

        metrics_port = free_port()
        with_metrics = {**env, "WORKPULSE_SCHEDULER_METRICS_PORT": str(metrics_port)}
        async with (
            started("scheduler", cwd=tmp_path, env=with_metrics) as first,
            started("scheduler", cwd=tmp_path, env=env) as second,
        ):
            for process in (first, second):
                await process.wait_for_log(lambda e: e["event"] == "scheduler started")
            await until(enough, "8 runs of each frequent job")
            # Runs the first process logged as finished are counted (the counter goes up before
            # the log line), whichever of the two won which runs.
            done = {
                e["job"]
                for e in first.logs()
                if e.get("event") == "job finished" and e["outcome"] == "succeeded"
            }
            async with httpx.AsyncClient(timeout=10) as http:
                scraped = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            assert "# TYPE workpulse_job_runs_total counter" in scraped
            for job in done:
                assert f'workpulse_job_runs_total{{job="{job}",outcome="succeeded"}}' in scraped
            assert await first.stop() == 0, first.output()
            assert await second.stop() == 0, second.output()

        ran = starts(first) + starts(second)
        twice = [key for key, count in Counter(ran).items() if count > 1]
        assert not twice, f"run twice: {twice}"
        async with container.engine.connect() as conn:
            log = (await conn.execute(sa.select(job_runs))).all()
            raised = (
                await conn.execute(sa.select(sa.func.count()).where(alerts.c.user_id == user.id))
            ).scalar_one()
        assert {(r.outcome, r.attempt) for r in log} == {("succeeded", 1)}
        recorded = {(r.job, r.scheduled_for.isoformat(), r.attempt) for r in log}
        assert recorded == set(ran), "every recorded run was started once, and nothing else"
        idle_slots = sorted(r.scheduled_for for r in log if r.job == "idle-alerts")
        assert len(idle_slots) >= 8
        assert raised == 1, "one idle episode, one alert, however many checks"


async def _summary_waiting_on_a_lock(engine: Any) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'workpulse-scheduler'"
                " AND query LIKE 'INSERT INTO daily_summaries%'"
            )
        )
        return bool(waiting.scalar_one())


async def test_a_scheduler_killed_mid_job_leaves_whole_data_and_another_completes_the_run(
    tmp_path: Path, redis_url: str
) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    created = datetime.combine(yesterday, time(0), UTC)
    async with private_postgresql() as url, container_on(url) as container:
        made = [await organization_with(container, ["UTC"], created_at=created) for _ in range(2)]
        made.sort(key=lambda pair: pair[0].id)  # the job goes over organizations by id
        for organization, (user,) in made:
            await store(
                container, organization.id, daily_usage(organization.id, user, yesterday, 1)
            )
        (first_org, (first_user,)), (second_org, (second_user,)) = made
        env = environment(
            WORKPULSE_DATABASE_URL=url,
            WORKPULSE_REDIS_URL=redis_url,
            WORKPULSE_JWT_SECRET=TEST_SECRET,
            WORKPULSE_SCHEDULER_LEASE_SECONDS="2",
            WORKPULSE_SCHEDULER_TICK_SECONDS="0.2",
        )
        blocker = create_engine(url, pool_size=2, max_overflow=0)
        try:
            async with blocker.connect() as lock:
                # The summary of the second organization's user cannot be written while this
                # transaction holds the user's row (the foreign key check waits for it).
                await lock.execute(
                    sa.text("SELECT id FROM users WHERE id = :u FOR UPDATE"),
                    {"u": second_user.id},
                )
                async with started("scheduler", cwd=tmp_path, env=env) as doomed:
                    begun = await doomed.wait_for_log(
                        lambda e: e["event"] == "job started" and e["job"] == "daily-summaries"
                    )
                    await until(lambda: _summary_waiting_on_a_lock(blocker), "the summary waiting")
                    doomed.proc.kill()  # SIGKILL, mid-job
                    await doomed.proc.wait()
                await lock.rollback()
        finally:
            await blocker.dispose()

        async def summaries_of() -> dict[Any, Any]:
            async with container.engine.connect() as conn:
                rows = await conn.execute(sa.select(daily_summaries))
                return {(r.user_id, r.date): r for r in rows}

        between = await summaries_of()
        assert set(between) == {(first_user.id, yesterday)}, "only the committed user-day"

        async with started("scheduler", cwd=tmp_path, env=env) as successor:
            await successor.wait_for_log(
                lambda e: (
                    e["event"] == "job finished"
                    and e["job"] == "daily-summaries"
                    and e["scheduled_for"] == begun["scheduled_for"]
                )
            )
            assert await successor.stop() == 0, successor.output()

        after = await summaries_of()
        assert set(after) == {(first_user.id, yesterday), (second_user.id, yesterday)}
        for organization, (user,) in made:
            row = after[(user.id, yesterday)]
            async with container.database(readonly=True) as uow:
                report = await reports.user_day(
                    uow, organization.id, user.id, yesterday, "UTC", ZoneInfo("UTC")
                )
            assert (row.active_seconds, row.idle_seconds) == (
                report.total_seconds,
                report.idle_seconds,
            )
            assert row.active_seconds > 0
        async with container.engine.connect() as conn:
            run = (
                await conn.execute(
                    sa.select(job_runs).where(
                        job_runs.c.job == "daily-summaries",
                        job_runs.c.scheduled_for == datetime.fromisoformat(begun["scheduled_for"]),
                    )
                )
            ).one()
        assert (run.outcome, run.attempt) == ("succeeded", 2), "taken over after the kill"
        assert first_org.id < second_org.id


def _zone_in_the_afternoon(now: datetime) -> str:
    """A fixed-offset zone where it is now between 13:00 and 23:00, so that today already holds
    more than 10 hours."""
    for hours in range(-12, 15):
        zone = f"Etc/GMT{-hours:+d}" if hours else "UTC"
        if 13 <= now.astimezone(ZoneInfo(zone)).hour <= 22:
            return zone
    raise AssertionError("every hour of the day has a zone")


async def test_idle_and_overtime_alerts_reach_socketio_clients_and_the_alerts_api(
    tmp_path: Path,
) -> None:
    env = environment(**FAST)
    async with serving("serve", cwd=tmp_path, env=env) as (server, _):
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            owner = await register_owner(http, "Alerted")
            employee = await add_member(http, owner, "employee")
            zone = _zone_in_the_afternoon(datetime.now(UTC))
            patched = await http.patch(
                "/organizations/current", json={"timezone": zone}, headers=owner.headers
            )
            assert patched.status_code == 200, patched.text
            async with (
                listening(server.base_url, owner) as manager,
                listening(server.base_url, employee) as own,
            ):
                started_session = await http.post(
                    "/sessions/start",
                    json={"start_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
                    headers=employee.headers,
                )
                assert started_session.status_code == 201, started_session.text
                local_midnight = datetime.combine(
                    datetime.now(ZoneInfo(zone)).date(), time(0), ZoneInfo(zone)
                )
                pings = [
                    {
                        "app_name": "Editor",
                        "start_time": (local_midnight + timedelta(hours=h)).isoformat(),
                        "end_time": (local_midnight + timedelta(hours=h + 1)).isoformat(),
                        "event_id": f"work-{h}",
                    }
                    for h in range(1, 11)
                ]
                tracked = await http.post(
                    "/usage/track", json={"pings": pings}, headers=employee.headers
                )
                assert tracked.status_code == 202, tracked.text
                assert tracked.json()["accepted"] == 10, tracked.text

                def for_employee(data: dict[str, Any]) -> bool:
                    return bool(data["alert"]["user_id"] == employee.id)

                for listener in (manager, own):
                    idle = await listener.wait_for("INACTIVE_ALERT", for_employee)
                    overtime = await listener.wait_for("OVERTIME_ALERT", for_employee)
                assert idle["alert"]["type"] == "inactive"
                assert idle["alert"]["data"]["session_id"] == started_session.json()["id"]
                assert overtime["alert"]["type"] == "overtime"
                assert overtime["alert"]["data"]["date"] == local_midnight.date().isoformat()
                assert overtime["alert"]["data"]["active_seconds"] == 10 * 3600

            listed = await http.get("/alerts", headers=owner.headers)
            assert listed.status_code == 200, listed.text
            body = listed.json()
            assert (body["tz"], body["date"]) == (zone, local_midnight.date().isoformat())
            by_type = Counter(a["type"] for a in body["alerts"])
            assert by_type == {"inactive": 1, "overtime": 1}, "once each, checked every second"
            assert {a["id"] for a in body["alerts"]} == {
                idle["alert"]["id"],
                overtime["alert"]["id"],
            }

            metrics = (await http.get("/metrics")).text
            assert 'workpulse_job_runs_total{job="idle-alerts",outcome="succeeded"}' in metrics
            assert "workpulse_job_run_duration_seconds_bucket" in metrics

            acked = await http.post(f"/alerts/{idle['alert']['id']}/ack", headers=employee.headers)
            assert acked.status_code == 200, acked.text
            assert acked.json()["acknowledged_by"] == employee.id

        listed_runs = await run("jobs", "list", "--limit", "20", cwd=tmp_path, env=env)
        assert listed_runs.returncode == 0, listed_runs.stderr
        for job in ("idle-alerts", "overtime-alerts", "daily-summaries"):
            assert job in listed_runs.stdout
        assert "succeeded" in listed_runs.stdout
        assert await server.stop() == 0, server.output()
