"""The data set of bench/reports: 10 organizations of 100 users, 90 days of usage intervals
(~10 million rows) and their hourly rollups, generated inside PostgreSQL.

Shape, per user and UTC day: 112 intervals on one device, 14 per hour over 8 working hours
(the first hour is 04:00-15:00 UTC depending on the user, so some users work through 18:15 UTC,
where a local day of Asia/Kathmandu begins). Slot j of an hour covers [j*257 s, (j+1)*257 s):
an interval of 1-200 s lies inside its slot, so intervals never overlap and never cross a UTC
hour, and the hourly rollups are a plain GROUP BY. Apps come from 20 (skewed: a few take most
of the time), domains from 50 for the three browsers (NULL for other apps), ~5 % idle.

Loading: the partitions are made by the product's own `Partitions.ensure`; then the load drops
the indexes, the primary keys, the foreign keys and the per-partition btree_gist exclusion
constraints of `app_usage` and `usage_hourly`, inserts with INSERT ... SELECT generate_series,
and re-creates every one of them from the definitions PostgreSQL gave before the drop (a bulk
build: row by row under the exclusion constraint this machine does ~20 k rows/s). Re-adding the
exclusion constraints checks every interval against the others, so the data is proven free of
overlaps, as the product would have kept it. `check_rollups` then compares the rollup rows
with the product's own computation (`workpulse.domain.reports.tally` over intervals read
through `SqlUsageStore.of_users`) for a sample of user-days.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from workpulse.adapters.db.engine import create_engine
from workpulse.adapters.db.partitions import Partitions
from workpulse.adapters.db.rollups import SqlRollupStore
from workpulse.adapters.db.usage import SqlUsageStore
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.months import month_start
from workpulse.domain.reports import tally

ORGANIZATIONS = 10
USERS_PER_ORGANIZATION = 100  # the owner (registered over HTTP) and 99 employees (SQL)
DAYS = 90
FIRST_DAY = date(2026, 8, 1)  # fixed, so that a reused database and a new one look alike
SLOTS_PER_HOUR = 14
SLOT_SECONDS = 257  # 14 x 257 = 3,598 s: a slot never reaches the next hour
WORK_HOURS = 8
INTERVALS_PER_DAY = SLOTS_PER_HOUR * WORK_HOURS  # 112
DEVICE = "bench-desktop"
PASSWORD = "bench password, not secret"

APPS = (
    "Visual Studio Code", "Google Chrome", "Slack", "Terminal", "Firefox", "Microsoft Teams",
    "Outlook", "Zoom", "Figma", "Notion", "Safari", "IntelliJ IDEA", "Excel", "Word",
    "PowerPoint", "Postman", "Spotify", "Finder", "Jira", "1Password",
)  # fmt: skip
BROWSERS = ("Google Chrome", "Firefox", "Safari")
DOMAINS = (
    "github.com", "stackoverflow.com", "docs.python.org", "mail.google.com",
    "calendar.google.com", "docs.google.com", "drive.google.com", "youtube.com",
    "news.ycombinator.com", "reddit.com", "wikipedia.org", "linkedin.com", "twitter.com",
    "atlassian.net", "gitlab.com", "notion.so", "figma.com", "slack.com", "zoom.us",
    "aws.amazon.com", "console.cloud.google.com", "portal.azure.com", "developer.mozilla.org",
    "pypi.org", "npmjs.com", "docs.rs", "readthedocs.io", "medium.com", "dev.to",
    "postgresql.org", "redis.io", "fastapi.tiangolo.com", "sqlalchemy.org", "grafana.com",
    "sentry.io", "datadoghq.com", "circleci.com", "vercel.com", "netlify.com",
    "cloudflare.com", "openai.com", "chatgpt.com", "translate.google.com", "maps.google.com",
    "amazon.com", "nytimes.com", "bbc.co.uk", "theguardian.com", "bloomberg.com", "ft.com",
)  # fmt: skip


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def day_of(index: int) -> date:
    return FIRST_DAY + timedelta(days=index)


def utc_day(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def owner_email(org: int) -> str:
    return f"owner{org}@bench-reports.example"


@dataclass(frozen=True)
class Member:
    id: str
    organization_id: str
    ordinal: int  # 0..999 over the whole data set


def _sql_list(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


async def add_employees(dsn: str, owners: dict[int, tuple[str, str]]) -> None:
    """99 employees per organization, by SQL: they never log in (their owner asks for their
    reports with `user_id=`), so their password hash is one no password matches."""
    conn = await asyncpg.connect(dsn)
    try:
        for org, (organization_id, _) in sorted(owners.items()):
            await conn.execute(
                "INSERT INTO users (organization_id, email, name, password_hash, role)"
                " SELECT $1::uuid,"
                " 'employee' || n || '@org' || $2::int || '.bench-reports.example',"
                " 'Employee ' || $2::int || '-' || n, '!unusable', 'employee'"
                " FROM generate_series(1, $3::int) AS n",
                organization_id,
                org,
                USERS_PER_ORGANIZATION - 1,
            )
    finally:
        await conn.close()


async def members(dsn: str) -> list[Member]:
    """Every user of the data set, in a stable order (organization, then email)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT u.id::text AS id, u.organization_id::text AS org FROM users u"
            " JOIN organizations o ON o.id = u.organization_id"
            " WHERE u.email LIKE '%bench-reports.example' ORDER BY o.name, u.email"
        )
    finally:
        await conn.close()
    return [Member(r["id"], r["org"], n) for n, r in enumerate(rows)]


