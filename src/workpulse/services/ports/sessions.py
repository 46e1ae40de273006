"""Work sessions and the notifier that announces their changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from workpulse.domain.ids import (
    OrganizationId,
    ProjectId,
    UserId,
    WorkSessionId,
)
from workpulse.domain.sessions import Activity, WorkSession


class SessionStore(Protocol):
    async def start(self, session: WorkSession) -> None:
        """Raises `SessionAlreadyActive` when the user has one (enforced by the database)."""
        ...

    async def get(
        self, organization_id: OrganizationId, session_id: WorkSessionId, *, lock: bool = False
    ) -> WorkSession | None:
        """`lock=True`: the row is locked until the transaction ends (its current version)."""
        ...

    async def active(
        self, organization_id: OrganizationId, user_id: UserId | None
    ) -> Sequence[WorkSession]: ...

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
    ) -> Sequence[WorkSession]: ...

    async def stop(
        self, organization_id: OrganizationId, session_id: WorkSessionId, now: datetime
    ) -> WorkSession | None: ...

    async def close_stale(
        self, organization_id: OrganizationId, cutoff: datetime
    ) -> Sequence[WorkSession]: ...

    async def record(
        self, session: WorkSession, activities: Sequence[Activity]
    ) -> list[Activity]: ...

    async def recorded(
        self, session: WorkSession, event_ids: Sequence[str]
    ) -> dict[str, Activity]: ...

    async def add_to_counters(
        self,
        session: WorkSession,
        *,
        active_seconds: int,
        idle_seconds: int,
        last_activity_at: datetime,
        limit_seconds: int,
    ) -> WorkSession | None: ...

    async def ledger_totals(self, session: WorkSession) -> tuple[int, int]: ...

    async def get_many(
        self, keys: Sequence[tuple[OrganizationId, WorkSessionId]]
    ) -> dict[WorkSessionId, WorkSession]:
        """The sessions of these (organization, session) pairs that exist, by id."""
        ...


class Notifier(Protocol):
    """Real-time events, published only after the change they report has committed."""

    async def publish(
        self,
        event: str,
        payload: Mapping[str, Any],
        *,
        organization_id: OrganizationId,
        user_id: UserId,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record_one` did. `open`: the session took the event (active, room left, and the
    store may also say False for an event it already holds); `inserted`: the event was new to
    the ledger; `session`: the counters after adding it (set exactly when it was written)."""

    open: bool
    inserted: bool
    session: WorkSession | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One event for `record_many`: its session as read, and the most the session's two
    counters may hold together once it is added."""

    session: WorkSession
    activity: Activity
    limit_seconds: int


@dataclass(frozen=True, slots=True)
class Written:
    """What `record_many` did: per entry, in order, the session after all of the events written
    here, or None where nothing was written for the entry; and the sessions it skipped because
    another transaction held their row (they fitted as read; try them again, waiting)."""

    sessions: list[WorkSession | None]
    held: frozenset[WorkSessionId]


class ActivityLedger(SessionStore, Protocol):
    async def record_many(self, entries: Sequence[Entry], *, wait: bool = False) -> Written:
        """Write the events of many sessions at once, each at most once, each only if its
        session is still active and has room for it under its limit (a store may also write
        none of a session's events when they do not all fit). None for an entry is a repeat,
        a stopped session, no room, or a held session: the caller finds out which. Without
        `wait` a session whose row another transaction holds is skipped rather than waited
        for (PostgreSQL; SQLite has one writer at a time). Atomic on its own on PostgreSQL,
        like `record_one`."""
        ...

    async def record_one(
        self, session: WorkSession, activity: Activity, *, limit_seconds: int
    ) -> Recorded:
        """Write the event and add it to the counters, or write nothing; atomic on its own."""
        ...
