"""Presence: who is connected or sending pings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from workpulse.domain.ids import (
    OrganizationId,
    UserId,
)
from workpulse.domain.presence import RawSighting, Sighting
from workpulse.domain.presence import Record as PresenceRecord


@dataclass(frozen=True, slots=True)
class UserRef:
    organization_id: OrganizationId
    user_id: UserId


@dataclass(frozen=True, slots=True)
class Liveness:
    """One connection of a user alive until `until`: a socket (`connection` is
    "<process>:<socket id>") or the user's agent (`connection` is "agent", with what its latest
    ping said)."""

    user: UserRef
    connection: str
    until: datetime
    sighting: Sighting | None = None


class PresenceStore(Protocol):
    """Live connections per user, shared by every process (Redis) or held in this one.

    A user is online from the first live connection until `drop` removes the last one or
    `expire` finds them all past their `until`; each of those transitions is reported to exactly
    one caller, whichever process it runs in."""

    async def keep_alive(self, connections: Sequence[Liveness], now: datetime) -> Sequence[UserRef]:
        """Add or extend connections. Returns the users this made online."""
        ...

    async def drop(self, user: UserRef, connection: str, now: datetime) -> bool:
        """Remove one connection. True when the user is offline because of it."""
        ...

    async def expire(self, now: datetime) -> Sequence[UserRef]:
        """Mark offline the users whose connections have all expired, and return them."""
        ...

    async def records(
        self, organization_id: OrganizationId, user_ids: Sequence[UserId], now: datetime
    ) -> Mapping[UserId, PresenceRecord]: ...


class AgentSightings(Protocol):
    """The hot path's side of presence: remembers the latest ping per user in process, for a
    background task to check and write at most once per user per interval."""

    def saw(self, user: UserRef, sighting: RawSighting) -> None: ...
