"""Alerts: the idle and overtime checks the scheduler runs, and reading and acknowledging them.

Each check goes over one organization in one transaction; an alert is inserted under its
once-only key (domain/alerts.py) and announced over the notifier only after the commit, so a
check that runs twice, or in two scheduler processes at once, raises each alert once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from workpulse.domain.alerts import (
    Alert,
    AlertNotFound,
    AlertType,
    idle_episode,
    idle_message,
    overtime_key,
    overtime_message,
    overtime_passed,
)
from workpulse.domain.errors import UserNotFound
from workpulse.domain.ids import UserId
from workpulse.domain.organizations import Organization
from workpulse.domain.reports import local_day, seconds
from workpulse.domain.roles import Principal, can_view, sees_organization
from workpulse.domain.summaries import today
from workpulse.domain.timezones import parse_timezone
from workpulse.services import reports
from workpulse.services.ports import Clock, Notifier, UnitOfWork, UnitOfWorkFactory


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The alert as `GET /alerts` shows it and the real-time events carry it."""
    return {
        "id": str(alert.id),
        "organization_id": str(alert.organization_id),
        "user_id": str(alert.user_id),
        "type": alert.type.value,
        "message": alert.message,
        "data": alert.data,
        "created_at": alert.created_at.isoformat(),
        "acknowledged_at": None
        if alert.acknowledged_at is None
        else alert.acknowledged_at.isoformat(),
        "acknowledged_by": None if alert.acknowledged_by is None else str(alert.acknowledged_by),
    }


def _announce(uow: UnitOfWork, notifier: Notifier, alert: Alert) -> None:
    async def publish() -> None:
        await notifier.publish(
            alert.type.event,
            {"alert": alert_payload(alert)},
            organization_id=alert.organization_id,
            user_id=alert.user_id,
        )

    uow.after_commit(publish)


async def _raise(uow: UnitOfWork, notifier: Notifier, candidates: Sequence[Alert]) -> int:
    """Insert the alerts not raised yet (one statement) and announce those after the commit."""
    inserted = await uow.alerts.add(candidates)
    for alert in inserted:
        _announce(uow, notifier, alert)
    return len(inserted)


# --- The scheduler's checks -------------------------------------------------------------------


async def check_idle(
    organization: Organization,
    *,
    uow_factory: UnitOfWorkFactory,
    notifier: Notifier,
    now: datetime,
) -> int:
    """One `INACTIVE_ALERT` per idle episode of the organization's active sessions. Returns how
    many alerts were raised."""
    minutes = organization.settings.idle_minutes
    async with uow_factory() as uow:
        candidates = []
        for session in await uow.alerts.active_sessions(organization.id):
            episode = idle_episode(session, idle_minutes=minutes, now=now)
            if episode is None:
                continue
            alert = Alert(
                id=uuid.uuid4(),
                organization_id=organization.id,
                user_id=episode.user_id,
                type=AlertType.INACTIVE,
                message=idle_message(minutes),
                data={
                    "session_id": str(episode.session_id),
                    "idle_since": episode.since.isoformat(),
                    "idle_minutes": minutes,
                },
                created_at=now,
                key=episode.key,
            )
            candidates.append(alert)
        raised = await _raise(uow, notifier, candidates)
        await uow.commit()
    return raised


async def check_overtime(
    organization: Organization,
    *,
    uow_factory: UnitOfWorkFactory,
    notifier: Notifier,
    now: datetime,
) -> int:
    """One `OVERTIME_ALERT` per user and local day once the day's active time (as reports
    count it, so far) passes the organization's `overtime_hours`. Returns how many."""
    hours = organization.settings.overtime_hours
    candidates = []
    async with uow_factory() as uow:
        by_zone: dict[str, list[UserId]] = defaultdict(list)
        for member in await uow.users.list(organization.id):
            if member.is_active:
                by_zone[member.timezone or organization.timezone].append(member.id)
        for zone_name, members in sorted(by_zone.items()):
            zone = parse_timezone(zone_name)
            day = today(now, zone)
            start, _ = local_day(day, zone)
            if now <= start:
                continue
            found = (await reports.usage_in(uow, organization.id, members, [(start, now)]))[0]
            active: dict[UserId, int] = defaultdict(int)
            for row in found:
                if not row.usage.idle:
                    active[row.user_id] += row.usage.micros
            for user_id, micros in sorted(active.items()):
                if not overtime_passed(seconds(micros), hours):
                    continue
                alert = Alert(
                    id=uuid.uuid4(),
                    organization_id=organization.id,
                    user_id=user_id,
                    type=AlertType.OVERTIME,
                    message=overtime_message(hours),
                    data={
                        "date": day.isoformat(),
                        "timezone": zone_name,
                        "active_seconds": seconds(micros),
                        "overtime_hours": hours,
                    },
                    created_at=now,
                    key=overtime_key(day),
                )
                candidates.append(alert)
        raised = await _raise(uow, notifier, candidates)
        await uow.commit()
    return raised


# --- Use cases for the HTTP API ---------------------------------------------------------------


async def list_alerts(
    principal: Principal,
    *,
    day: date | None,
    user_id: UserId | None,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
) -> tuple[date, str, Sequence[Alert]]:
    """Alerts raised during a local day (default today): the user's own for employees, the
    organization's (or `user_id`'s) for managers and up. The day is in the zone of the user
    asked about, else the organization's. Returns (day, zone, alerts)."""
    subject = user_id
    if subject is None and not sees_organization(principal):
        subject = principal.user_id
    if subject is not None and not can_view(principal, subject):
        raise UserNotFound()
    async with uow_factory(readonly=True) as uow:
        organization = await uow.organizations.get(principal.organization_id)
        zone_name = organization.timezone if organization is not None else "UTC"
        if subject is not None:
            user = await uow.users.get(principal.organization_id, subject)
            if user is None:
                raise UserNotFound()
            zone_name = user.timezone or zone_name
        zone = parse_timezone(zone_name)
        if day is None:
            day = today(clock.now(), zone)
        start, end = local_day(day, zone)
        found = await uow.alerts.between(principal.organization_id, subject, start, end)
    return day, zone_name, found


async def acknowledge(
    principal: Principal,
    alert_id: UUID,
    *,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
) -> Alert:
    """The alert's user, or a manager and up of its organization, acknowledges it; the first
    acknowledgement is kept. Anyone else is told it does not exist."""
    async with uow_factory() as uow:
        alert = await uow.alerts.get(principal.organization_id, alert_id)
        if alert is None or not can_view(principal, alert.user_id):
            raise AlertNotFound()
        acknowledged = await uow.alerts.acknowledge(
            principal.organization_id, alert_id, principal.user_id, clock.now()
        )
        await uow.commit()
    if acknowledged is None:
        raise AlertNotFound()
    return acknowledged
