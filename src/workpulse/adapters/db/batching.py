"""Batched reads for many devices or users: those whose time ranges lie close together share one
query (their organizations and users as IN lists), and the caller keeps, per key, the rows that
are its own. A late ping hours back then gets a query of its own rather than widening everyone's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from workpulse.adapters.db.tenancy import tenant
from workpulse.services.ports import DeviceKey, UserKey

K = TypeVar("K")

# Ranges at most this far apart share a query.
_CLUSTER_GAP = timedelta(minutes=10)
_CLUSTER_SPAN = timedelta(hours=2)


def clusters(
    ranges: Mapping[K, tuple[datetime, datetime]],
) -> list[tuple[list[K], datetime, datetime]]:
    """Keys grouped by nearness of their [low, high] ranges, with each group's overall range."""
    ordered = sorted(ranges.items(), key=lambda item: item[1][0])
    groups: list[tuple[list[K], datetime, datetime]] = []
    for key, (low, high) in ordered:
        if groups:
            keys, first, last = groups[-1]
            if low <= last + _CLUSTER_GAP and max(last, high) - first <= _CLUSTER_SPAN:
                keys.append(key)
                groups[-1] = (keys, first, max(last, high))
                continue
        groups.append(([key], low, high))
    return groups


def owners(keys: Sequence[DeviceKey] | Sequence[UserKey]) -> dict[str, list[Any]]:
    """The IN lists of a group: its organizations (each checked) and users."""
    return {
        "orgs": sorted({tenant(k.organization_id, "batched query") for k in keys}),
        "users": sorted({k.user_id for k in keys}),
    }
