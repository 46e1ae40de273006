"""Work sessions: start, stop, activity that adds to exact counters, and reading them.

Counters change only through the store's single atomic UPDATE (`add_to_counters`), after the
events were recorded in the ledger under a unique (session, event_id) key, all in one
transaction: a retried or concurrent duplicate adds nothing, and no concurrent write is lost.
A single event (the agents' usual request) takes a shorter path: the store's `record_one`
writes the ledger row and adds to the counters together, or writes nothing, in one statement
that is its own transaction where the database allows it, so the session's row is locked only
inside the database and a hot session is not held up by this process between statements.
Events with an app or URL are also stored as span pings, so the same merge rule turns them into
usage for the app and domain reports. `SESSION_UPDATE` is published after the commit.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from workpulse.domain.errors import (
    InvalidInput,
    ProjectNotFound,
    TransientConflict,
    WorkPulseError,
)
from workpulse.domain.ids import OrganizationId, ProjectId, UserId, WorkSessionId
from workpulse.domain.organizations import OrganizationSettings
from workpulse.domain.pings import Ping, check_ping
from workpulse.domain.roles import Principal, can_view, sees_organization
from workpulse.domain.sessions import (
    Activity,
    ActivityOutOfBounds,
    ActivityType,
    SessionNotFound,
    SessionStatus,
    SessionStopped,
    WorkSession,
    check_activity,
    check_start,
    counter_limit_seconds,
)
from workpulse.services.ingest import SettingsOf
from workpulse.services.ports import (
    Clock,
    Notifier,
    OwnedPing,
    PartitionKeeper,
    SessionStore,
    UnitOfWork,
)
from workpulse.services.rollups import reattribute

SESSION_UPDATE = "SESSION_UPDATE"


@dataclass(frozen=True, slots=True)
class ActivityInput:
    activity_type: str
    duration_seconds: int
    timestamp: datetime | None = None
    app_name: str | None = None
    url: str | None = None
    event_id: str | None = None


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ActivityResult:
    status: Status
    activity: Activity | None = None
    error: WorkPulseError | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record_one` did. `open`: the session took the event (active, room left, and the
    store may also say False for an event it already holds); `inserted`: the event was new to
    the ledger; `session`: the counters after adding it (set exactly when it was written)."""

    open: bool
    inserted: bool
    session: WorkSession | None


class ActivityLedger(SessionStore, Protocol):
    async def record_one(
        self, session: WorkSession, activity: Activity, *, limit_seconds: int
    ) -> Recorded:
        """Write the event and add it to the counters, or write nothing; atomic on its own."""
        ...


class SessionUnitOfWork(UnitOfWork, Protocol):
    @property
    def sessions(self) -> ActivityLedger: ...


class SessionUnitOfWorkFactory(Protocol):
    def __call__(
        self, *, readonly: bool = False, autocommit: bool = False
    ) -> AbstractAsyncContextManager[SessionUnitOfWork]:
        """`autocommit=True`: each statement is its own transaction where the database allows
        it (for a use case whose one write is a single atomic statement); elsewhere ignored."""
        ...


WRITE_ATTEMPTS = 3  # a deadlock victim is run again at most twice


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What every session use case needs; built once by the composition root."""

    uow_factory: SessionUnitOfWorkFactory
    clock: Clock
    notifier: Notifier
    settings_of: SettingsOf
    partitions: PartitionKeeper
    wake_worker: Callable[[], None]


def session_payload(session: WorkSession, change: str) -> dict[str, Any]:
    return {
        "change": change,
        "session": {
            "id": str(session.id),
            "organization_id": str(session.organization_id),
            "user_id": str(session.user_id),
            "project_id": None if session.project_id is None else str(session.project_id),
            "status": session.status.value,
            "start_time": session.start_time.isoformat(),
            "end_time": None if session.end_time is None else session.end_time.isoformat(),
            "total_active_seconds": session.total_active_seconds,
            "total_idle_seconds": session.total_idle_seconds,
            "last_activity_at": None
            if session.last_activity_at is None
            else session.last_activity_at.isoformat(),
            "version": session.version,
        },
    }


def _announce(uow: UnitOfWork, deps: Dependencies, session: WorkSession, change: str) -> None:
    async def publish() -> None:
        await deps.notifier.publish(
            SESSION_UPDATE,
            session_payload(session, change),
            organization_id=session.organization_id,
            user_id=session.user_id,
        )

    uow.after_commit(publish)


async def _visible(uow: UnitOfWork, principal: Principal, session_id: WorkSessionId) -> WorkSession:
    session = await uow.sessions.get(principal.organization_id, session_id)
    if session is None or not can_view(principal, session.user_id):
        raise SessionNotFound()
    return session


async def _own(
    uow: UnitOfWork, principal: Principal, session_id: WorkSessionId, *, lock: bool = False
) -> WorkSession:
    """Only the session's user writes to it; anyone else is told it does not exist."""
    session = await uow.sessions.get(principal.organization_id, session_id, lock=lock)
    if session is None or session.user_id != principal.user_id:
        raise SessionNotFound()
    return session


