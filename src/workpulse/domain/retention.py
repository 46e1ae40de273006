"""How long each class of data is kept. None keeps it forever.

Example: with `raw_pings_days=180`, `cutoffs(now)["raw_pings"]` is `now - 180 days`: pings that
started before it go. On PostgreSQL data goes a whole month partition at a time, once the whole
month is older than the cutoff (so up to a month later than the setting); on SQLite row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workpulse.domain.errors import InvalidSetting

# Late pings are accepted up to 90 days back (the largest ping horizon an organization may set)
# and a span reaches a day further back; re-derivation must still find its neighbours.
MIN_RAW_PINGS_DAYS = 92


class DataClass(StrEnum):
    RAW_PINGS = "raw_pings"  # the pings table: the source intervals are derived from
    TITLES = "titles"  # window titles kept in raw pings (personal data: dropped earliest)
    INTERVALS = "intervals"  # app_usage
    ROLLUPS = "rollups"  # usage_hourly


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_pings_days: int | None = 180
    titles_days: int | None = 30
    intervals_days: int | None = 730
    rollups_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("raw_pings_days", "titles_days", "intervals_days", "rollups_days"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidSetting(f"{name} must be at least 1 day, or unset to keep forever")
        if self.raw_pings_days is not None and self.raw_pings_days < MIN_RAW_PINGS_DAYS:
            raise InvalidSetting(
                f"raw_pings_days must be at least {MIN_RAW_PINGS_DAYS}: late pings up to 90 days "
                "old re-derive intervals from their stored neighbours"
            )

    def cutoffs(self, now: datetime) -> dict[DataClass, datetime]:
        """The instant before which each class goes; classes kept forever are absent."""
        days = {
            DataClass.RAW_PINGS: self.raw_pings_days,
            DataClass.TITLES: self.titles_days,
            DataClass.INTERVALS: self.intervals_days,
            DataClass.ROLLUPS: self.rollups_days,
        }
        return {kind: now - timedelta(days=n) for kind, n in days.items() if n is not None}
