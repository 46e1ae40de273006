"""Ping ingestion: check and queue pings (the API's part), derive intervals (the worker's part).

The API answers once the queue holds the pings durably; the worker turns stored pings into
intervals by re-deriving, per device, only the window a batch can change (domain/intervals.py),
under a per-user lock, in one transaction with the bookkeeping that marks the batch done.
A replayed batch changes nothing: pings are keyed, and re-derivation is a function of the set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workpulse.domain.errors import InvalidTimezone, UserNotFound
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.intervals import (
    Interval,
    Window,
    affected_window,
    plan_rederivation,
    rederive,
)
from workpulse.domain.months import day_bounds
from workpulse.domain.organizations import OrganizationSettings
from workpulse.domain.pings import FUTURE_TOLERANCE, Ping, Rejected, Rejection, check_ping
from workpulse.domain.roles import Principal, can_view
from workpulse.domain.timezones import parse_timezone
from workpulse.services.ports import (
    Clock,
    DeviceKey,
    OwnedPing,
    PartitionKeeper,
    PingQueue,
    Replacement,
    UnitOfWork,
    UnitOfWorkFactory,
    UserKey,
)
from workpulse.services.rollups import adjust_rollups

SettingsOf = Callable[[OrganizationId], Awaitable[OrganizationSettings]]


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class PingInput:
    """One ping as the client sent it, already of the right JSON types."""

    app_name: str
    url: str | None = None
    domain: str | None = None
    title: str | None = None
    timestamp: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    idle: bool = False
    device_id: str | None = None
    event_id: str | None = None
    tz: str | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    outcome: Outcome
    event_id: str | None = None
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    device_id: str
    device_ids: frozenset[str]


def check_item(
    item: PingInput | Rejected,
    caller: Caller,
    settings: OrganizationSettings,
    now: datetime,
) -> Ping | Rejected:
    if isinstance(item, Rejected):
        return item
    device_id = item.device_id or caller.device_id
    if device_id not in caller.device_ids and device_id != caller.device_id:
        return Rejected(Rejection.INVALID, "device_id is not one of your devices")
    if item.tz is not None:
        try:
            parse_timezone(item.tz)
        except InvalidTimezone as exc:
            return Rejected(Rejection.INVALID, str(exc.detail))
    if item.end_time is not None and item.start_time is None:
        return Rejected(Rejection.INVALID, "a span needs start_time as well as end_time")
    if item.timestamp is not None and item.start_time is not None:
        return Rejected(Rejection.INVALID, "give timestamp or start_time, not both")
    return check_ping(
        app_name=item.app_name,
        device_id=device_id,
        start=item.start_time or item.timestamp,
        end=item.end_time,
        url=item.url,
        domain=item.domain,
        title=item.title,
        idle=item.idle,
        event_id=item.event_id,
        now=now,
        horizon=timedelta(days=settings.ping_horizon_days),
        privacy=settings.privacy,
    )


async def track(
    caller: Caller,
    items: Sequence[PingInput | Rejected],
    *,
    settings_of: SettingsOf,
    queue: PingQueue,
    clock: Clock,
) -> list[ItemResult]:
    """Check every item on its own, queue the valid ones, answer one result per item.

    Raises `Backlogged` (nothing queued) when the queue is over its bound."""
    principal = caller.principal
    settings = await settings_of(principal.organization_id)
    now = clock.now()
    checked = [check_item(item, caller, settings, now) for item in items]
    valid = [
        OwnedPing(principal.organization_id, principal.user_id, c)
        for c in checked
        if isinstance(c, Ping)
    ]
    # A repeat must be recognized for as long as the ping itself could still be accepted.
    dedupe_for = timedelta(days=settings.ping_horizon_days) + FUTURE_TOLERANCE
    fresh = iter(await queue.submit(valid, dedupe_for=dedupe_for) if valid else [])
    results = []
    for c in checked:
        if isinstance(c, Rejected):
            results.append(ItemResult(Outcome.REJECTED, reason=c.reason.value, message=c.message))
        else:
            outcome = Outcome.ACCEPTED if next(fresh) else Outcome.DUPLICATE
            results.append(ItemResult(outcome, event_id=c.event_id))
    return results


async def derive(
    uow: UnitOfWork,
    new: Sequence[OwnedPing],
    *,
    settings_of: SettingsOf,
    partitions: PartitionKeeper,
) -> int:
    """Re-derive the intervals that the new (already stored) pings can change.

    Returns the number of devices re-derived. Runs inside the caller's transaction."""
    by_device: dict[DeviceKey, list[Ping]] = defaultdict(list)
    for owned in new:
        key = DeviceKey(owned.organization_id, owned.user_id, owned.ping.device_id)
        by_device[key].append(owned.ping)
    settings: dict[OrganizationId, OrganizationSettings] = {}
    windows = {}
    for device, device_pings in by_device.items():
        if device.organization_id not in settings:
            settings[device.organization_id] = await settings_of(device.organization_id)
        pulse, join_gap = _durations(settings[device.organization_id])
        windows[device] = affected_window(device_pings, pulse=pulse, join_gap=join_gap)
    await partitions.ensure(
        moment for window in windows.values() for moment in (window.start, window.end)
    )
    await uow.usage.lock(list(windows))
    for part in _parts(windows):
        await _derive_part(uow, part, settings, partitions)
    return len(windows)


