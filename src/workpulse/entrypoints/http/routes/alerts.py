"""Alerts (contract: "Alerts and health"): idle and overtime alerts raised by the scheduler."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel

from workpulse.domain.alerts import Alert
from workpulse.domain.ids import UserId
from workpulse.domain.reports import parse_day
from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal
from workpulse.entrypoints.http.errors import AUTHENTICATED
from workpulse.services import alerts

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=AUTHENTICATED)


class AlertOut(BaseModel):
    id: UUID
    organization_id: UUID
    user_id: UUID
    type: str
    message: str
    data: dict[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: UUID | None

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        return cls(
            id=alert.id,
            organization_id=alert.organization_id,
            user_id=alert.user_id,
            type=alert.type.value,
            message=alert.message,
            data=alert.data,
            created_at=alert.created_at,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by,
        )


class AlertsOut(BaseModel):
    date: date
    tz: str
    alerts: list[AlertOut]


@router.get("")
async def list_alerts(
    principal: CurrentPrincipal,
    container: ContainerDep,
    day: Annotated[
        str | None,
        Query(alias="date", description="a local day, YYYY-MM-DD (default: today)"),
    ] = None,
    user_id: UUID | None = None,
) -> AlertsOut:
    """Alerts raised during a local day, oldest first: employees see their own, managers and up
    their organization's (or `user_id`'s). The day is in the zone of the user asked about, else
    the organization's."""
    found_day, zone, found = await alerts.list_alerts(
        principal,
        day=None if day is None else parse_day(day, "date"),
        user_id=None if user_id is None else UserId(user_id),
        uow_factory=container.database,
        clock=container.clock,
    )
    return AlertsOut(date=found_day, tz=zone, alerts=[AlertOut.of(a) for a in found])


@router.post("/{alert_id}/ack")
async def acknowledge_alert(
    alert_id: UUID, principal: CurrentPrincipal, container: ContainerDep
) -> AlertOut:
    """Acknowledge an alert (its user, or managers and up); the first acknowledgement stays."""
    alert = await alerts.acknowledge(
        principal, alert_id, uow_factory=container.database, clock=container.clock
    )
    return AlertOut.of(alert)
