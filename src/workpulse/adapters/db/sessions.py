"""Work sessions and their activity ledger. Counters change only by one atomic UPDATE that
adds the new events' durations, so concurrent writers never lose an update.

The statements on the activity path are built once, at import (adapters/db/session_statements.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.session_statements import (
    ADD_TO_COUNTERS,
    FITS,
    GET,
    GET_LOCKED,
    GET_MANY,
    INSERT,
    PG_RECORD_MANY,
    PG_RECORD_ONE,
    RECORDED,
)
from workpulse.adapters.db.tables import activity_logs, work_sessions
from workpulse.adapters.db.tenancy import of_tenant, tenant
from workpulse.domain.ids import OrganizationId, ProjectId, UserId, WorkSessionId
from workpulse.domain.sessions import (
    Activity,
    ActivityType,
    SessionAlreadyActive,
    SessionStatus,
    WorkSession,
)
from workpulse.services.ports import Entry, Recorded, Written


def _tenant(organization_id: UUID) -> UUID:
    return tenant(organization_id, "work-session statement")


def _ledger_row(session: WorkSession, activity: Activity) -> dict[str, Any]:
    return {
        "organization_id": session.organization_id,
        "user_id": session.user_id,
        "session_id": session.id,
        "session_start": session.start_time,
        "event_id": activity.event_id,
        "activity_type": activity.activity_type.value,
        "duration_seconds": activity.duration_seconds,
        "app_name": activity.app_name,
        "url": activity.url,
        "domain": activity.domain,
        "timestamp": activity.timestamp,
    }


def _session(row: sa.Row[Any]) -> WorkSession:
    return WorkSession(
        id=WorkSessionId(row.id),
        organization_id=OrganizationId(row.organization_id),
        user_id=UserId(row.user_id),
        project_id=None if row.project_id is None else ProjectId(row.project_id),
        status=SessionStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        total_active_seconds=int(row.total_active_seconds),
        total_idle_seconds=int(row.total_idle_seconds),
        last_activity_at=row.last_activity_at,
        version=int(row.version),
    )


def _activity(row: sa.Row[Any]) -> Activity:
    return Activity(
        event_id=row.event_id,
        activity_type=ActivityType(row.activity_type),
        duration_seconds=int(row.duration_seconds),
        timestamp=row.timestamp,
        app_name=row.app_name,
        url=row.url,
        domain=row.domain,
    )


class SqlSessionStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name

    async def start(self, session: WorkSession) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    work_sessions.insert().values(
                        id=session.id,
                        organization_id=session.organization_id,
                        user_id=session.user_id,
                        project_id=session.project_id,
                        status=session.status.value,
                        start_time=session.start_time,
                        version=session.version,
                    )
                )
        except sa_exc.IntegrityError as exc:
            # The partial unique index: one active session per user, even under a race.
            if "one_active" in str(exc.orig) or "work_sessions.user_id" in str(exc.orig):
                raise SessionAlreadyActive() from exc
            raise

    async def get(
        self, organization_id: OrganizationId, session_id: WorkSessionId, *, lock: bool = False
    ) -> WorkSession | None:
        statement = GET_LOCKED if lock else GET
        row = (
            await self._conn.execute(
                statement, {"org": _tenant(organization_id), "sid": session_id}
            )
        ).first()
        return None if row is None else _session(row)

    async def active(
        self, organization_id: OrganizationId, user_id: UserId | None
    ) -> Sequence[WorkSession]:
        query = sa.select(work_sessions).where(
            of_tenant(work_sessions, organization_id),
            work_sessions.c.status == SessionStatus.ACTIVE.value,
        )
        if user_id is not None:
            query = query.where(work_sessions.c.user_id == user_id)
        rows = await self._conn.execute(query.order_by(work_sessions.c.start_time))
        return [_session(row) for row in rows]

    async def history(
        self,
        organization_id: OrganizationId,
        *,
        user_id: UserId | None,
        project_id: ProjectId | None,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, WorkSessionId] | None,
        limit: int,
    ) -> Sequence[WorkSession]:
        """Newest first; `after` is the (start_time, id) of the last row of the previous page."""
        c = work_sessions.c
        query = sa.select(work_sessions).where(of_tenant(work_sessions, organization_id))
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        if project_id is not None:
            query = query.where(c.project_id == project_id)
        if start is not None:
            query = query.where(sa.or_(c.end_time.is_(None), c.end_time > start))
        if end is not None:
            query = query.where(c.start_time < end)
        if after is not None:
            query = query.where(sa.tuple_(c.start_time, c.id) < sa.tuple_(*after))
        rows = await self._conn.execute(
            query.order_by(c.start_time.desc(), c.id.desc()).limit(limit)
        )
        return [_session(row) for row in rows]

    async def stop(
        self, organization_id: OrganizationId, session_id: WorkSessionId, now: datetime
    ) -> WorkSession | None:
        row = (
            await self._conn.execute(
                work_sessions.update()
                .where(
                    of_tenant(work_sessions, organization_id),
                    work_sessions.c.id == session_id,
                    work_sessions.c.status == SessionStatus.ACTIVE.value,
                )
                .values(
                    status=SessionStatus.STOPPED.value,
                    end_time=now,
                    version=work_sessions.c.version + 1,
                )
                .returning(work_sessions)
            )
        ).first()
        return None if row is None else _session(row)

    async def close_stale(
        self, organization_id: OrganizationId, cutoff: datetime
    ) -> Sequence[WorkSession]:
        """Stop the active sessions whose last sign of life (last activity, else start) is
        before `cutoff`; they end at that last sign of life, not at the cleanup's time."""
        c = work_sessions.c
        last_seen = sa.func.coalesce(c.last_activity_at, c.start_time)
        rows = await self._conn.execute(
            work_sessions.update()
            .where(
                of_tenant(work_sessions, organization_id),
                c.status == SessionStatus.ACTIVE.value,
                last_seen < cutoff,
            )
            .values(status=SessionStatus.STOPPED.value, end_time=last_seen, version=c.version + 1)
            .returning(work_sessions)
        )
        return [_session(row) for row in rows]

    async def record(self, session: WorkSession, activities: Sequence[Activity]) -> list[Activity]:
        """Add the events not in the ledger yet; return those that were new."""
        if not activities:
            return []
        _tenant(session.organization_id)
        rows = [_ledger_row(session, a) for a in activities]
        inserted = {row.event_id for row in await self._conn.execute(INSERT[self._dialect], rows)}
        new = []
        for activity in activities:
            if activity.event_id in inserted:
                inserted.discard(activity.event_id)  # a repeat within the batch is a duplicate
                new.append(activity)
        return new

    async def recorded(self, session: WorkSession, event_ids: Sequence[str]) -> dict[str, Activity]:
        if not event_ids:
            return {}
        rows = await self._conn.execute(
            RECORDED[self._dialect],
            {
                "org": _tenant(session.organization_id),
                "sid": session.id,
                "session_start": session.start_time,
                "event_ids": list(event_ids),
            },
        )
        return {row.event_id: _activity(row) for row in rows}

    async def add_to_counters(
        self,
        session: WorkSession,
        *,
        active_seconds: int,
        idle_seconds: int,
        last_activity_at: datetime,
        limit_seconds: int,
    ) -> WorkSession | None:
        """One atomic UPDATE: add to the counters if the session is active and the new sum stays
        within `limit_seconds`. None when it is not (stopped, or over the limit)."""
        row = (
            await self._conn.execute(
                ADD_TO_COUNTERS[self._dialect],
                {
                    "org": _tenant(session.organization_id),
                    "sid": session.id,
                    "active": active_seconds,
                    "idle": idle_seconds,
                    "spent": active_seconds + idle_seconds,
                    "limit": limit_seconds,
                    "last": last_activity_at,
                },
            )
        ).first()
        return None if row is None else _session(row)

    async def record_one(
        self, session: WorkSession, activity: Activity, *, limit_seconds: int
    ) -> Recorded:
        """Record one event and add it to the counters, if the session is still active, the
        event fits within `limit_seconds` and is not in the ledger yet; otherwise write nothing.

        On PostgreSQL this is one statement, safe outside a transaction (it is its own). On
        SQLite it is three, relying on the write lock of the transaction they run in."""
        row = _ledger_row(session, activity)
        _tenant(session.organization_id)
        if self._dialect == "postgresql":
            found = (
                await self._conn.execute(
                    PG_RECORD_ONE,
                    {
                        **row,
                        "org": row["organization_id"],
                        "sid": session.id,
                        "limit": limit_seconds,
                    },
                )
            ).one()
            return Recorded(
                open=found.open,
                inserted=found.inserted,
                session=None if found.id is None else _session(found),
            )
        bounds = {"org": session.organization_id, "sid": session.id, "limit": limit_seconds}
        fits = await self._conn.scalar(FITS, {**bounds, "spent": activity.duration_seconds})
        if fits is None:
            return Recorded(open=False, inserted=False, session=None)
        if not (await self._conn.execute(INSERT[self._dialect], row)).first():
            return Recorded(open=True, inserted=False, session=None)
        active = activity.activity_type is ActivityType.ACTIVE
        updated = await self.add_to_counters(
            session,
            active_seconds=activity.duration_seconds if active else 0,
            idle_seconds=0 if active else activity.duration_seconds,
            last_activity_at=activity.timestamp,
            limit_seconds=limit_seconds,
        )
        return Recorded(open=True, inserted=True, session=updated)

    async def get_many(
        self, keys: Sequence[tuple[OrganizationId, WorkSessionId]]
    ) -> dict[WorkSessionId, WorkSession]:
        if not keys:
            return {}
        orgs = [_tenant(org) for org, _ in keys]
        if self._dialect == "postgresql":
            parameters: dict[str, Any] = {"orgs": orgs, "sids": [sid for _, sid in keys]}
        else:
            parameters = {"pairs": [(org, sid) for org, (_, sid) in zip(orgs, keys, strict=True)]}
        rows = await self._conn.execute(GET_MANY[self._dialect], parameters)
        return {session.id: session for session in map(_session, rows)}

    async def record_many(self, entries: Sequence[Entry], *, wait: bool = False) -> Written:
        if not entries:
            return Written([], frozenset())
        if self._dialect != "postgresql":
            return Written(await self._record_many_in_turn(entries), frozenset())
        bounds: dict[WorkSessionId, Entry] = {}
        for entry in entries:
            _tenant(entry.session.organization_id)
            first = bounds.setdefault(entry.session.id, entry)
            if first.limit_seconds != entry.limit_seconds or first.session != entry.session:
                raise ValueError("one session read and one limit per session in a group")
        rows = await self._conn.execute(
            PG_RECORD_MANY["wait" if wait else "skip"],
            {
                "sids": [e.session.id for e in entries],
                "event_ids": [e.activity.event_id for e in entries],
                "types": [e.activity.activity_type.value for e in entries],
                "durations": [e.activity.duration_seconds for e in entries],
                "stamps": [e.activity.timestamp for e in entries],
                "app_names": [e.activity.app_name for e in entries],
                "urls": [e.activity.url for e in entries],
                "domains": [e.activity.domain for e in entries],
                "bound_orgs": [e.session.organization_id for e in bounds.values()],
                "bound_sids": list(bounds),
                "bound_starts": [e.session.start_time for e in bounds.values()],
                "bound_limits": [e.limit_seconds for e in bounds.values()],
            },
        )
        after: dict[WorkSessionId, WorkSession] = {}  # one row per event, the same session
        written: dict[tuple[WorkSessionId, str], WorkSession] = {}
        held: set[WorkSessionId] = set()
        for row in rows:
            if row.held:
                held.add(WorkSessionId(row.id))
            else:
                session = after.get(row.id) or after.setdefault(row.id, _session(row))
                written[(session.id, row.event_id)] = session
        return Written(
            [written.pop((e.session.id, e.activity.event_id), None) for e in entries],
            frozenset(held),
        )

    async def _record_many_in_turn(self, entries: Sequence[Entry]) -> list[WorkSession | None]:
        """SQLite: each event in turn under the transaction's write lock, then every written
        entry answered with its session's counters after the last of them."""
        newest: dict[WorkSessionId, WorkSession] = {}
        written: list[bool] = []
        for entry in entries:
            outcome = await self.record_one(
                entry.session, entry.activity, limit_seconds=entry.limit_seconds
            )
            if outcome.session is not None:
                newest[entry.session.id] = outcome.session
            written.append(outcome.session is not None)
        return [
            newest[e.session.id] if ok else None for e, ok in zip(entries, written, strict=True)
        ]

    async def ledger_totals(self, session: WorkSession) -> tuple[int, int]:
        """(active, idle) seconds summed over the ledger: what the counters must equal."""
        rows = await self._conn.execute(
            sa.select(activity_logs.c.activity_type, sa.func.sum(activity_logs.c.duration_seconds))
            .where(
                of_tenant(activity_logs, session.organization_id),
                activity_logs.c.session_id == session.id,
                activity_logs.c.session_start == session.start_time,
            )
            .group_by(activity_logs.c.activity_type)
        )
        sums = {row[0]: int(row[1]) for row in rows}
        return sums.get("active", 0), sums.get("idle", 0)
