"""The merge rule: the pings of a device become sorted, non-overlapping intervals.

1. Every ping claims a segment. A span claims [start, end). A point sample at t claims
   [t, t + pulse), cut at the next later start among all the device's pings (point or span).
2. Where claims overlap, each instant belongs to the covering claim that started last. Equal
   starts: the longer claim wins (a point's claim is t + pulse, before any cut), then active
   over idle, then the greater (app_name, domain). An earlier, longer span resumes when a later,
   shorter one ends: overlaps decide whose time it is, never whether it is counted.
3. Consecutive pieces with the same (app_name, domain, idle) join when the empty gap between
   them is at most join_gap, and the gap counts. Idle pieces make idle intervals.

Example (pulse 10 s, join gap 30 s): Editor at 09:00:00, 09:00:10 and 09:00:50, Browser at
09:01:05 → Editor [09:00:00, 09:01:00) (the 30 s gap is joined), Browser [09:01:05, 09:01:15).

The result is a function of the set of pings only: order, batches and duplicates do not change
it. docs/duration-spec.md gives the reasons and the golden vectors.

Late pings need not re-derive a device's whole history: see `affected_window`.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TypeVar

from workpulse.domain.pings import Ping

V = TypeVar("V")
Key = tuple[str, str | None, bool]  # (app_name, domain, idle): pieces join only on equal keys


@dataclass(frozen=True, slots=True)
class Interval:
    """Time of one device in one app (and domain), from `start` (included) to `end` (excluded)."""

    device_id: str
    app_name: str
    domain: str | None
    idle: bool
    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def _order(interval: Interval) -> tuple[datetime, str, datetime]:
    return (interval.start, interval.device_id, interval.end)


def claimed_end(ping: Ping, pulse: timedelta) -> datetime:
    """Where a ping's claim ends before any cut: `end` for a span, `start + pulse` for a point."""
    return ping.end if ping.end is not None else ping.start + pulse


def merge(pings: Iterable[Ping], *, pulse: timedelta, join_gap: timedelta) -> tuple[Interval, ...]:
    """The intervals of the given pings, each device on its own, sorted by (start, device_id).

    Only device, app, domain, idle and the instants are read: pings that differ only in url,
    title or event id are the same observation.
    """
    _check_durations(pulse, join_gap)
    claims: dict[str, set[tuple[datetime, datetime | None, str, str | None, bool]]] = {}
    for ping in pings:
        claims.setdefault(ping.device_id, set()).add(
            (ping.start, ping.end, ping.app_name, ping.domain, ping.idle)
        )
    result = [
        interval
        for device_id, device_claims in claims.items()
        for interval in _merge_device(device_id, device_claims, pulse, join_gap)
    ]
    return tuple(sorted(result, key=_order))


def _merge_device(
    device_id: str,
    claims: set[tuple[datetime, datetime | None, str, str | None, bool]],
    pulse: timedelta,
    join_gap: timedelta,
) -> list[Interval]:
    starts = sorted({claim[0] for claim in claims})
    ranked = []
    for start, end, app_name, domain, idle in claims:
        claimed = end if end is not None else start + pulse
        cut = claimed
        if end is None:
            later = bisect_right(starts, start)
            if later < len(starts):
                cut = min(cut, starts[later])
        # The rank depends on the ping alone (never on the cut), so that a winner does not
        # change when a neighbour outside a re-derivation window is missing.
        rank = (start, claimed, not idle, app_name, domain is not None, domain or "", cut)
        ranked.append((rank, (start, cut, (app_name, domain, idle))))
    ranked.sort(key=lambda item: item[0])
    pieces = _sweep([segment for _, segment in ranked])

    intervals: list[Interval] = []
    for start, end, (app_name, domain, idle) in pieces:
        last = intervals[-1] if intervals else None
        if (
            last is not None
            and (last.app_name, last.domain, last.idle) == (app_name, domain, idle)
            and start - last.end <= join_gap
        ):
            intervals[-1] = Interval(device_id, app_name, domain, idle, last.start, end)
        else:
            intervals.append(Interval(device_id, app_name, domain, idle, start, end))
    return intervals


