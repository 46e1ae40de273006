from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workpulse.domain.intervals import (
    Interval,
    affected_window,
    flatten_devices,
    merge,
    plan_rederivation,
    rederive,
    splice,
    split_at,
)
from workpulse.domain.pings import Ping

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))
BASE = datetime(2024, 3, 4, 9, tzinfo=UTC)
FAST = settings(max_examples=200, deadline=None)


def at(seconds: int) -> datetime:
    return BASE + timedelta(seconds=seconds)


def ping(
    start: int,
    app: str = "A",
    *,
    end: int | None = None,
    device: str = "laptop",
    idle: bool = False,
    domain: str | None = None,
) -> Ping:
    return Ping(
        device_id=device,
        app_name=app,
        url=None,
        domain=domain,
        title=None,
        idle=idle,
        start=at(start),
        end=None if end is None else at(end),
        event_id=f"{device}-{start}-{app}",
    )


def interval(start: int, end: int, app: str = "A", *, device: str = "laptop") -> Interval:
    return Interval(device, app, None, False, at(start), at(end))


def apply_batch(
    stored_pings: list[Ping],
    stored: Sequence[Interval],
    batch: Sequence[Ping],
    *,
    pulse: timedelta,
    join_gap: timedelta,
    bounds: Sequence[datetime] = (),
) -> tuple[Interval, ...]:
    """What the worker does for one device after `batch` is stored (affected_window's steps)."""
    all_pings = [*stored_pings, *batch]
    window = affected_window(batch, pulse=pulse, join_gap=join_gap)
    touching = [i for i in stored if window.touches(i)]
    plan = plan_rederivation(window, touching, pulse=pulse, join_gap=join_gap)
    loaded = [p for p in all_pings if plan.needs(p)]
    fresh = rederive(loaded, plan, pulse=pulse, join_gap=join_gap, bounds=bounds)
    return splice(stored, plan, fresh)


def replay(
    batches: Iterable[Sequence[Ping]],
    *,
    pulse: timedelta,
    join_gap: timedelta,
    bounds: Sequence[datetime] = (),
) -> tuple[Interval, ...]:
    """Feed batches one at a time, device by device, as the worker would."""
    stored_pings: list[Ping] = []
    stored: tuple[Interval, ...] = ()
    for batch in batches:
        for device in sorted({p.device_id for p in batch}):
            own = [i for i in stored if i.device_id == device]
            others = [i for i in stored if i.device_id != device]
            device_batch = [p for p in batch if p.device_id == device]
            device_pings = [p for p in stored_pings if p.device_id == device]
            updated = apply_batch(
                device_pings, own, device_batch, pulse=pulse, join_gap=join_gap, bounds=bounds
            )
            stored = tuple(sorted([*others, *updated], key=lambda i: (i.start, i.device_id)))
        stored_pings.extend(batch)
    return stored


# --- Golden vectors ----------------------------------------------------------------------------


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _ping_from(raw: dict[str, Any], name: str) -> Ping:
    start = datetime.fromisoformat(raw["start"])
    return Ping(
        device_id=raw["device_id"],
        app_name=raw["app_name"],
        url=raw.get("url"),
        domain=raw["domain"],
        title=raw.get("title"),
        idle=raw["idle"],
        start=start,
        end=_instant(raw["end"]),
        event_id=raw.get("event_id", f"{name}-{raw['start']}-{raw['app_name']}"),
    )


def _interval_from(raw: dict[str, Any]) -> Interval:
    return Interval(
        device_id=raw["device_id"],
        app_name=raw["app_name"],
        domain=raw["domain"],
        idle=raw["idle"],
        start=datetime.fromisoformat(raw["start"]),
        end=datetime.fromisoformat(raw["end"]),
    )