async def _constraints_and_indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    """(drop, create) statement pairs for the indexes and the primary key, foreign key and
    exclusion constraints of `table` and its partitions, from the catalog."""
    pairs: list[tuple[str, str]] = []
    relations = [table] + [
        r["name"]
        for r in await conn.fetch(
            "SELECT inhrelid::regclass::text AS name FROM pg_inherits"
            " WHERE inhparent = $1::regclass ORDER BY 1",
            table,
        )
    ]
    # Constraints first in the drop order: a primary key owns its index.
    for relation in relations:
        for row in await conn.fetch(
            "SELECT conname, contype, pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE conrelid = $1::regclass AND contype IN ('p', 'f', 'x')"
            " AND conparentid = 0 ORDER BY contype DESC, conname",
            relation,
        ):
            pairs.append(
                (
                    f'ALTER TABLE {relation} DROP CONSTRAINT "{row["conname"]}"',
                    f'ALTER TABLE {relation} ADD CONSTRAINT "{row["conname"]}" {row["def"]}',
                )
            )
    for row in await conn.fetch(
        "SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def"
        " FROM pg_index WHERE indrelid = $1::regclass"
        " AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conindid <> 0)"
        " ORDER BY 1",
        table,
    ):
        # The definition of a partitioned table's index reads "ON ONLY": as is, it would make
        # an invalid parent index and none on the partitions.
        create = row["def"].replace(" ON ONLY ", " ON ", 1)
        pairs.append((f'DROP INDEX "{row["name"]}"', create))
    return pairs