def _sweep(segments: Sequence[tuple[datetime, datetime, V]]) -> list[tuple[datetime, datetime, V]]:
    """Who owns each instant: `segments` are in increasing priority; the result is sorted,
    non-overlapping, and touching pieces with equal values are joined. O(n log n)."""
    by_start = sorted(range(len(segments)), key=lambda index: segments[index][0])
    boundaries = sorted({s[0] for s in segments} | {s[1] for s in segments})
    heap: list[int] = []  # negated indexes: the top is the highest priority
    pieces: list[tuple[datetime, datetime, V]] = []
    pending = 0
    for left, right in pairwise(boundaries):
        while pending < len(by_start) and segments[by_start[pending]][0] <= left:
            heapq.heappush(heap, -by_start[pending])
            pending += 1
        while heap and segments[-heap[0]][1] <= left:
            heapq.heappop(heap)
        if not heap:
            continue
        value = segments[-heap[0]][2]
        if pieces and pieces[-1][1] == left and pieces[-1][2] == value:
            pieces[-1] = (pieces[-1][0], right, value)
        else:
            pieces.append((left, right, value))
    return pieces


def split_at(intervals: Iterable[Interval], bounds: Iterable[datetime]) -> tuple[Interval, ...]:
    """Cut every interval at each bound strictly inside it (month partitions, local days)."""
    cuts = sorted(set(bounds))
    result: list[Interval] = []
    for interval in intervals:
        start = interval.start
        first = bisect_right(cuts, interval.start)
        last = bisect_left(cuts, interval.end)
        for bound in cuts[first:last]:
            result.append(_with_span(interval, start, bound))
            start = bound
        result.append(_with_span(interval, start, interval.end))
    return tuple(sorted(result, key=_order))


# --- Re-deriving a window after late pings --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """The instants from `start` to `end`, both included."""

    start: datetime
    end: datetime

    def touches(self, interval: Interval) -> bool:
        return interval.end >= self.start and interval.start <= self.end


@dataclass(frozen=True, slots=True)
class Rederivation:
    """What a worker loads and replaces so that re-deriving a window equals a full merge.

    Replace: every stored interval of the device that overlaps [replace_start, replace_end).
    Load: every stored ping of the device with `needs(ping)`, that is
    `start <= load_end AND (start >= load_start OR (end IS NOT NULL AND end >= spans_reaching))`;
    as every span lasts at most MAX_SPAN, `start >= spans_reaching - MAX_SPAN` may be added to
    the second branch so that an index on start serves the query.
    """

    replace_start: datetime
    replace_end: datetime
    load_start: datetime
    load_end: datetime
    spans_reaching: datetime

    def replaces(self, interval: Interval) -> bool:
        return interval.start < self.replace_end and interval.end > self.replace_start

    def needs(self, ping: Ping) -> bool:
        if ping.start > self.load_end:
            return False
        return ping.start >= self.load_start or (
            ping.end is not None and ping.end >= self.spans_reaching
        )


def affected_window(new_pings: Iterable[Ping], *, pulse: timedelta, join_gap: timedelta) -> Window:
    """The instants whose interval may change when `new_pings` (one device) join the stored ones.

    A ping changes who owns [start, max(claimed end, start + pulse)) only (its own claim, and
    the cut of earlier points), and a join decision changes only for a gap within join_gap of
    that; so the window is [earliest start - join_gap, latest such end + join_gap].

    The worker, holding a device lock, then:
    1. loads the stored intervals that touch the window (end >= start, start <= end);
    2. `plan = plan_rederivation(window, those, pulse=, join_gap=)`;
    3. loads the stored pings for which `plan.needs(ping)` (the new ones included);
    4. `fresh = rederive(pings, plan, pulse=, join_gap=, bounds=partition bounds)`;
    5. deletes the stored intervals for which `plan.replaces(interval)` and inserts `fresh`.
    If the stored intervals were `split_at(merge(old pings), bounds)`, they are now
    `split_at(merge(old and new pings), bounds)`: see `splice` and the property test.
    """
    _check_durations(pulse, join_gap)
    pings = list(new_pings)
    if not pings or len({ping.device_id for ping in pings}) != 1:
        raise ValueError("affected_window needs the new pings of exactly one device")
    earliest = min(ping.start for ping in pings)
    latest = max(max(claimed_end(ping, pulse), ping.start + pulse) for ping in pings)
    return Window(earliest - join_gap, latest + join_gap)