async def start(
    principal: Principal,
    *,
    project_id: ProjectId | None,
    start_time: datetime | None,
    deps: Dependencies,
) -> WorkSession:
    now = deps.clock.now()
    session = WorkSession(
        id=WorkSessionId(uuid.uuid4()),
        organization_id=principal.organization_id,
        user_id=principal.user_id,
        project_id=project_id,
        status=SessionStatus.ACTIVE,
        start_time=check_start(start_time, now),
        end_time=None,
        total_active_seconds=0,
        total_idle_seconds=0,
        last_activity_at=None,
        version=1,
    )
    await deps.partitions.ensure([session.start_time])
    async with deps.uow_factory() as uow:
        if project_id is not None:
            project = await uow.projects.get(principal.organization_id, project_id)
            if project is None or project.archived_at is not None:
                raise ProjectNotFound()
        await uow.sessions.start(session)
        # Time already recorded since a (backdated) start now belongs to the session's project.
        await reattribute(uow, session.organization_id, session.user_id, session.start_time, now)
        _announce(uow, deps, session, "start")
        await uow.commit()
    return session


async def stop(
    principal: Principal, session_id: WorkSessionId, *, deps: Dependencies
) -> WorkSession:
    async with deps.uow_factory() as uow:
        await _own(uow, principal, session_id)
        now = deps.clock.now()
        stopped = await uow.sessions.stop(principal.organization_id, session_id, now)
        if stopped is None:
            raise SessionStopped("this work session is already stopped")
        await _unattribute_after_end(uow, stopped, now)
        _announce(uow, deps, stopped, "stop")
        await uow.commit()
    return stopped


def _activity(raw: ActivityInput, now: datetime) -> Activity:
    try:
        activity_type = ActivityType(raw.activity_type)
    except ValueError as exc:
        raise InvalidInput("activityType is active or idle") from exc
    timestamp = now if raw.timestamp is None else raw.timestamp
    if timestamp.utcoffset() is None:
        raise InvalidInput("timestamp needs a time zone offset")
    if raw.event_id is not None and not 1 <= len(raw.event_id) <= 128:
        raise InvalidInput("event_id must be 1 to 128 characters")
    return Activity(
        event_id=raw.event_id or f"server:{uuid.uuid4().hex}",
        activity_type=activity_type,
        duration_seconds=raw.duration_seconds,
        timestamp=timestamp,
        app_name=raw.app_name,
        url=raw.url,
        domain=None,
    )


def _as_ping(
    activity: Activity,
    device_id: str,
    session: WorkSession,
    settings: OrganizationSettings,
    now: datetime,
) -> Ping | None:
    """The usage an event with an app (or URL) stands for: a span ping, privacy applied."""
    if activity.app_name is None and activity.url is None:
        return None
    checked = check_ping(
        app_name=activity.app_name or "Browser",
        device_id=device_id,
        start=activity.started_at,
        end=activity.timestamp,
        url=activity.url,
        idle=activity.activity_type is ActivityType.IDLE,
        event_id=f"activity:{session.id}:{activity.event_id}",
        now=now,
        horizon=timedelta(days=settings.ping_horizon_days),
        privacy=settings.privacy,
    )
    return checked if isinstance(checked, Ping) else None


