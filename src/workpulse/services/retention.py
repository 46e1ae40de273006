"""Retention and partitions ahead: the seams the scheduler's retention job calls.

`apply_retention` removes each data class older than the policy keeps it (domain/retention.py);
`prepare_partitions` creates the next months' partitions before any write needs them, so the
first write of a month does not wait on DDL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workpulse.domain.months import month_start, next_month
from workpulse.domain.retention import DataClass, RetentionPolicy
from workpulse.services.ports import DataLifecycle, PartitionKeeper


async def apply_retention(
    *, lifecycle: DataLifecycle, policy: RetentionPolicy, now: datetime
) -> dict[DataClass, int]:
    """Idempotent: a second run with the same `now` removes nothing more."""
    removed: dict[DataClass, int] = {}
    for kind, before in policy.cutoffs(now).items():
        removed[kind] = await lifecycle.expire(kind, before)
    return removed


async def prepare_partitions(
    partitions: PartitionKeeper, now: datetime, *, months_ahead: int = 2
) -> None:
    month = month_start(now)
    moments = [month]
    for _ in range(months_ahead):
        month = next_month(month)
        moments.append(month)
    # The day before too: a worker may still derive yesterday's late pings into last month.
    await partitions.ensure([*moments, now - timedelta(days=1)])