def plan_rederivation(
    window: Window, stored: Iterable[Interval], *, pulse: timedelta, join_gap: timedelta
) -> Rederivation:
    """Widen `window` to the stored intervals that touch it: their ends are cuts that stay.

    Every interval of the new result that touches the window lies inside
    [replace_start, replace_end], and both bounds are cuts of the old and the new result, so
    the intervals outside are unchanged. Owners inside it depend on pings that claim time from
    replace_start - join_gap (a join looks that far back) up to replace_end + join_gap, and on
    every start after a point that could be cut: hence the load bounds.
    """
    touching = [interval for interval in stored if window.touches(interval)]
    start = min([window.start, *(interval.start for interval in touching)])
    end = max([window.end, *(interval.end for interval in touching)])
    return Rederivation(
        replace_start=start,
        replace_end=end,
        load_start=start - join_gap - pulse,
        load_end=end + join_gap,
        spans_reaching=start - join_gap,
    )


def rederive(
    pings: Iterable[Ping],
    plan: Rederivation,
    *,
    pulse: timedelta,
    join_gap: timedelta,
    bounds: Iterable[datetime] = (),
) -> tuple[Interval, ...]:
    """The intervals that replace the stored ones overlapping the plan's replace range.

    `pings` are at least those the plan `needs` (more of the device's pings do no harm).
    """
    merged = split_at(merge(pings, pulse=pulse, join_gap=join_gap), bounds)
    clipped = []
    for interval in merged:
        start = max(interval.start, plan.replace_start)
        end = min(interval.end, plan.replace_end)
        if start < end:
            clipped.append(_with_span(interval, start, end))
    return tuple(clipped)


def splice(
    stored: Iterable[Interval], plan: Rederivation, fresh: Iterable[Interval]
) -> tuple[Interval, ...]:
    """What the store holds after step 5 of `affected_window`, for one device."""
    kept = [interval for interval in stored if not plan.replaces(interval)]
    return tuple(sorted([*kept, *fresh], key=_order))


# --- Several devices at one moment ------------------------------------------------------------


def flatten_devices(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """One user's intervals from several devices, with every instant counted once.

    At each instant the covering interval that is active wins over an idle one, then the one
    that started last, then the smallest device_id. Each result is a part of one input interval
    (a part before and a part after an interruption are two results).
    """
    sources = sorted(set(intervals), key=_order)
    devices = sorted({interval.device_id for interval in sources})
    device_rank = {device_id: -index for index, device_id in enumerate(devices)}
    ranked = sorted(
        range(len(sources)),
        key=lambda i: (
            not sources[i].idle,
            sources[i].start,
            device_rank[sources[i].device_id],
            i,
        ),
    )
    pieces = _sweep([(sources[i].start, sources[i].end, i) for i in ranked])
    return tuple(_with_span(sources[index], start, end) for start, end, index in pieces)


def _with_span(interval: Interval, start: datetime, end: datetime) -> Interval:
    return Interval(
        interval.device_id, interval.app_name, interval.domain, interval.idle, start, end
    )


def _check_durations(pulse: timedelta, join_gap: timedelta) -> None:
    if pulse <= timedelta(0) or join_gap < timedelta(0):
        raise ValueError("pulse must be positive and join_gap not negative")