# A batch is derived a part at a time, each part a few users whose windows cover at most this
# much time summed over their devices. Live traffic (every device a minute or so) is one part:
# a few statements for the whole batch. A batch whose devices each reach hours back (agents'
# flushed buffers) no longer holds every device's hours of pings and intervals at once
# (100,000 pings and +90 MB of worker RSS in one batch of bench/ingest's drain).
PART_DEVICE_TIME = timedelta(hours=6)


def _parts(windows: dict[DeviceKey, Window]) -> list[dict[DeviceKey, Window]]:
    """The windows in parts, a user's devices always in the same part (rollups are per user)."""
    by_user: dict[UserKey, dict[DeviceKey, Window]] = defaultdict(dict)
    for device, window in windows.items():
        by_user[UserKey(device.organization_id, device.user_id)][device] = window
    parts: list[dict[DeviceKey, Window]] = [{}]
    spent = timedelta(0)
    for own in sorted(by_user.values(), key=lambda w: min(x.start for x in w.values())):
        length = sum((w.end - w.start for w in own.values()), timedelta(0))
        if parts[-1] and spent + length > PART_DEVICE_TIME:
            parts.append({})
            spent = timedelta(0)
        parts[-1].update(own)
        spent += length
    return parts


async def _derive_part(
    uow: UnitOfWork,
    windows: dict[DeviceKey, Window],
    settings: dict[OrganizationId, OrganizationSettings],
    partitions: PartitionKeeper,
) -> None:
    # A few statements for all the part's devices, not a few per device: on SQLite the write
    # lock is held meanwhile, and each statement is a hop to the driver's thread.
    stored = await uow.usage.touching(windows)
    plans = {}
    for device, window in windows.items():
        pulse, join_gap = _durations(settings[device.organization_id])
        plans[device] = plan_rederivation(
            window, stored.get(device, ()), pulse=pulse, join_gap=join_gap
        )
    await partitions.ensure(
        moment for plan in plans.values() for moment in (plan.replace_start, plan.replace_end)
    )
    needed = await uow.pings.needed(plans)
    replacements = []
    changed: dict[UserKey, tuple[datetime, datetime]] = {}
    for device, plan in plans.items():
        pulse, join_gap = _durations(settings[device.organization_id])
        fresh = rederive(
            needed.get(device, ()),
            plan,
            pulse=pulse,
            join_gap=join_gap,
            bounds=day_bounds(plan.replace_start, plan.replace_end),
        )
        replacements.append(Replacement(device, plan, fresh))
        user = UserKey(device.organization_id, device.user_id)
        low, high = changed.get(user, (plan.replace_start, plan.replace_end))
        changed[user] = (min(low, plan.replace_start), max(high, plan.replace_end))
    del needed
    # Each user's intervals (every device) around what changes, before and after: the hourly
    # rollups change by the difference (the lock above is per user, so no other worker changes
    # them meanwhile).
    before = await uow.usage.around(changed)
    await uow.usage.replace(replacements)
    after: dict[UserKey, list[Interval]] = {
        user: [
            i
            for i in intervals
            if not (
                (key := DeviceKey(user.organization_id, user.user_id, i.device_id)) in plans
                and plans[key].replaces(i)
            )
        ]
        for user, intervals in before.items()
    }
    for r in replacements:
        after.setdefault(UserKey(r.device.organization_id, r.device.user_id), []).extend(r.fresh)
    await adjust_rollups(uow, changed, before, after)


def _durations(settings: OrganizationSettings) -> tuple[timedelta, timedelta]:
    return timedelta(seconds=settings.pulse_seconds), timedelta(seconds=settings.join_gap_seconds)


async def derive_pending(
    *,
    uow_factory: UnitOfWorkFactory,
    settings_of: SettingsOf,
    partitions: PartitionKeeper,
    limit: int = 2000,
) -> int:
    """Database-queue mode: derive pings the API stored as pending. Returns how many."""
    async with uow_factory() as uow:
        pending = await uow.pings.take_pending(limit)
        if not pending:
            return 0
        await derive(uow, pending, settings_of=settings_of, partitions=partitions)
        await uow.pings.mark_derived(pending)
        await uow.commit()
    return len(pending)


async def store_and_derive(
    batch: Sequence[OwnedPing],
    *,
    uow_factory: UnitOfWorkFactory,
    settings_of: SettingsOf,
    partitions: PartitionKeeper,
) -> int:
    """Stream mode: store a batch read from the queue and derive it. Returns how many were new;
    a batch delivered again stores nothing and changes nothing."""
    await partitions.ensure(o.ping.start for o in batch)
    async with uow_factory() as uow:
        new = await uow.pings.add(batch, pending=False)
        if new:
            await derive(uow, new, settings_of=settings_of, partitions=partitions)
        await uow.commit()
    return len(new)


async def intervals(
    principal: Principal,
    *,
    user_id: UserId | None,
    start: datetime,
    end: datetime,
    uow_factory: UnitOfWorkFactory,
) -> Sequence[tuple[UserId, Interval]]:
    """Merged intervals overlapping [start, end): one's own, or (managers and up) anyone's in
    the organization. Asking for someone one may not see answers nothing, as for a stranger."""
    subject = user_id if user_id is not None else principal.user_id
    if not can_view(principal, subject):
        raise UserNotFound()
    async with uow_factory(readonly=True) as uow:
        if subject != principal.user_id and not await uow.users.get(
            principal.organization_id, subject
        ):
            raise UserNotFound()
        return await uow.usage.between(principal.organization_id, subject, start, end)
