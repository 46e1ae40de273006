"""The statements of the work-session store (adapters/db/sessions.py), built once at import with
bound parameters: building and compiling them per request cost more CPU than the rest of the
request (docs/benchmarks.md). SQLAlchemy compiles each once per dialect and caches it; the
drivers see the same SQL every time, so asyncpg's prepared statements are reused (and nothing
depends on them: with PgBouncer the cache size is 0).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from workpulse.adapters.db.tables import activity_logs, work_sessions
from workpulse.adapters.db.types import UtcDateTime
from workpulse.domain.sessions import SessionStatus

_s = work_sessions.c
_a = activity_logs.c
_SESSION_COLUMNS = [c for c in work_sessions.c if c.name != "created_at"]


def _param(name: str, type_: sa.types.TypeEngine[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=type_)


_ORG = _param("org", sa.Uuid())
_SID = _param("sid", sa.Uuid())
_START = _param("session_start", UtcDateTime())
_ACTIVE = _param("active", sa.BigInteger())
_IDLE = _param("idle", sa.BigInteger())
_SPENT = _param("spent", sa.BigInteger())  # active + idle
_LIMIT = _param("limit", sa.BigInteger())
_LAST = _param("last", UtcDateTime())

GET = sa.select(*_SESSION_COLUMNS).where(_s.organization_id == _ORG, _s.id == _SID)
# FOR NO KEY UPDATE (PostgreSQL; SQLite's writers hold the database's write lock anyway): taken
# first by a batch, so that a batch and a single event always lock the session row before the
# ledger. A batch that inserted ledger rows first and locked the row last deadlocked against a
# single event holding the row and waiting on one of those ledger rows' unique keys.
GET_LOCKED = GET.with_for_update(key_share=True)

# The ledger rows; a repeat of (session, event_id) inserts nothing.
INSERT = {
    "postgresql": postgresql.insert(activity_logs).on_conflict_do_nothing().returning(_a.event_id),
    "sqlite": sqlite.insert(activity_logs).on_conflict_do_nothing().returning(_a.event_id),
}

_RECORDED_COLUMNS = (
    _a.event_id,
    _a.activity_type,
    _a.duration_seconds,
    _a.timestamp,
    _a.app_name,
    _a.url,
    _a.domain,
)
_RECORDED_WHERE = (_a.organization_id == _ORG, _a.session_id == _SID, _a.session_start == _START)
_WANTED = (
    sa.func.unnest(_param("event_ids", postgresql.ARRAY(sa.String())))
    .table_valued("event_id")
    .render_derived()
    .alias("wanted")
)
_STORED = (
    sa.select(*_RECORDED_COLUMNS)
    .where(*_RECORDED_WHERE, _a.event_id == _WANTED.c.event_id)
    .limit(1)
    .lateral("stored")
)
RECORDED: dict[str, sa.Select[Any]] = {
    # An array: one SQL text for any number of ids (an expanding IN is a new statement, and a
    # new prepared statement, for every list length). One probe of the unique index per id:
    # with `event_id = ANY(...)` the planner, its statistics behind a fast-growing ledger, read
    # every ledger row of the session and filtered (25 ms a batch on a session of 40,000 events).
    "postgresql": sa.select(*(_STORED.c[c.name] for c in _RECORDED_COLUMNS)).select_from(
        _WANTED.join(_STORED, sa.true())
    ),
    "sqlite": sa.select(*_RECORDED_COLUMNS).where(
        *_RECORDED_WHERE, _a.event_id.in_(sa.bindparam("event_ids", expanding=True))
    ),
}


def _add_to_counters(latest: Any) -> sa.Update:
    return (
        work_sessions.update()
        .where(
            _s.organization_id == _ORG,
            _s.id == _SID,
            _s.status == SessionStatus.ACTIVE.value,
            _s.total_active_seconds + _s.total_idle_seconds + _SPENT <= _LIMIT,
        )
        .values(
            total_active_seconds=_s.total_active_seconds + _ACTIVE,
            total_idle_seconds=_s.total_idle_seconds + _IDLE,
            last_activity_at=latest(sa.func.coalesce(_s.last_activity_at, _LAST), _LAST),
            version=_s.version + 1,
        )
        .returning(*_SESSION_COLUMNS)
    )


ADD_TO_COUNTERS = {
    "postgresql": _add_to_counters(sa.func.greatest),
    "sqlite": _add_to_counters(sa.func.max),
}

# SQLite: whether the event fits, checked under the write lock the transaction holds.
FITS = sa.select(sa.literal(1)).where(
    _s.organization_id == _ORG,
    _s.id == _SID,
    _s.status == SessionStatus.ACTIVE.value,
    _s.total_active_seconds + _s.total_idle_seconds + _SPENT <= _LIMIT,
)

# PostgreSQL: one event in one statement, which may run as its own transaction. `s` locks the
# session row if it is active, the event fits (both re-checked on the newest row version after
# waiting for a concurrent writer) and the event is not in the ledger yet (so a retry locks and
# writes nothing: no commit to flush); `ins` writes the ledger row only then and only once per
# (session, event_id), whatever races; `upd` adds to the counters only if the row was written.
# Nothing is written unless all of it is; the row lock is held only inside the server.
PG_RECORD_ONE = (
    sa.text(
        """
