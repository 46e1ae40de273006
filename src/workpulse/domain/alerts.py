"""Alerts: a user idle in an active work session, a user past the overtime limit of a local day.

Each alert has a key that makes it once-only (the database keeps one alert per user and key):
- idle: one per idle episode. An episode starts at the session's last active moment (the end of
  its latest `active` event; the session's start if it has none) and lasts until activity
  resumes. Key `idle:<session id>:<episode start>`. Idle events do not end an episode.
- overtime: one per local day (the user's zone, else the organization's). Key `overtime:<date>`.

Example: a session started 09:00 with an active event ending 09:30 and nothing after is idle
from 09:30; with `idle_minutes=5` the 09:35 check alerts, the 09:36 check finds the same key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from workpulse.domain.errors import NotFound
from workpulse.domain.ids import OrganizationId, UserId, WorkSessionId


class AlertType(StrEnum):
    INACTIVE = "inactive"
    OVERTIME = "overtime"

    @property
    def event(self) -> str:
        """The real-time event that announces an alert of this type (docs/realtime.md)."""
        return "INACTIVE_ALERT" if self is AlertType.INACTIVE else "OVERTIME_ALERT"


class AlertNotFound(NotFound):
    default_detail = "alert not found"


@dataclass(frozen=True, slots=True)
class Alert:
    id: UUID
    organization_id: OrganizationId
    user_id: UserId
    type: AlertType
    message: str
    data: dict[str, Any]
    created_at: datetime
    key: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: UserId | None = None


@dataclass(frozen=True, slots=True)
class SessionActivity:
    """An active work session and its latest `active` event's end (None: no active event)."""

    session_id: WorkSessionId
    user_id: UserId
    start_time: datetime
    last_active_at: datetime | None


@dataclass(frozen=True, slots=True)
class IdleEpisode:
    session_id: WorkSessionId
    user_id: UserId
    since: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"idle:{self.session_id}:{self.since.isoformat()}"


def idle_episode(
    session: SessionActivity, *, idle_minutes: int, now: datetime
) -> IdleEpisode | None:
    """The session's idle episode if it has lasted `idle_minutes` by `now`, else None."""
    since = session.start_time
    if session.last_active_at is not None and session.last_active_at > since:
        since = session.last_active_at
    if now - since < timedelta(minutes=idle_minutes):
        return None
    return IdleEpisode(session.session_id, session.user_id, since)


def idle_message(minutes: int) -> str:
    return f"No activity for {minutes} minutes or more in an active work session"


def overtime_key(day: date) -> str:
    return f"overtime:{day.isoformat()}"


def overtime_passed(active_seconds: int, overtime_hours: float) -> bool:
    return active_seconds > overtime_hours * 3600


def overtime_message(hours: float) -> str:
    return f"More than {hours:g} hours of active time today"