def _load(path: Path) -> tuple[list[list[Ping]], tuple[Interval, ...], timedelta, timedelta]:
    vector = json.loads(path.read_text(encoding="utf-8"))
    batches = [[_ping_from(raw, vector["name"]) for raw in batch] for batch in vector["batches"]]
    expected = tuple(_interval_from(raw) for raw in vector["intervals"])
    pulse = timedelta(seconds=vector["pulse_seconds"])
    join_gap = timedelta(seconds=vector["join_gap_seconds"])
    return batches, expected, pulse, join_gap


def test_there_are_golden_vectors_for_every_case_the_spec_names() -> None:
    assert len(GOLDEN) >= 12


@pytest.mark.parametrize("path", GOLDEN, ids=[path.stem for path in GOLDEN])
def test_a_golden_vector_merges_to_its_intervals_in_any_order(path: Path) -> None:
    batches, expected, pulse, join_gap = _load(path)
    pings = [p for batch in batches for p in batch]
    assert merge(pings, pulse=pulse, join_gap=join_gap) == expected
    assert merge(reversed(pings), pulse=pulse, join_gap=join_gap) == expected


@pytest.mark.parametrize("path", GOLDEN, ids=[path.stem for path in GOLDEN])
def test_a_golden_vector_arriving_batch_by_batch_ends_with_its_intervals(path: Path) -> None:
    batches, expected, pulse, join_gap = _load(path)
    assert replay(batches, pulse=pulse, join_gap=join_gap) == expected


# --- Properties ---------------------------------------------------------------------------------

durations = st.tuples(st.integers(1, 8), st.integers(0, 12)).map(
    lambda pair: (timedelta(seconds=pair[0]), timedelta(seconds=pair[1]))
)


@st.composite
def pings(draw: st.DrawFn, devices: Sequence[str] = ("laptop",)) -> Ping:
    start = draw(st.integers(0, 120))
    length = draw(st.none() | st.integers(1, 40))
    return ping(
        start,
        draw(st.sampled_from("AB")),
        end=None if length is None else start + length,
        device=draw(st.sampled_from(devices)),
        idle=draw(st.booleans()),
        domain=draw(st.sampled_from([None, "x.com"])),
    )


several = st.lists(pings(("laptop", "phone")), max_size=16)
one_device = st.lists(pings(), max_size=14)
bound_lists = st.lists(st.integers(0, 150).map(at), max_size=3)


@FAST
@given(pings=several, durations=durations, seed=st.randoms(use_true_random=False))
def test_the_order_of_the_pings_does_not_change_the_intervals(
    pings: list[Ping], durations: tuple[timedelta, timedelta], seed: random.Random
) -> None:
    pulse, join_gap = durations
    shuffled = list(pings)
    seed.shuffle(shuffled)
    assert merge(shuffled, pulse=pulse, join_gap=join_gap) == merge(
        pings, pulse=pulse, join_gap=join_gap
    )


@FAST
@given(pings=several, durations=durations, data=st.data())
def test_duplicates_change_nothing(
    pings: list[Ping], durations: tuple[timedelta, timedelta], data: st.DataObject
) -> None:
    pulse, join_gap = durations
    again = data.draw(st.lists(st.sampled_from(pings), max_size=6)) if pings else []
    assert merge([*pings, *again], pulse=pulse, join_gap=join_gap) == merge(
        pings, pulse=pulse, join_gap=join_gap
    )


@FAST
@given(pings=several, durations=durations)
def test_intervals_are_sorted_positive_and_never_overlap_on_one_device(
    pings: list[Ping], durations: tuple[timedelta, timedelta]
) -> None:
    pulse, join_gap = durations
    result = merge(pings, pulse=pulse, join_gap=join_gap)
    assert list(result) == sorted(result, key=lambda i: (i.start, i.device_id))
    assert all(i.end > i.start for i in result)
    for device in {p.device_id for p in pings}:
        own = [i for i in result if i.device_id == device]
        assert all(left.end <= right.start for left, right in pairwise(own))


