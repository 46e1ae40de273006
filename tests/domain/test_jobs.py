"""The scheduling rules: scheduled times, backoff, which local days are due, idle episodes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workpulse.domain.alerts import SessionActivity, idle_episode, overtime_passed
from workpulse.domain.ids import UserId, WorkSessionId
from workpulse.domain.jobs import MAX_ATTEMPTS, Outcome, Schedule, after_failure, backoff
from workpulse.domain.reports import local_day
from workpulse.domain.summaries import days_due, days_of_hour, today

# hypothesis takes naive bounds and attaches the zone itself.
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
periods = st.integers(min_value=1, max_value=86_400).map(lambda s: timedelta(seconds=s))
ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("SystemV"))


@given(moments, periods, periods)
def test_the_latest_scheduled_time_is_at_or_before_now_and_within_one_period(
    now: datetime, every: timedelta, offset: timedelta
) -> None:
    schedule = Schedule(every, offset)
    latest = schedule.latest(now)
    assert latest <= now < latest + every
    assert schedule.latest(latest) == latest
    assert schedule.next_after(latest) == latest + every
    assert (latest - datetime(1970, 1, 1, tzinfo=UTC) - offset) % every == timedelta(0)


def test_a_schedule_needs_a_positive_period() -> None:
    with pytest.raises(ValueError, match="positive"):
        Schedule(timedelta(0))


def test_failures_wait_longer_each_time_and_the_third_is_final() -> None:
    assert [backoff(n) for n in (1, 2)] == [timedelta(seconds=10), timedelta(seconds=40)]
    assert [after_failure(n) for n in range(1, MAX_ATTEMPTS + 1)] == [
        Outcome.RETRYING,
        Outcome.RETRYING,
        Outcome.FAILED,
    ]


@given(
    st.sampled_from(ZONES),
    moments,
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=60).map(lambda d: timedelta(days=d)),
)
def test_due_days_are_consecutive_ended_and_follow_the_latest_summary(
    zone_name: str, now: datetime, back: int, age: timedelta
) -> None:
    zone = ZoneInfo(zone_name)
    current = today(now, zone)
    latest = current - timedelta(days=back) if back else None
    due = days_due(latest, now=now, zone=zone, since=now - age)
    for day in due:
        assert local_day(day, zone)[1] <= now, "only ended days"
    if due:
        assert due == [due[0] + timedelta(days=k) for k in range(len(due))], "consecutive"
        assert due[-1] == current - timedelta(days=1)
        if latest is not None:
            assert due[0] > latest
    elif latest is not None and latest < current - timedelta(days=1):
        assert (now - age).astimezone(zone).date() >= current, "only a user created today"


def test_the_day_before_a_dst_change_is_due_at_its_real_midnight() -> None:
    zone = ZoneInfo("America/New_York")
    since = datetime(2026, 3, 1, tzinfo=UTC)
    end_of_short_day = datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # 23 hours after 05:00 UTC
    latest = date(2026, 3, 7)
    just_before = end_of_short_day - timedelta(microseconds=1)
    assert days_due(latest, now=just_before, zone=zone, since=since) == []
    assert days_due(latest, now=end_of_short_day, zone=zone, since=since) == [date(2026, 3, 8)]


def test_an_hour_can_touch_two_local_days() -> None:
    kathmandu = ZoneInfo("Asia/Kathmandu")  # +05:45: local midnight is 18:15 UTC
    assert days_of_hour(datetime(2026, 1, 1, 18, tzinfo=UTC), kathmandu) == {
        date(2026, 1, 1),
        date(2026, 1, 2),
    }
    assert days_of_hour(datetime(2026, 1, 1, 19, tzinfo=UTC), kathmandu) == {date(2026, 1, 2)}


def _session(start: datetime, last_active: datetime | None) -> SessionActivity:
    return SessionActivity(WorkSessionId(uuid.uuid4()), UserId(uuid.uuid4()), start, last_active)


@given(
    st.integers(min_value=0, max_value=600),
    st.one_of(st.none(), st.integers(min_value=-30, max_value=600)),
    st.integers(min_value=1, max_value=120),
)
def test_an_idle_episode_starts_at_the_last_active_moment_and_keeps_its_key(
    now_minute: int, active_minute: int | None, idle_minutes: int
) -> None:
    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    now = start + timedelta(minutes=now_minute)
    last = None if active_minute is None else start + timedelta(minutes=active_minute)
    if last is not None and last > now:
        return
    session = _session(start, last)
    episode = idle_episode(session, idle_minutes=idle_minutes, now=now)
    since = max(start, last) if last is not None else start
    assert (episode is not None) == (now - since >= timedelta(minutes=idle_minutes))
    if episode is not None:
        assert episode.since == since
        later = idle_episode(session, idle_minutes=idle_minutes, now=now + timedelta(hours=1))
        assert later is not None
        assert later.key == episode.key, "the same episode, however late it is checked"


def test_overtime_is_strictly_past_the_limit() -> None:
    assert not overtime_passed(9 * 3600, 9)
    assert overtime_passed(9 * 3600 + 1, 9)
    assert overtime_passed(int(7.5 * 3600) + 1, 7.5)
