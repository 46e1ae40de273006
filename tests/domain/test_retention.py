"""The retention policy: cutoffs per data class, and the bounds that keep re-derivation sound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workpulse.domain.errors import InvalidSetting
from workpulse.domain.retention import MIN_RAW_PINGS_DAYS, DataClass, RetentionPolicy


def test_cutoffs_per_class_and_none_keeps_forever() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    cutoffs = RetentionPolicy(raw_pings_days=100, titles_days=7, intervals_days=365).cutoffs(now)
    assert cutoffs == {
        DataClass.RAW_PINGS: now - timedelta(days=100),
        DataClass.TITLES: now - timedelta(days=7),
        DataClass.INTERVALS: now - timedelta(days=365),
    }


@pytest.mark.parametrize(
    "policy",
    [
        {"raw_pings_days": MIN_RAW_PINGS_DAYS - 1},
        {"titles_days": 0},
        {"intervals_days": -5},
    ],
)
def test_unsafe_policies_are_refused(policy: dict[str, int]) -> None:
    with pytest.raises(InvalidSetting):
        RetentionPolicy(**policy)
