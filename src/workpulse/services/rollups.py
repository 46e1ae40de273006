"""Hourly rollups: kept by the workers as they re-derive intervals, and re-attributed when a
work session's start or end changes which project an hour's time belongs to. Reports read them
(services/reports.py, docs/reports.md)."""

from __future__ import annotations

from datetime import datetime

from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.reports import ceil_hour, floor_hour, tally
from workpulse.services.ports import DeviceKey, UnitOfWork


async def refresh_rollups(
    uow: UnitOfWork,
    organization_id: OrganizationId,
    user_id: UserId,
    start: datetime,
    end: datetime,
) -> None:
    """Recompute the user's hourly rollups for the whole hours in [start, end), inside the
    caller's transaction and under the caller's per-user usage lock."""
    window = [(start, end)]
    found = await uow.usage.of_users(organization_id, [user_id], window)
    spans = await uow.rollups.project_spans(organization_id, [user_id], window)
    rows = tally((i for _, i in found), spans.get(user_id, ()), start, end)
    await uow.rollups.replace(organization_id, user_id, start, end, rows)


async def reattribute(
    uow: UnitOfWork,
    organization_id: OrganizationId,
    user_id: UserId,
    start: datetime,
    end: datetime,
) -> None:
    """A work session starting (possibly backdated) or stopping changes which project the
    user's time in [start, end) belongs to: recompute those hours' rollups, under the same
    per-user lock the workers take, in the caller's transaction."""
    await uow.usage.lock([DeviceKey(organization_id, user_id, "")])
    await refresh_rollups(uow, organization_id, user_id, floor_hour(start), ceil_hour(end))