async def record(
    principal: Principal,
    device_id: str,
    session_id: WorkSessionId,
    events: Sequence[ActivityInput],
    *,
    deps: Dependencies,
) -> tuple[WorkSession, list[ActivityResult]]:
    """Apply the events that fit, in order; every event gets a result.

    A transaction the database rolled back as a deadlock victim (or could not serialize) is run
    again: it wrote nothing, and event ids make a repeat harmless. Clients never see a conflict
    for an ordinary concurrent write."""
    settings = await deps.settings_of(principal.organization_id)
    now = deps.clock.now()
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            if len(events) == 1:
                return await _record_one(
                    principal, device_id, session_id, events[0], settings, now, deps
                )
            return await _record_batch(
                principal, device_id, session_id, events, settings, now, deps
            )
        except TransientConflict:
            if attempt == WRITE_ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # let the winner finish
    raise AssertionError("unreachable")


async def _record_batch(
    principal: Principal,
    device_id: str,
    session_id: WorkSessionId,
    events: Sequence[ActivityInput],
    settings: OrganizationSettings,
    now: datetime,
    deps: Dependencies,
) -> tuple[WorkSession, list[ActivityResult]]:
    async with deps.uow_factory() as uow:
        # The session row first, then the ledger: the order the one-event statement takes too.
        session = await _own(uow, principal, session_id, lock=True)
        if not session.active:
            raise SessionStopped()
        results: list[ActivityResult | None] = [None] * len(events)
        candidates: list[tuple[int, Activity]] = []
        for index, raw in enumerate(events):
            try:
                activity = _activity(raw, now)
                check_activity(
                    session, activity, max_duration=settings.max_activity_seconds, now=now
                )
            except WorkPulseError as exc:
                results[index] = ActivityResult(Status.REJECTED, error=exc)
                continue
            candidates.append((index, activity))

        stored = await uow.sessions.recorded(session, [a.event_id for _, a in candidates])
        seen: set[str] = set()
        room = counter_limit_seconds(session, now) - (
            session.total_active_seconds + session.total_idle_seconds
        )
        fitting: list[tuple[int, Activity]] = []
        for index, activity in candidates:
            if activity.event_id in stored or activity.event_id in seen:
                earlier = stored.get(activity.event_id, activity)
                results[index] = ActivityResult(Status.DUPLICATE, activity=earlier)
            elif activity.duration_seconds > room:
                results[index] = ActivityResult(
                    Status.REJECTED,
                    error=ActivityOutOfBounds(
                        "the session's counters cannot exceed its wall-clock length"
                    ),
                )
            else:
                room -= activity.duration_seconds
                fitting.append((index, activity))
            seen.add(activity.event_id)

        new = await uow.sessions.record(session, [a for _, a in fitting])
        new_ids = {a.event_id for a in new}
        for index, activity in fitting:
            status = Status.ACCEPTED if activity.event_id in new_ids else Status.DUPLICATE
            results[index] = ActivityResult(status, activity=activity)
        if new:
            updated = await uow.sessions.add_to_counters(
                session,
                active_seconds=sum(
                    a.duration_seconds for a in new if a.activity_type is ActivityType.ACTIVE
                ),
                idle_seconds=sum(
                    a.duration_seconds for a in new if a.activity_type is ActivityType.IDLE
                ),
                last_activity_at=max(a.timestamp for a in new),
                limit_seconds=counter_limit_seconds(session, now),
            )
            if updated is None:
                current = await uow.sessions.get(principal.organization_id, session_id)
                if current is None or not current.active:
                    raise SessionStopped()
                raise ActivityOutOfBounds(
                    "the session's counters cannot exceed its wall-clock length"
                )
            session = updated
            pings = [
                OwnedPing(principal.organization_id, principal.user_id, ping)
                for a in new
                if (ping := _as_ping(a, device_id, session, settings, now)) is not None
            ]
            if pings:
                await deps.partitions.ensure(p.ping.start for p in pings)
                await uow.pings.add(pings, pending=True)
                uow.after_commit(_woken(deps))
            _announce(uow, deps, session, "activity")
            await uow.commit()
    return session, [r for r in results if r is not None]