WITH s AS (
    SELECT id FROM work_sessions
    WHERE organization_id = :org AND id = :sid AND status = 'active'
      AND total_active_seconds + total_idle_seconds + :duration_seconds <= :limit
      AND NOT EXISTS (
          SELECT FROM activity_logs
          WHERE session_id = :sid AND event_id = :event_id AND session_start = :session_start
      )
    FOR NO KEY UPDATE
), ins AS (
    INSERT INTO activity_logs (organization_id, user_id, session_id, session_start, event_id,
        activity_type, duration_seconds, app_name, url, domain, timestamp)
    SELECT :org, :user_id, s.id, :session_start, :event_id, :activity_type, :duration_seconds,
        :app_name, :url, :domain, :timestamp
    FROM s
    ON CONFLICT DO NOTHING
    RETURNING activity_type, duration_seconds, timestamp
), upd AS (
    UPDATE work_sessions AS w SET
        total_active_seconds = w.total_active_seconds
            + CASE WHEN ins.activity_type = 'active' THEN ins.duration_seconds ELSE 0 END,
        total_idle_seconds = w.total_idle_seconds
            + CASE WHEN ins.activity_type = 'idle' THEN ins.duration_seconds ELSE 0 END,
        last_activity_at = greatest(coalesce(w.last_activity_at, ins.timestamp), ins.timestamp),
        version = w.version + 1
    FROM ins
    WHERE w.organization_id = :org AND w.id = :sid
    RETURNING w.id, w.organization_id, w.user_id, w.project_id, w.status, w.start_time,
        w.end_time, w.total_active_seconds, w.total_idle_seconds, w.last_activity_at, w.version
)
SELECT EXISTS (SELECT FROM s) AS open, EXISTS (SELECT FROM ins) AS inserted, upd.*
FROM (SELECT) AS one LEFT JOIN upd ON true
"""
    )
    .bindparams(
        _ORG,
        _SID,
        _START,
        _LIMIT,
        _param("user_id", sa.Uuid()),
        _param("event_id", sa.String()),
        _param("activity_type", sa.String()),
        _param("duration_seconds", sa.Integer()),
        _param("app_name", sa.String()),
        _param("url", sa.Text()),
        _param("domain", sa.String()),
        _param("timestamp", UtcDateTime()),
    )
    .columns(
        sa.column("open", sa.Boolean()),
        sa.column("inserted", sa.Boolean()),
        *(sa.column(c.name, c.type) for c in _SESSION_COLUMNS),
    )
)

# The sessions of (organization, session) pairs, for a group of events on many sessions.
GET_MANY = {
    "postgresql": sa.select(*_SESSION_COLUMNS).where(
        sa.tuple_(_s.organization_id, _s.id).in_(
            sa.select(
                sa.func.unnest(_param("orgs", postgresql.ARRAY(sa.Uuid()))),
                sa.func.unnest(_param("sids", postgresql.ARRAY(sa.Uuid()))),
            ).scalar_subquery()
        )
    ),
    "sqlite": sa.select(*_SESSION_COLUMNS).where(
        sa.tuple_(_s.organization_id, _s.id).in_(sa.bindparam("pairs", expanding=True))
    ),
}

# PostgreSQL: the events of many sessions in one statement, which may run as its own
# transaction; `PG_RECORD_ONE` for many. `bound` is each session's start and limit as the
# caller read and computed them; `fresh` the first of each (session, event_id) that is not in
# the ledger yet; `fits` the sessions that, as read, are active and have room for all of their
# fresh events; `s` locks them in id order, checking again on the newest row version, and (the
# "skip" variant) skips a session whose row another transaction holds: that statement never
# waits on a row lock, so a session held elsewhere does not hold up the other sessions of a
# group (the caller tries the held ones again with the "wait" variant, alone); `ins` writes the
# events (once per (session, event_id), whatever races); `upd` adds what `ins` wrote to each
# session's counters. Rows: one per written event (`held` false), its session after all of
# this statement's events; then one per session that fit as read but was not locked (`held`).
_FITS = """w.status = 'active' AND w.start_time = b.start_time
      AND w.total_active_seconds + w.total_idle_seconds + need.spent <= b.lim"""
_RECORD_MANY = """
WITH ev AS MATERIALIZED (
    SELECT * FROM unnest(CAST(:sids AS uuid[]), CAST(:event_ids AS text[]),
        CAST(:types AS text[]), CAST(:durations AS integer[]), CAST(:stamps AS timestamptz[]),
        CAST(:app_names AS text[]), CAST(:urls AS text[]), CAST(:domains AS text[]))
        WITH ORDINALITY AS e(sid, event_id, activity_type, duration_seconds, ts, app_name, url,
            domain, n)
), bound AS MATERIALIZED (
    SELECT * FROM unnest(CAST(:bound_orgs AS uuid[]), CAST(:bound_sids AS uuid[]),
        CAST(:bound_starts AS timestamptz[]), CAST(:bound_limits AS bigint[]))
        AS b(org, sid, start_time, lim)
), fresh AS MATERIALIZED (
    SELECT DISTINCT ON (e.sid, e.event_id) e.*
    FROM ev AS e JOIN bound AS b ON b.sid = e.sid
    LEFT JOIN LATERAL (  -- a probe of the unique index per event (LIMIT keeps it a probe:
        -- NOT EXISTS became a hash anti-join over the whole ledger when its statistics lagged)
        SELECT true AS found FROM activity_logs AS a
        WHERE a.session_id = e.sid AND a.event_id = e.event_id AND a.session_start = b.start_time
        LIMIT 1
    ) AS stored ON true
    WHERE stored.found IS NULL
    ORDER BY e.sid, e.event_id, e.n
), need AS MATERIALIZED (
    SELECT sid, sum(duration_seconds) AS spent FROM fresh GROUP BY sid
), fits AS MATERIALIZED (
    SELECT w.id
    FROM work_sessions AS w
    JOIN bound AS b ON b.sid = w.id AND b.org = w.organization_id
    JOIN need ON need.sid = w.id
    WHERE {fits}
), s AS MATERIALIZED (
    SELECT w.id, w.organization_id, w.user_id, w.start_time
    FROM work_sessions AS w
    JOIN bound AS b ON b.sid = w.id AND b.org = w.organization_id
    JOIN need ON need.sid = w.id
    WHERE {fits}
    ORDER BY w.id
    FOR NO KEY UPDATE OF w{skip}
), ins AS (
    INSERT INTO activity_logs (organization_id, user_id, session_id, session_start, event_id,
        activity_type, duration_seconds, app_name, url, domain, timestamp)
    SELECT s.organization_id, s.user_id, s.id, s.start_time, f.event_id, f.activity_type,
        f.duration_seconds, f.app_name, f.url, f.domain, f.ts
    FROM fresh AS f JOIN s ON s.id = f.sid
    ON CONFLICT DO NOTHING
    RETURNING session_id, event_id, activity_type, duration_seconds, timestamp
), sums AS (
    SELECT session_id,
        sum(CASE WHEN activity_type = 'active' THEN duration_seconds ELSE 0 END) AS active,
        sum(CASE WHEN activity_type = 'idle' THEN duration_seconds ELSE 0 END) AS idle,
        max(timestamp) AS latest, count(*) AS events
    FROM ins GROUP BY session_id
), upd AS (
    UPDATE work_sessions AS w SET
        total_active_seconds = w.total_active_seconds + sums.active,
        total_idle_seconds = w.total_idle_seconds + sums.idle,
        last_activity_at = greatest(coalesce(w.last_activity_at, sums.latest), sums.latest),
        version = w.version + sums.events
    FROM sums
    WHERE w.id = sums.session_id
    RETURNING w.id, w.organization_id, w.user_id, w.project_id, w.status, w.start_time,
        w.end_time, w.total_active_seconds, w.total_idle_seconds, w.last_activity_at, w.version
)
SELECT ins.event_id, false AS held, upd.* FROM ins JOIN upd ON upd.id = ins.session_id
UNION ALL
SELECT NULL, true, w.id, w.organization_id, w.user_id, w.project_id, w.status, w.start_time,
    w.end_time, w.total_active_seconds, w.total_idle_seconds, w.last_activity_at, w.version
