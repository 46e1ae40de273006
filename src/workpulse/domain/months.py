"""The UTC calendar of storage: months are PostgreSQL's partitions; stored intervals are split
at every UTC midnight (so at month bounds too).

Example: `month_bounds(2026-01-20, 2026-03-05)` is `[2026-02-01, 2026-03-01]` (UTC midnights);
`day_bounds(2026-01-20 10:00, 2026-01-22 00:00)` is `[2026-01-21 00:00]`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    """The first instant of the month after the one `start` begins."""
    return (
        datetime(start.year + 1, 1, 1, tzinfo=UTC)
        if start.month == 12
        else datetime(start.year, start.month + 1, 1, tzinfo=UTC)
    )


def month_bounds(first: datetime, last: datetime) -> list[datetime]:
    """Month starts strictly inside (first, last): where intervals are split."""
    bounds: list[datetime] = []
    bound = next_month(month_start(first))
    while bound < last:
        bounds.append(bound)
        bound = next_month(bound)
    return bounds


# Stored intervals are also cut at every UTC midnight, so none lasts longer than a day: a query
# for the intervals touching a window can then bound `start_time` from below (sargable), and
# hourly rollups re-read a bounded number of rows.
STORED_INTERVAL_MAX = timedelta(days=1)


def day_bounds(first: datetime, last: datetime) -> list[datetime]:
    """UTC midnights strictly inside (first, last): where stored intervals are split. Month
    starts are among them, so no interval crosses a partition either."""
    bound = first.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    bounds: list[datetime] = []
    bound += STORED_INTERVAL_MAX
    while bound < last:
        bounds.append(bound)
        bound += STORED_INTERVAL_MAX
    return bounds
