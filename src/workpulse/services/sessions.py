"""Work sessions: start, stop, reading them, and closing stale ones. Activity on a session (the
counters) is services/activity.py. `SESSION_UPDATE` is published after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from workpulse.domain.errors import (
    ProjectNotFound,
)
from workpulse.domain.ids import OrganizationId, ProjectId, UserId, WorkSessionId
from workpulse.domain.roles import Principal, can_view, sees_organization
from workpulse.domain.sessions import (
    SessionNotFound,
    SessionStatus,
    SessionStopped,
    WorkSession,
    check_start,
)
from workpulse.services.ingest import SettingsOf
from workpulse.services.ports import (
    Clock,
    Notifier,
    PartitionKeeper,
    SessionUnitOfWorkFactory,
    UnitOfWork,
)
from workpulse.services.rollups import reattribute

if TYPE_CHECKING:
    from workpulse.services.activity_groups import ActivityGroups

SESSION_UPDATE = "SESSION_UPDATE"


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What every session use case needs; built once by the composition root."""

    uow_factory: SessionUnitOfWorkFactory
    clock: Clock
    notifier: Notifier
    settings_of: SettingsOf
    partitions: PartitionKeeper
    wake_worker: Callable[[], None]
    groups: ActivityGroups | None = None  # single events written in groups (activity.py)


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


def announce(uow: UnitOfWork, notifier: Notifier, session: WorkSession, change: str) -> None:
    async def publish() -> None:
        await notifier.publish(
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


async def own(
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
        announce(uow, deps.notifier, session, "start")
        await uow.commit()
    return session


async def stop(
    principal: Principal, session_id: WorkSessionId, *, deps: Dependencies
) -> WorkSession:
    async with deps.uow_factory() as uow:
        await own(uow, principal, session_id)
        now = deps.clock.now()
        stopped = await uow.sessions.stop(principal.organization_id, session_id, now)
        if stopped is None:
            raise SessionStopped("this work session is already stopped")
        await _unattribute_after_end(uow, stopped, now)
        announce(uow, deps.notifier, stopped, "stop")
        await uow.commit()
    return stopped


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
            announce(uow, deps.notifier, session, "timeout")
        await uow.commit()
    return closed


async def _unattribute_after_end(uow: UnitOfWork, session: WorkSession, now: datetime) -> None:
    """Time after a session's end (a stale session ends at its last sign of life, in the past)
    no longer belongs to its project."""
    if session.end_time is not None and session.end_time < now:
        await reattribute(uow, session.organization_id, session.user_id, session.end_time, now)