@FAST
@given(pings=one_device, durations=durations)
def test_total_time_never_exceeds_the_span_the_pings_cover(
    pings: list[Ping], durations: tuple[timedelta, timedelta]
) -> None:
    pulse, join_gap = durations
    result = merge(pings, pulse=pulse, join_gap=join_gap)
    if not pings:
        assert result == ()
        return
    earliest = min(p.start for p in pings)
    latest = max(p.end or p.start for p in pings) + pulse
    assert sum((i.duration for i in result), timedelta()) <= latest - earliest


@FAST
@given(pings=several, durations=durations)
def test_every_ping_start_lies_in_an_interval_of_its_device(
    pings: list[Ping], durations: tuple[timedelta, timedelta]
) -> None:
    pulse, join_gap = durations
    result = merge(pings, pulse=pulse, join_gap=join_gap)
    for p in pings:
        assert any(i.device_id == p.device_id and i.start <= p.start < i.end for i in result)


@settings(max_examples=600, deadline=None)
@given(
    old=one_device,
    new=st.lists(pings(), min_size=1, max_size=3),
    durations=durations,
    bounds=bound_lists,
)
@example(  # who wins an instant never depends on where another claim is cut
    old=[ping(5, "B"), ping(9, "B", end=12), ping(9, idle=True, domain="x.com")],
    new=[ping(12, "B")],
    durations=(timedelta(seconds=7), timedelta(0)),
    bounds=[],
)
@example(  # a point before a partition bound whose pulse crosses it must be loaded
    old=[ping(44)],
    new=[ping(55, "B")],
    durations=(timedelta(seconds=8), timedelta(seconds=4)),
    bounds=[at(50)],
)
@example(  # a ping up to join_gap after the replaced range decides a join inside it
    old=[ping(3, "B", end=29), ping(101, end=118), ping(38, "B")],
    new=[ping(1)],
    durations=(timedelta(seconds=4), timedelta(seconds=10)),
    bounds=[at(33)],
)
@example(  # a span ending up to join_gap before the replaced range decides a join inside it
    old=[ping(110), ping(6, end=33), ping(35)],
    new=[ping(49)],
    durations=(timedelta(seconds=5), timedelta(seconds=9)),
    bounds=[at(34)],
)
def test_rederiving_the_affected_window_equals_a_full_merge(
    old: list[Ping],
    new: list[Ping],
    durations: tuple[timedelta, timedelta],
    bounds: list[datetime],
) -> None:
    pulse, join_gap = durations
    stored = split_at(merge(old, pulse=pulse, join_gap=join_gap), bounds)
    updated = apply_batch(old, stored, new, pulse=pulse, join_gap=join_gap, bounds=bounds)
    assert updated == split_at(merge([*old, *new], pulse=pulse, join_gap=join_gap), bounds)


@settings(max_examples=300, deadline=None)
@given(
    kept=one_device,
    removed=st.lists(pings(), min_size=1, max_size=3),
    durations=durations,
    bounds=bound_lists,
)
def test_removing_pings_rederives_the_same_window_as_adding_them(
    kept: list[Ping],
    removed: list[Ping],
    durations: tuple[timedelta, timedelta],
    bounds: list[datetime],
) -> None:
    pulse, join_gap = durations
    removed = [p for p in removed if p not in kept]
    if not removed:
        return
    stored = split_at(merge([*kept, *removed], pulse=pulse, join_gap=join_gap), bounds)
    window = affected_window(removed, pulse=pulse, join_gap=join_gap)
    plan = plan_rederivation(window, stored, pulse=pulse, join_gap=join_gap)
    fresh = rederive(
        [p for p in kept if plan.needs(p)], plan, pulse=pulse, join_gap=join_gap, bounds=bounds
    )
    assert splice(stored, plan, fresh) == split_at(
        merge(kept, pulse=pulse, join_gap=join_gap), bounds
    )


@settings(max_examples=150, deadline=None)
@given(pings=several, durations=durations, data=st.data())
def test_any_split_into_batches_applied_one_at_a_time_gives_the_full_merge(
    pings: list[Ping], durations: tuple[timedelta, timedelta], data: st.DataObject
) -> None:
    pulse, join_gap = durations
    labels = data.draw(st.lists(st.integers(0, 3), min_size=len(pings), max_size=len(pings)))
    batches = [[p for p, label in zip(pings, labels, strict=True) if label == b] for b in range(4)]
    batches = [batch for batch in batches if batch]
    assert replay(batches, pulse=pulse, join_gap=join_gap) == merge(
        pings, pulse=pulse, join_gap=join_gap
    )


