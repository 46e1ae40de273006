"""Reports: hourly rollups and the spans that attribute time to projects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from workpulse.domain.ids import (
    OrganizationId,
    UserId,
)
from workpulse.domain.reports import ProjectSpan, Usage
from workpulse.services.ports.usage import UserKey


@dataclass(frozen=True, slots=True)
class UserUsage:
    user_id: UserId
    usage: Usage


@dataclass(frozen=True, slots=True)
class HourlyRows:
    """A user's hourly rows for the whole hours in [start, end)."""

    user: UserKey
    start: datetime
    end: datetime
    rows: Sequence[Usage]


class RollupStore(Protocol):
    async def replace(self, fresh: Sequence[HourlyRows]) -> None:
        """Replace each user's hourly rows for the hours of its range."""
        ...

    async def rows_of(
        self, hours: Mapping[UserKey, tuple[datetime, datetime]]
    ) -> Mapping[UserKey, Sequence[Usage]]:
        """Per user, its hourly rows for the whole hours in its [start, end)."""
        ...

    async def spans_around(
        self, windows: Mapping[UserKey, tuple[datetime, datetime]]
    ) -> Mapping[UserKey, Sequence[ProjectSpan]]:
        """Per user, its work sessions touching its [start, end), as spans with their project."""
        ...

    async def read(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[UserUsage]:
        """Hourly rows of the users (None: the whole organization) for hours in [start, end)."""
        ...

    async def totals(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        windows: Sequence[tuple[datetime, datetime]],
        by: frozenset[str],
    ) -> Sequence[tuple[int, UserUsage]]:
        """Rollups summed in the database per window (whole hours, ascending, not overlapping)
        and per idle flag and the dimensions in `by` (of "user_id", "app_name", "domain",
        "project_id"); the others are left empty. Each row comes with its window's index."""
        ...

    async def project_spans(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        windows: Sequence[tuple[datetime, datetime]],
    ) -> Mapping[UserId, Sequence[ProjectSpan]]:
        """The users' work sessions touching any window, as spans with their project."""
        ...
