"""Work sessions and the activity events that add to their counters.

A user has at most one active session. An activity event says "the last `duration_seconds`
until `timestamp` were active (or idle)"; it covers `[timestamp - duration, timestamp]`, which
must lie inside the session (from its start to its end, or to now for an active session, with
`CLOCK_SKEW` of slack for device clocks). Each accepted event adds its duration to one counter
exactly once: the sum of a session's counters equals the sum over its ledger (`activity_logs`).
The sum may exceed the session's wall-clock length by at most `OVERRUN_TOLERANCE`: two devices
reporting the same minute are a client error, but rounding and clock skew are not.

Example: a session started 09:00; at 09:30 an event `{active, 60 s, timestamp 09:30}` covers
09:29 to 09:30 and adds 60 to `total_active_seconds`; the same event sent again (same event_id)
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workpulse.domain.errors import Conflict, InvalidInput, NotFound
from workpulse.domain.ids import OrganizationId, ProjectId, UserId, WorkSessionId

CLOCK_SKEW = timedelta(minutes=5)
OVERRUN_TOLERANCE = timedelta(minutes=5)
MAX_BACKDATE = timedelta(hours=24)


class SessionStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"


class ActivityType(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"


class SessionNotFound(NotFound):
    default_detail = "work session not found"


class SessionAlreadyActive(Conflict):
    default_detail = "you already have an active work session: stop it first"


class SessionStopped(Conflict):
    default_detail = "this work session is stopped"


class ActivityOutOfBounds(InvalidInput):
    default_detail = "the activity does not fit the session"


@dataclass(frozen=True, slots=True)
class WorkSession:
    id: WorkSessionId
    organization_id: OrganizationId
    user_id: UserId
    project_id: ProjectId | None
    status: SessionStatus
    start_time: datetime
    end_time: datetime | None
    total_active_seconds: int
    total_idle_seconds: int
    last_activity_at: datetime | None
    version: int

    @property
    def active(self) -> bool:
        return self.status is SessionStatus.ACTIVE

    def wall_clock_seconds(self, now: datetime) -> float:
        return ((self.end_time or now) - self.start_time).total_seconds()


@dataclass(frozen=True, slots=True)
class Activity:
    """One checked event. `event_id` is the client's, or a server-made unique one."""

    event_id: str
    activity_type: ActivityType
    duration_seconds: int
    timestamp: datetime
    app_name: str | None
    url: str | None
    domain: str | None

    @property
    def started_at(self) -> datetime:
        return self.timestamp - timedelta(seconds=self.duration_seconds)


def check_start(start_time: datetime | None, now: datetime) -> datetime:
    """A session starts now, or earlier when an agent that was offline reports it late."""
    if start_time is None:
        return now
    if start_time.utcoffset() is None:
        raise InvalidInput("start_time needs a time zone offset")
    if start_time > now + CLOCK_SKEW:
        raise InvalidInput("start_time is in the future")
    if start_time < now - MAX_BACKDATE:
        raise InvalidInput("a session starts at most 24 hours in the past")
    return min(start_time, now)


def check_activity(
    session: WorkSession, activity: Activity, *, max_duration: int, now: datetime
) -> None:
    """Raise `ActivityOutOfBounds` (422) or `SessionStopped` (409) for an event that cannot
    count; the sum bound is checked where the counters are updated (atomically)."""
    if not session.active:
        raise SessionStopped()
    if not 1 <= activity.duration_seconds <= max_duration:
        raise ActivityOutOfBounds(f"durationSeconds must be between 1 and {max_duration}")
    if activity.timestamp > now + CLOCK_SKEW:
        raise ActivityOutOfBounds("the activity's timestamp is in the future")
    if activity.started_at < session.start_time - CLOCK_SKEW:
        raise ActivityOutOfBounds("the activity starts before its session")


def counter_limit_seconds(session: WorkSession, now: datetime) -> int:
    """The most the two counters may hold together at `now`."""
    return int(session.wall_clock_seconds(now) + OVERRUN_TOLERANCE.total_seconds())