FROM work_sessions AS w JOIN fits ON fits.id = w.id
WHERE NOT EXISTS (SELECT FROM s WHERE s.id = w.id)
"""


def _record_many(skip: bool) -> sa.TextualSelect:
    return (
        sa.text(_RECORD_MANY.format(fits=_FITS, skip=" SKIP LOCKED" if skip else ""))
        .bindparams(
            _param("sids", postgresql.ARRAY(sa.Uuid())),
            _param("event_ids", postgresql.ARRAY(sa.String())),
            _param("types", postgresql.ARRAY(sa.String())),
            _param("durations", postgresql.ARRAY(sa.Integer())),
            _param("stamps", postgresql.ARRAY(sa.DateTime(timezone=True))),
            _param("app_names", postgresql.ARRAY(sa.String())),
            _param("urls", postgresql.ARRAY(sa.Text())),
            _param("domains", postgresql.ARRAY(sa.String())),
            _param("bound_orgs", postgresql.ARRAY(sa.Uuid())),
            _param("bound_sids", postgresql.ARRAY(sa.Uuid())),
            _param("bound_starts", postgresql.ARRAY(sa.DateTime(timezone=True))),
            _param("bound_limits", postgresql.ARRAY(sa.BigInteger())),
        )
        .columns(
            sa.column("event_id", sa.String()),
            sa.column("held", sa.Boolean()),
            *(sa.column(c.name, c.type) for c in _SESSION_COLUMNS),
        )
    )


PG_RECORD_MANY = {"skip": _record_many(skip=True), "wait": _record_many(skip=False)}
