"""Activity on a work session: events one at a time or in batches, each counted exactly once.

Counters change only through the store's single atomic UPDATE (`add_to_counters`), after the
events were recorded in the ledger under a unique (session, event_id) key, all in one
transaction: a retried or concurrent duplicate adds nothing, and no concurrent write is lost.
A batch locks the session row first, then writes the ledger. A single event (the agents' usual
request) is written in a group with the single events that arrive meanwhile
(services/activity_groups.py); what the group did not write takes the one-event path: the store's
`record_one` writes the ledger row and adds to the counters together, or writes nothing, in one
statement that is its own transaction where the database allows it, and the answer says why.
A transaction the database rolled back as a deadlock victim is run again.
Events with an app or URL are also stored as span pings, so the same merge rule turns them into
usage for the app and domain reports.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from workpulse.domain.errors import (
    InvalidInput,
    TransientConflict,
    WorkPulseError,
)
from workpulse.domain.ids import WorkSessionId
from workpulse.domain.organizations import OrganizationSettings
from workpulse.domain.pings import Ping, check_ping
from workpulse.domain.roles import Principal
from workpulse.domain.sessions import (
    Activity,
    ActivityOutOfBounds,
    ActivityType,
    SessionStopped,
    WorkSession,
    check_activity,
    counter_limit_seconds,
)
from workpulse.services.ports import (
    OwnedPing,
    Recorded,
    UnitOfWork,
)
from workpulse.services.sessions import Dependencies, announce, own


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


WRITE_ATTEMPTS = 3  # a deadlock victim is run again at most twice


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
    session_id: WorkSessionId,
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
        event_id=f"activity:{session_id}:{activity.event_id}",
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
        session = await own(uow, principal, session_id, lock=True)
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
                if (ping := _as_ping(a, device_id, session.id, settings, now)) is not None
            ]
            if pings:
                await deps.partitions.ensure(p.ping.start for p in pings)
                await uow.pings.add(pings, pending=True)
                uow.after_commit(_woken(deps))
            announce(uow, deps.notifier, session, "activity")
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
    """One event: written in a group with others that arrive meanwhile (activity_groups.py),
    or else on its own: no ledger read first; `record_one` writes it with the counters, or
    nothing, and what did not fit is told why.

    An event without an app or URL writes nothing else, so its statement can be its own
    transaction; one with usage also stores a ping, in the same transaction."""
    usage = raw.app_name is not None or raw.url is not None
    grouped: Activity | None = None
    if deps.groups is not None:
        try:
            grouped = activity = _activity(raw, now)
        except WorkPulseError:
            pass  # answered below, after the checks that come first (404, 409)
        else:
            written = await deps.groups.record(
                principal,
                session_id,
                activity,
                usage=_as_ping(activity, device_id, session_id, settings, now) if usage else None,
                max_duration=settings.max_activity_seconds,
                now=now,
            )
            if written is not None:
                return written, [ActivityResult(Status.ACCEPTED, activity=activity)]
    async with deps.uow_factory(autocommit=not usage) as uow:
        session = await own(uow, principal, session_id)
        if not session.active:
            raise SessionStopped()
        try:
            # The event the group had, its server-made id included: should the group have
            # written it after all (a failure after its statement committed), the ledger's
            # unique key finds it here and it still counts once.
            activity = grouped if grouped is not None else _activity(raw, now)
            check_activity(session, activity, max_duration=settings.max_activity_seconds, now=now)
        except WorkPulseError as exc:
            return session, [ActivityResult(Status.REJECTED, error=exc)]
        outcome = await uow.sessions.record_one(
            session, activity, limit_seconds=counter_limit_seconds(session, now)
        )
        if outcome.session is None:
            return await _unwritten(uow, principal, session, activity, outcome)
        ping = _as_ping(activity, device_id, session.id, settings, now) if usage else None
        if ping is not None:
            await deps.partitions.ensure([ping.start])
            await uow.pings.add(
                [OwnedPing(principal.organization_id, principal.user_id, ping)], pending=True
            )
            uow.after_commit(_woken(deps))
        announce(uow, deps.notifier, outcome.session, "activity")
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
