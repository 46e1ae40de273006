"""Grouping of keys for shared reads (adapters/db/batching.py): live windows share one query, a
long range does not make every key read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workpulse.adapters.db.batching import clusters

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_windows_in_the_same_minute_share_one_query() -> None:
    ranges = {
        n: (NOW + timedelta(seconds=n % 7), NOW + timedelta(seconds=60 + n % 5)) for n in range(64)
    }
    assert [sorted(keys) for keys, _, _ in clusters(ranges)] == [list(range(64))]


def test_a_range_hours_long_is_read_by_at_most_one_other_key() -> None:
    ranges = {n: (NOW, NOW + timedelta(seconds=60)) for n in range(64)}
    ranges[99] = (NOW - timedelta(hours=3), NOW + timedelta(seconds=30))
    groups = clusters(ranges)
    with_long = next(keys for keys, _, _ in groups if 99 in keys)
    assert len(with_long) <= 2
    assert sorted(k for keys, _, _ in groups for k in keys) == sorted(ranges)


@given(st.lists(st.tuples(st.integers(0, 86_400), st.integers(0, 20_000)), min_size=1, max_size=80))
def test_every_key_once_and_no_group_reads_more_than_twice_its_own(
    spans: list[tuple[int, int]],
) -> None:
    ranges = {
        n: (NOW + timedelta(seconds=start), NOW + timedelta(seconds=start + length))
        for n, (start, length) in enumerate(spans)
    }
    groups = clusters(ranges)
    assert sorted(k for keys, _, _ in groups for k in keys) == sorted(ranges)
    for keys, low, high in groups:
        assert low == min(ranges[k][0] for k in keys)
        assert high == max(ranges[k][1] for k in keys)
        own = sum((ranges[k][1] - ranges[k][0] for k in keys), timedelta())
        assert (high - low) * len(keys) <= 2 * own + timedelta(minutes=2) * len(keys)