async def _record_one(
    principal: Principal,
    device_id: str,
    session_id: WorkSessionId,
    raw: ActivityInput,
    settings: OrganizationSettings,
    now: datetime,
    deps: Dependencies,
) -> tuple[WorkSession, list[ActivityResult]]:
    """One event: no ledger read first; `record_one` writes it with the counters, or nothing.

    An event without an app or URL writes nothing else, so its statement can be its own
    transaction; one with usage also stores a ping, in the same transaction."""
    usage = raw.app_name is not None or raw.url is not None
    async with deps.uow_factory(autocommit=not usage) as uow:
        session = await _own(uow, principal, session_id)
        if not session.active:
            raise SessionStopped()
        try:
            activity = _activity(raw, now)
            check_activity(session, activity, max_duration=settings.max_activity_seconds, now=now)
        except WorkPulseError as exc:
            return session, [ActivityResult(Status.REJECTED, error=exc)]
        outcome = await uow.sessions.record_one(
            session, activity, limit_seconds=counter_limit_seconds(session, now)
        )
        if outcome.session is None:
            return await _unwritten(uow, principal, session, activity, outcome)
        ping = _as_ping(activity, device_id, outcome.session, settings, now) if usage else None
        if ping is not None:
            await deps.partitions.ensure([ping.start])
            await uow.pings.add(
                [OwnedPing(principal.organization_id, principal.user_id, ping)], pending=True
            )
            uow.after_commit(_woken(deps))
        _announce(uow, deps, outcome.session, "activity")
        await uow.commit()
    return outcome.session, [ActivityResult(Status.ACCEPTED, activity=activity)]


async def _unwritten(
    uow: UnitOfWork,
    principal: Principal,
    session: WorkSession,
    activity: Activity,
    outcome: Recorded,
) -> tuple[WorkSession, list[ActivityResult]]:
    """Why `record_one` wrote nothing: a repeat (answered with the stored event), a session
    stopped meanwhile (409), or no room left under the wall-clock bound."""
    stored = await uow.sessions.recorded(session, [activity.event_id])
    if activity.event_id in stored or outcome.open:  # open and not written: a repeat
        earlier = stored.get(activity.event_id, activity)
        return session, [ActivityResult(Status.DUPLICATE, activity=earlier)]
    if not outcome.open:
        current = await uow.sessions.get(principal.organization_id, session.id)
        if current is None or not current.active:
            raise SessionStopped()
    error = ActivityOutOfBounds("the session's counters cannot exceed its wall-clock length")
    return session, [ActivityResult(Status.REJECTED, error=error)]


def _woken(deps: Dependencies) -> Callable[[], Any]:
    async def wake() -> None:
        deps.wake_worker()

    return wake


async def get(
    principal: Principal, session_id: WorkSessionId, *, deps: Dependencies
) -> WorkSession:
    async with deps.uow_factory(readonly=True) as uow:
        return await _visible(uow, principal, session_id)


async def active(principal: Principal, *, deps: Dependencies) -> Sequence[WorkSession]:
    """The caller's active session, or (managers and up) the organization's."""
    async with deps.uow_factory(readonly=True) as uow:
        return await uow.sessions.active(
            principal.organization_id,
            None if sees_organization(principal) else principal.user_id,
        )


async def history(
    principal: Principal,
    *,
    user_id: UserId | None,
    project_id: ProjectId | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, WorkSessionId] | None,
    limit: int,
    deps: Dependencies,
) -> Sequence[WorkSession]:
    if user_id is not None and not can_view(principal, user_id):
        return []
    if user_id is None and not sees_organization(principal):
        user_id = principal.user_id
    async with deps.uow_factory(readonly=True) as uow:
        return await uow.sessions.history(
            principal.organization_id,
            user_id=user_id,
            project_id=project_id,
            start=start,
            end=end,
            after=after,
            limit=limit,
        )


async def close_stale(
    organization_id: OrganizationId, *, deps: Dependencies
) -> Sequence[WorkSession]:
    """Stop the organization's sessions silent for longer than its `session_timeout_minutes`.

    The seam for the scheduler's job: idempotent, one transaction, announced after commit."""
    settings = await deps.settings_of(organization_id)
    cutoff = deps.clock.now() - timedelta(minutes=settings.session_timeout_minutes)
    async with deps.uow_factory() as uow:
        closed = await uow.sessions.close_stale(organization_id, cutoff)
        for session in closed:
            await _unattribute_after_end(uow, session, deps.clock.now())
            _announce(uow, deps, session, "timeout")
        await uow.commit()
    return closed


async def _unattribute_after_end(uow: UnitOfWork, session: WorkSession, now: datetime) -> None:
    """Time after a session's end (a stale session ends at its last sign of life, in the past)
    no longer belongs to its project."""
    if session.end_time is not None and session.end_time < now:
        await reattribute(uow, session.organization_id, session.user_id, session.end_time, now)
