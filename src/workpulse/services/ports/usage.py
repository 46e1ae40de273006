"""Ping ingestion: owned pings, the ping queue, raw pings, intervals and partitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from workpulse.domain.ids import (
    OrganizationId,
    UserId,
)
from workpulse.domain.intervals import Interval, Rederivation, Window
from workpulse.domain.pings import Ping


@dataclass(frozen=True, slots=True)
class OwnedPing:
    """A checked ping with the tenant and user it belongs to (both from the access token)."""

    organization_id: OrganizationId
    user_id: UserId
    ping: Ping


@dataclass(frozen=True, slots=True)
class DeviceKey:
    organization_id: OrganizationId
    user_id: UserId
    device_id: str


@dataclass(frozen=True, slots=True)
class UserKey:
    organization_id: OrganizationId
    user_id: UserId


@dataclass(frozen=True, slots=True)
class Replacement:
    device: DeviceKey
    plan: Rederivation
    fresh: Sequence[Interval]


class PingStore(Protocol):
    async def add(self, pings: Sequence[OwnedPing], *, pending: bool) -> Sequence[OwnedPing]:
        """Insert the pings not stored yet; return those that were new."""
        ...

    async def count_pending(self) -> int: ...

    async def take_pending(self, limit: int) -> Sequence[OwnedPing]: ...

    async def mark_derived(self, pings: Sequence[OwnedPing]) -> None: ...

    async def needed(
        self, plans: Mapping[DeviceKey, Rederivation]
    ) -> Mapping[DeviceKey, Sequence[Ping]]:
        """Per device, its stored pings that `plan.needs` (a few more do no harm), without the
        url and title, which no interval carries."""
        ...


class UsageStore(Protocol):
    async def lock(self, devices: Sequence[DeviceKey]) -> None:
        """Serialize re-derivation per user (all of a user's devices: their hourly rollups are
        shared) across workers until the transaction ends."""
        ...

    async def touching(
        self, windows: Mapping[DeviceKey, Window]
    ) -> Mapping[DeviceKey, Sequence[Interval]]:
        """Per device, its stored intervals that touch its window."""
        ...

    async def replace(self, replacements: Sequence[Replacement]) -> None:
        """Per device, delete the stored intervals its plan replaces and insert the fresh ones."""
        ...

    async def around(
        self, windows: Mapping[UserKey, tuple[datetime, datetime]]
    ) -> Mapping[UserKey, Sequence[Interval]]:
        """Per user, its intervals (every device) that overlap its [start, end)."""
        ...

    async def between(
        self,
        organization_id: OrganizationId,
        user_id: UserId | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[tuple[UserId, Interval]]: ...

    async def of_users(
        self,
        organization_id: OrganizationId,
        user_ids: Sequence[UserId] | None,
        windows: Sequence[tuple[datetime, datetime]],
    ) -> Sequence[tuple[UserId, Interval]]:
        """The intervals of the users (None: the whole organization) touching any window."""
        ...


class PartitionKeeper(Protocol):
    async def ensure(self, moments: Iterable[datetime]) -> None: ...


class Backlogged(Exception):
    """The queue is over its bound: the client should retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class PingQueue(Protocol):
    async def submit(self, pings: Sequence[OwnedPing], *, dedupe_for: timedelta) -> Sequence[bool]:
        """Durably accept the pings; per ping True if new, False if a duplicate (a repeat is
        recognized for at least `dedupe_for`). Returns only after the pings are safe
        (committed, or acknowledged by Redis). Raises `Backlogged` when over the bound."""
        ...

    async def backlog(self) -> int:
        """How much is queued and not yet derived (entries with Redis, pings without)."""
        ...
