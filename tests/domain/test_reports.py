"""The report rules as pure functions: local days, hour splits, tallies, durations."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import ProjectId
from workpulse.domain.intervals import Interval
from workpulse.domain.reports import (
    MAX_RANGE_DAYS,
    ProjectSpan,
    days_between,
    duration,
    local_day,
    parse_day,
    seconds,
    split_window,
    tally,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "start", "hours"),
    [
        ("America/New_York", date(2026, 3, 8), "2026-03-08T05:00", 23),
        ("America/New_York", date(2026, 11, 1), "2026-11-01T04:00", 25),
        ("America/New_York", date(2026, 6, 10), "2026-06-10T04:00", 24),
        ("Europe/Berlin", date(2026, 3, 29), "2026-03-28T23:00", 23),
        ("Europe/Berlin", date(2026, 10, 25), "2026-10-24T22:00", 25),
        ("Asia/Kathmandu", date(2026, 6, 10), "2026-06-09T18:15", 24),
        ("UTC", date(2026, 6, 10), "2026-06-10T00:00", 24),
        # Santiago skips 00:00 when DST starts: the day starts at the gap's end (01:00 local).
        ("America/Santiago", date(2026, 9, 6), "2026-09-06T04:00", 23),
    ],
)
def test_a_local_day_runs_midnight_to_midnight(
    zone: str, day: date, start: str, hours: int
) -> None:
    first, last = local_day(day, ZoneInfo(zone))
    assert first == utc(start)
    assert last - first == timedelta(hours=hours)


def test_a_window_splits_into_whole_hours_and_partial_edges() -> None:
    split = split_window(utc("2026-06-09T18:15"), utc("2026-06-10T18:15"))
    assert split.whole == (utc("2026-06-09T19:00"), utc("2026-06-10T18:00"))
    assert split.partial == (
        (utc("2026-06-09T18:15"), utc("2026-06-09T19:00")),
        (utc("2026-06-10T18:00"), utc("2026-06-10T18:15")),
    )
    aligned = split_window(utc("2026-06-10T04:00"), utc("2026-06-11T04:00"))
    assert aligned.partial == ()
    inside = split_window(utc("2026-06-10T04:10"), utc("2026-06-10T04:50"))
    assert inside.whole is None
    assert inside.partial == ((utc("2026-06-10T04:10"), utc("2026-06-10T04:50")),)


def interval(device: str, app: str, start: str, end: str, idle: bool = False) -> Interval:
    return Interval(device, app, None, idle, utc(start), utc(end))


def test_tally_splits_hours_and_attributes_the_latest_session() -> None:
    apollo, zeus = ProjectId(uuid.uuid4()), ProjectId(uuid.uuid4())
    sessions = [
        ProjectSpan(utc("2026-06-10T10:30"), utc("2026-06-10T12:00"), apollo),
        ProjectSpan(utc("2026-06-10T10:45"), None, zeus),  # started later: wins from 10:45
    ]
    rows = tally(
        [interval("a", "Editor", "2026-06-10T10:00", "2026-06-10T11:30")],
        sessions,
        utc("2026-06-10T00:00"),
        utc("2026-06-11T00:00"),
    )
    assert [(r.hour.hour, r.project_id, r.micros // 1_000_000) for r in rows] == sorted(
        [(10, None, 1800), (10, apollo, 900), (10, zeus, 900), (11, zeus, 1800)],
        key=lambda r: (r[0], str(r[1] or "")),
    )


def test_tally_counts_only_inside_the_window() -> None:
    rows = tally(
        [interval("a", "Editor", "2026-06-10T09:00", "2026-06-10T12:00")],
        [],
        utc("2026-06-10T10:00"),
        utc("2026-06-10T11:00"),
    )
    assert [(r.hour.hour, r.micros) for r in rows] == [(10, 3600 * 1_000_000)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 6 * 3600),
            st.integers(1, 3 * 3600),
            st.booleans(),
        ),
        max_size=12,
    ),
    st.integers(0, 3 * 3600),
)
def test_tallies_of_adjacent_windows_add_up_to_the_whole(
    raw: list[tuple[str, int, int, bool]], cut: int
) -> None:
    origin = utc("2026-06-10T00:00")
    intervals = [
        Interval(
            d, "App", None, idle, origin + timedelta(seconds=s), origin + timedelta(seconds=s + n)
        )
        for d, s, n, idle in raw
    ]
    end = origin + timedelta(hours=10)
    middle = origin + timedelta(seconds=cut)
    whole = sum(r.micros for r in tally(intervals, [], origin, end))
    parts = sum(r.micros for r in tally(intervals, [], origin, middle)) + sum(
        r.micros for r in tally(intervals, [], middle, end)
    )
    assert whole == parts


def test_durations_and_rounding() -> None:
    assert duration(0) == "00:00:00"
    assert duration(9000) == "02:30:00"
    assert duration(90000) == "25:00:00"
    assert (seconds(1_499_999), seconds(1_500_000)) == (1, 2)


@pytest.mark.parametrize("text", ["2026-6-1", "20260610", "2026-02-30", "", "2026-06-10T00:00"])
def test_bad_days_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_day(text, "date")


def test_ranges_are_ordered_and_bounded() -> None:
    assert len(days_between(date(2026, 1, 1), date(2026, 1, 31))) == 31
    with pytest.raises(InvalidInput):
        days_between(date(2026, 2, 1), date(2026, 1, 31))
    with pytest.raises(InvalidInput):
        days_between(date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=MAX_RANGE_DAYS))