# --- Details -----------------------------------------------------------------------------------


def test_merge_refuses_a_pulse_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="pulse"):
        merge([ping(0)], pulse=timedelta(0), join_gap=timedelta(seconds=30))


def test_the_affected_window_is_for_the_pings_of_one_device() -> None:
    with pytest.raises(ValueError, match="one device"):
        affected_window(
            [ping(0), ping(0, device="phone")],
            pulse=timedelta(seconds=10),
            join_gap=timedelta(seconds=30),
        )


def test_the_affected_window_reaches_a_join_gap_beyond_the_new_claims() -> None:
    window = affected_window(
        [ping(100), ping(40, end=45)], pulse=timedelta(seconds=10), join_gap=timedelta(seconds=30)
    )
    assert (window.start, window.end) == (at(10), at(140))


def test_split_at_cuts_only_at_bounds_strictly_inside_an_interval() -> None:
    pieces = split_at([interval(0, 100)], [at(0), at(30), at(60), at(100), at(200)])
    assert pieces == (interval(0, 30), interval(30, 60), interval(60, 100))


def test_a_late_ping_splits_the_interval_it_lands_in() -> None:
    pulse, join_gap = timedelta(seconds=10), timedelta(seconds=30)
    old = [ping(s) for s in range(0, 60, 10)]
    stored = merge(old, pulse=pulse, join_gap=join_gap)
    assert stored == (interval(0, 60),)
    updated = apply_batch(old, stored, [ping(25, "B")], pulse=pulse, join_gap=join_gap)
    assert updated == (interval(0, 25), interval(25, 30, "B"), interval(30, 60))


def test_several_devices_count_each_moment_once_with_active_before_idle() -> None:
    laptop = Interval("laptop", "Editor", None, True, at(0), at(60))
    phone = Interval("phone", "Slack", None, False, at(10), at(20))
    assert flatten_devices([laptop, phone]) == (
        Interval("laptop", "Editor", None, True, at(0), at(10)),
        phone,
        Interval("laptop", "Editor", None, True, at(20), at(60)),
    )


def test_between_active_devices_the_interval_that_started_last_wins() -> None:
    laptop = interval(0, 60, "Editor")
    phone = interval(30, 90, "Slack", device="phone")
    assert flatten_devices([phone, laptop]) == (interval(0, 30, "Editor"), phone)


def test_equal_starts_on_two_devices_go_to_the_smaller_device_id() -> None:
    laptop = interval(0, 60, "Editor")
    phone = interval(0, 90, "Slack", device="phone")
    assert flatten_devices([phone, laptop]) == (laptop, interval(60, 90, "Slack", device="phone"))


@FAST
@given(pings=several, durations=durations)
def test_flattened_devices_cover_every_moment_once(
    pings: list[Ping], durations: tuple[timedelta, timedelta]
) -> None:
    pulse, join_gap = durations
    merged = merge(pings, pulse=pulse, join_gap=join_gap)
    flat = flatten_devices(merged)
    assert all(left.end <= right.start for left, right in pairwise(flat))
    moments = {i.start for i in merged} | {i.end for i in merged}
    for moment in moments:
        covered = any(i.start <= moment < i.end for i in merged)
        assert covered == any(i.start <= moment < i.end for i in flat)
    assert sum((i.duration for i in flat), timedelta()) == _union_length(merged)


def _union_length(intervals: Iterable[Interval]) -> timedelta:
    total, reached = timedelta(), None
    for i in sorted(intervals, key=lambda i: i.start):
        start = i.start if reached is None else max(i.start, reached)
        if i.end > start:
            total += i.end - start
        reached = i.end if reached is None else max(reached, i.end)
    return total