async def load(dsn: str, users: list[Member]) -> dict[str, float]:
    """Intervals and rollups for every user; returns seconds per step."""
    steps: dict[str, float] = {}
    engine = create_engine(dsn, pool_size=1, max_overflow=0)
    try:
        await Partitions(engine).ensure(month_start(utc_day(day_of(i))[0]) for i in range(DAYS))
    finally:
        await engine.dispose()

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET TimeZone = 'UTC'")
        schema: list[tuple[str, str]] = []
        for table in ("app_usage", "usage_hourly"):
            schema += await _constraints_and_indexes(conn, table)
        for drop, _ in schema:
            await conn.execute(drop)
        say(f"  dropped {len(schema)} indexes and constraints for the load")
        await conn.execute(
            "CREATE TEMP TABLE bench_members (ordinal int, id uuid, organization_id uuid,"
            " first_hour int)"
        )
        await conn.executemany(
            "INSERT INTO bench_members VALUES ($1, $2::uuid, $3::uuid, $4)",
            [(m.ordinal, m.id, m.organization_id, 4 + (m.ordinal * 7) % 12) for m in users],
        )
        started = time.monotonic()
        apps, browsers, domains = _sql_list(APPS), _sql_list(BROWSERS), _sql_list(DOMAINS)
        for index in range(DAYS):
            # A seed per day: the same data set every time (for a given order of users).
            await conn.execute("SELECT setseed($1)", (index + 1) / (DAYS + 1))
            # Volatile functions in a subquery's select list are evaluated once per row (the
            # planner does not flatten such a subquery).
            await conn.execute(
                f"""
                INSERT INTO app_usage (organization_id, user_id, device_id, app_name, domain,
                                       idle, start_time, end_time)
                SELECT organization_id, id, '{DEVICE}', app,
                       CASE WHEN app = ANY({browsers}) THEN ({domains})[1 + domain_pick] END,
                       idle, slot_start + make_interval(secs => offset_s),
                       slot_start + make_interval(secs => offset_s + seconds)
                FROM (
                    SELECT m.organization_id, m.id,
                           ({apps})[1 + floor(20 * power(random(), 2.5))::int] AS app,
                           floor(50 * power(random(), 2))::int AS domain_pick,
                           random() < 0.05 AS idle,
                           1 + floor(random() * 200)::int AS seconds,
                           random() AS shift,
                           $1::timestamptz
                             + make_interval(hours => m.first_hour + k / {SLOTS_PER_HOUR},
                                             secs => (k % {SLOTS_PER_HOUR}) * {SLOT_SECONDS})
                             AS slot_start
                    FROM bench_members m
                    CROSS JOIN generate_series(0, {INTERVALS_PER_DAY - 1}) AS k
                ) AS r
                CROSS JOIN LATERAL (
                    SELECT floor(shift * ({SLOT_SECONDS} - seconds + 1))::int AS offset_s
                ) AS o
                """,
                utc_day(day_of(index))[0],
            )
            if index % 10 == 9:
                rate = (index + 1) * len(users) * INTERVALS_PER_DAY / (time.monotonic() - started)
                say(f"  {index + 1} of {DAYS} days inserted ({rate:,.0f} rows/s)")
        steps["insert intervals"] = time.monotonic() - started

        started = time.monotonic()
        await conn.execute(
            "INSERT INTO usage_hourly (organization_id, user_id, hour, app_name, domain, idle,"
            " project_id, micros)"
            " SELECT organization_id, user_id, date_trunc('hour', start_time), app_name, domain,"
            " idle, NULL, (extract(epoch FROM sum(end_time - start_time)) * 1000000)::bigint"
            " FROM app_usage GROUP BY 1, 2, 3, 4, 5, 6"
            # In the order the workers would write them: hour after hour (a hash aggregate's
            # order would scatter one hour's rows over the whole table).
            " ORDER BY 3, 2"
        )
        steps["insert rollups (GROUP BY)"] = time.monotonic() - started

        started = time.monotonic()
        for _, create in schema:
            await conn.execute(create)
        steps["re-create indexes and constraints"] = time.monotonic() - started
        say(f"  re-created {len(schema)} indexes and constraints")

        started = time.monotonic()
        # Visibility map and statistics, as autovacuum would leave them on a settled table.
        await conn.execute("VACUUM (ANALYZE) app_usage, usage_hourly")
        steps["vacuum analyze"] = time.monotonic() - started
    finally:
        await conn.close()
    return steps


async def counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        intervals = await conn.fetchval("SELECT count(*) FROM app_usage")
        rollups = await conn.fetchval("SELECT count(*) FROM usage_hourly")
    finally:
        await conn.close()
    return int(intervals), int(rollups)


async def check_rollups(dsn: str, users: list[Member], samples: int, seed: int = 7) -> int:
    """Rollup rows == `tally` over the intervals (read through the product's adapter) for
    `samples` random user-days, plus one whole organization on one day; exits if any differ.
    Returns the number of rollup rows compared."""
    pick = random.Random(seed)
    cases = [(pick.choice(users), day_of(pick.randrange(DAYS))) for _ in range(samples)]
    organization = users[0].organization_id
    team_day = day_of(pick.randrange(DAYS))
    cases += [(m, team_day) for m in users if m.organization_id == organization]
    engine = create_engine(dsn, pool_size=1, max_overflow=0)
    compared = 0
    try:
        async with engine.connect() as conn:
            usage, rollups = SqlUsageStore(conn), SqlRollupStore(conn)
            for member, day in cases:
                org = OrganizationId(uuid.UUID(member.organization_id))
                user = UserId(uuid.UUID(member.id))
                start, end = utc_day(day)
                intervals = [i for _, i in await usage.of_users(org, [user], [(start, end)])]
                spans = await rollups.project_spans(org, [user], [(start, end)])
                expected = tally(intervals, spans.get(user, ()), start, end)
                stored = sorted(
                    (row.usage for row in await rollups.read(org, [user], start, end)),
                    key=lambda u: (u.hour, u.app_name, u.domain or "", u.idle),
                )
                if not expected or stored != expected:
                    sys.exit(
                        f"rollups differ from tally() for user {member.id} on {day}:"
                        f" {len(stored)} stored rows, {len(expected)} computed"
                    )
                compared += len(stored)
    finally:
        await engine.dispose()
    return compared
