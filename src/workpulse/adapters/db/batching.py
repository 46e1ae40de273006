"""Batched reads for many devices or users: those whose time ranges lie close together share one
query (their organizations and users as IN lists), and the caller keeps, per key, the rows that
are its own. A late ping hours back then gets a query of its own rather than widening everyone's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from workpulse.adapters.db.tenancy import tenant
from workpulse.services.ports import DeviceKey, UserKey

K = TypeVar("K")

# A shared query reads the group's whole range for every key in it: keys join a group only while
# that stays within twice what they would read alone, plus this much per key.
_SLACK_PER_KEY = timedelta(minutes=2)


def clusters(
    ranges: Mapping[K, tuple[datetime, datetime]],
) -> list[tuple[list[K], datetime, datetime]]:
    """Keys grouped by nearness of their [low, high] ranges, with each group's overall range.

    Live traffic puts every device's window in the same minute: one group. A device whose range
    is hours long (a late ping, or a long interval it extends) would make every key in its
    group read those hours, so it joins none that would read more than twice their own."""
    ordered = sorted(ranges.items(), key=lambda item: item[1][0])
    groups: list[tuple[list[K], datetime, datetime, timedelta]] = []
    for key, (low, high) in ordered:
        if groups:
            keys, first, last, own = groups[-1]
            union = max(last, high) - first
            count = len(keys) + 1
            if union * count <= 2 * (own + high - low) + _SLACK_PER_KEY * count:
                keys.append(key)
                groups[-1] = (keys, first, max(last, high), own + high - low)
                continue
        groups.append(([key], low, high, high - low))
    return [(keys, first, last) for keys, first, last, _ in groups]


def owners(keys: Sequence[DeviceKey] | Sequence[UserKey]) -> dict[str, list[Any]]:
    """The IN lists of a group: its organizations (each checked) and users."""
    return {
        "orgs": sorted({tenant(k.organization_id, "batched query") for k in keys}),
        "users": sorted({k.user_id for k in keys}),
    }


def device_owners(devices: Sequence[DeviceKey]) -> dict[str, list[Any]]:
    """`owners`, and the group's device ids as a third IN list."""
    return {**owners(devices), "devices": sorted({d.device_id for d in devices})}


async def rows_in_groups(
    conn: AsyncConnection,
    statement: sa.Executable,
    ranges: Mapping[UserKey, tuple[datetime, datetime]],
) -> list[sa.Row[Any]]:
    """`statement` (parameters orgs, users, start, end) run once per group of users."""
    rows: list[sa.Row[Any]] = []
    for users, start, end in clusters(ranges):
        rows += await conn.execute(statement, {**owners(users), "start": start, "end": end})
    return rows


class NotAnIndexKey(ColumnElement[Any]):
    """A column that SQLite must not pick an index by: `+column` there, the column elsewhere.

    SQLite plans without statistics, and took `organization_id = ?` (a whole organization's
    rows) or a range on start_time a day long over the indexes that read a few rows here."""

    # The wrapped column is part of the statement cache key (SQLAlchemy reads this list).
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012
    inherit_cache = True

    def __init__(self, column: sa.Column[Any]) -> None:
        self.column = column
        self.type = column.type


@compiles(NotAnIndexKey)
def _compile_any(element: NotAnIndexKey, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(NotAnIndexKey, "sqlite")
def _compile_sqlite(element: NotAnIndexKey, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)
