"""Calendar months in UTC: the unit of PostgreSQL partitions, at whose bounds intervals are split.

Example: `month_bounds(2026-01-20, 2026-03-05)` is `[2026-02-01, 2026-03-01]` (UTC midnights).
"""

from __future__ import annotations

from datetime import UTC, datetime


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
