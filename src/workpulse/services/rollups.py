"""Hourly rollups: kept by the workers as they re-derive intervals, and re-attributed when a
work session's start or end changes which project an hour's time belongs to. Reports read them
(services/reports.py, docs/reports.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from workpulse.domain.ids import OrganizationId, ProjectId, UserId
from workpulse.domain.intervals import Interval
from workpulse.domain.reports import Usage, ceil_hour, floor_hour, tally
from workpulse.services.ports import DeviceKey, HourlyRows, UnitOfWork, UserKey


async def refresh_rollups(
    uow: UnitOfWork, hours: Mapping[UserKey, tuple[datetime, datetime]]
) -> None:
    """Recompute each user's hourly rollups for the whole hours in its [start, end) from its
    intervals, inside the caller's transaction and under the caller's per-user usage locks."""
    if not hours:
        return
    found = await uow.usage.around(hours)
    spans = await uow.rollups.spans_around(hours)
    await uow.rollups.replace(
        [
            HourlyRows(
                user, start, end, tally(found.get(user, ()), spans.get(user, ()), start, end)
            )
            for user, (start, end) in hours.items()
        ]
    )


async def adjust_rollups(
    uow: UnitOfWork,
    changed: Mapping[UserKey, tuple[datetime, datetime]],
    before: Mapping[UserKey, Sequence[Interval]],
    after: Mapping[UserKey, Sequence[Interval]],
) -> None:
    """Bring the rollups of the hours around each user's changed range [low, high) up to date,
    given the user's intervals overlapping that range before and after the change.

    Time outside [low, high) did not change, and a tally is a sum over instants, so each hour's
    rows change by tally(after) - tally(before) over [low, high): only the changed range is
    tallied, not every interval of its hours. A row that would leave its bounds (which only a
    rollup out of step with its intervals could cause) has its user's hours recomputed in full."""
    spans = await uow.rollups.spans_around(changed)
    deltas: dict[UserKey, Counter[tuple[datetime, str, str | None, bool, ProjectId | None]]] = {}
    for user, (low, high) in changed.items():
        delta: Counter[tuple[datetime, str, str | None, bool, ProjectId | None]] = Counter()
        for usage in tally(after.get(user, ()), spans.get(user, ()), low, high):
            delta[_key(usage)] += usage.micros
        for usage in tally(before.get(user, ()), spans.get(user, ()), low, high):
            delta[_key(usage)] -= usage.micros
        if any(delta.values()):
            deltas[user] = delta
    if not deltas:
        return  # a batch delivered again, or one that changed nothing: no write
    hours = {user: (floor_hour(changed[user][0]), ceil_hour(changed[user][1])) for user in deltas}
    current = await uow.rollups.rows_of(hours)
    fresh, redo = [], {}
    for user, delta in deltas.items():
        totals = Counter({_key(u): u.micros for u in current.get(user, ())})
        totals.update(delta)  # adds, keeping zeros and negatives (unlike +=)
        if any(not 0 <= micros <= HOUR_MICROS for micros in totals.values()):
            redo[user] = hours[user]
            continue
        rows = [Usage(*key, micros=micros) for key, micros in totals.items() if micros]
        fresh.append(HourlyRows(user, *hours[user], rows))
    await uow.rollups.replace(fresh)
    await refresh_rollups(uow, redo)


HOUR_MICROS = 3_600_000_000


def _key(usage: Usage) -> tuple[datetime, str, str | None, bool, ProjectId | None]:
    return (usage.hour, usage.app_name, usage.domain, usage.idle, usage.project_id)


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
    await refresh_rollups(
        uow, {UserKey(organization_id, user_id): (floor_hour(start), ceil_hour(end))}
    )
