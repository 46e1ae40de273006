"""Alert rows, and the active sessions the idle detector looks at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from workpulse.adapters.db.tables import activity_logs, alerts, work_sessions
from workpulse.adapters.db.tenancy import of_tenant
from workpulse.domain.alerts import Alert, AlertType, SessionActivity
from workpulse.domain.ids import OrganizationId, UserId, WorkSessionId


def _alert(row: sa.Row[Any]) -> Alert:
    return Alert(
        id=row.id,
        organization_id=OrganizationId(row.organization_id),
        user_id=UserId(row.user_id),
        type=AlertType(row.type),
        message=row.message,
        data=dict(row.data or {}),
        created_at=row.created_at,
        key=row.key,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=None if row.acknowledged_by is None else UserId(row.acknowledged_by),
    )


class SqlAlertStore:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

    async def add(self, new: Sequence[Alert]) -> Sequence[Alert]:
        if not new:
            return []
        statement = (
            self._insert(alerts)
            .values(
                [
                    {
                        "id": alert.id,
                        "organization_id": alert.organization_id,
                        "user_id": alert.user_id,
                        "type": alert.type.value,
                        "message": alert.message,
                        "data": alert.data,
                        "created_at": alert.created_at,
                        "key": alert.key,
                    }
                    for alert in new
                ]
            )
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
            .returning(alerts.c.id)
        )
        inserted = {row.id for row in await self._conn.execute(statement)}
        return [alert for alert in new if alert.id in inserted]

    async def get(self, organization_id: OrganizationId, alert_id: UUID) -> Alert | None:
        row = (
            await self._conn.execute(
                sa.select(alerts).where(of_tenant(alerts, organization_id), alerts.c.id == alert_id)
            )
        ).first()
        return None if row is None else _alert(row)

    async def between(
        self,
        organization_id: OrganizationId,
        user_id: UserId | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[Alert]:
        query = sa.select(alerts).where(
            of_tenant(alerts, organization_id),
            alerts.c.created_at >= start,
            alerts.c.created_at < end,
        )
        if user_id is not None:
            query = query.where(alerts.c.user_id == user_id)
        query = query.order_by(alerts.c.created_at, alerts.c.id)
        return [_alert(row) for row in await self._conn.execute(query)]

    async def acknowledge(
        self, organization_id: OrganizationId, alert_id: UUID, by: UserId, now: datetime
    ) -> Alert | None:
        await self._conn.execute(
            alerts.update()
            .where(
                of_tenant(alerts, organization_id),
                alerts.c.id == alert_id,
                alerts.c.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=now, acknowledged_by=by)
        )
        return await self.get(organization_id, alert_id)

    async def active_sessions(self, organization_id: OrganizationId) -> Sequence[SessionActivity]:
        # The latest active event of each active session: its ledger rows are found by the
        # (organization_id, user_id, timestamp) index, and by session_start on one partition.
        last_active = (
            sa.select(sa.func.max(activity_logs.c.timestamp))
            .where(
                activity_logs.c.organization_id == work_sessions.c.organization_id,
                activity_logs.c.user_id == work_sessions.c.user_id,
                activity_logs.c.session_id == work_sessions.c.id,
                activity_logs.c.session_start == work_sessions.c.start_time,
                activity_logs.c.activity_type == "active",
            )
            .scalar_subquery()
        )
        query = sa.select(
            work_sessions.c.id,
            work_sessions.c.user_id,
            work_sessions.c.start_time,
            last_active.label("last_active_at"),
        ).where(of_tenant(work_sessions, organization_id), work_sessions.c.status == "active")
        return [
            SessionActivity(
                WorkSessionId(row.id),
                UserId(row.user_id),
                row.start_time,
                row.last_active_at,
            )
            for row in await self._conn.execute(query)
        ]
