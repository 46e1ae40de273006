"""The small protocols the use cases need; adapters implement them without inheriting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from workpulse.domain.alerts import Alert, SessionActivity
from workpulse.domain.ids import (
    DeviceSessionId,
    OrganizationId,
    ProjectId,
    UserId,
    WorkSessionId,
)
from workpulse.domain.intervals import Interval, Rederivation, Window
from workpulse.domain.jobs import JobRun, Outcome
from workpulse.domain.organizations import Organization, OrganizationSettings
from workpulse.domain.pings import Ping
from workpulse.domain.presence import RawSighting, Sighting
from workpulse.domain.presence import Record as PresenceRecord
from workpulse.domain.projects import Project
from workpulse.domain.reports import ProjectSpan, Usage
from workpulse.domain.retention import DataClass
from workpulse.domain.roles import Role
from workpulse.domain.sessions import Activity, WorkSession
from workpulse.domain.summaries import DailySummary
from workpulse.domain.users import Credentials, DeviceSession, Invite, User


class Clock(Protocol):
    def now(self) -> datetime: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UserId
    organization_id: OrganizationId
    role: Role
    device_session_id: DeviceSessionId
    expires_at: datetime


class TokenCodec(Protocol):
    def issue(self, claims: AccessClaims, now: datetime) -> str: ...

    def decode(self, token: str, now: datetime) -> AccessClaims: ...


@dataclass(frozen=True, slots=True)
class SessionState:
    """What authentication needs beyond the token: is the device session alive, who is the user,
    which device it is and which other devices the user has (a ping may name any of them)."""

    user: User
    active: bool
    device_id: str
    device_ids: frozenset[str]


class SessionStateCache(Protocol):
    """Short-lived cache of device-session state, so most requests skip the database.

    `forget_*` drops entries here and, when several processes run, in every other process.
    """

    def get(self, session_id: DeviceSessionId, now: datetime) -> SessionState | None: ...

    def put(self, session_id: DeviceSessionId, state: SessionState, now: datetime) -> None: ...

    async def get_or_load(
        self,
        session_id: DeviceSessionId,
        now: datetime,
        load: Callable[[], Awaitable[SessionState]],
    ) -> SessionState:
        """The cached state, or the result of `load`, which is then cached. Concurrent misses
        for one session share a single `load`: when a busy session's entry expires, one
        request reads the database, not every request in flight."""
        ...

    async def forget_session(self, session_id: DeviceSessionId) -> None: ...

    async def forget_user(self, user_id: UserId) -> None: ...


class LoginThrottle(Protocol):
    """Counts failed logins per key (account, client address) over a window."""

    async def retry_after(self, keys: Sequence[str]) -> int | None: ...

    async def record_failure(self, keys: Sequence[str]) -> None: ...

    async def clear(self, key: str) -> None: ...


class OrganizationStore(Protocol):
    async def add(self, organization: Organization) -> None: ...

    async def get(self, organization_id: OrganizationId) -> Organization | None: ...

    async def lock(self, organization_id: OrganizationId) -> Organization | None: ...

    async def update(
        self,
        organization_id: OrganizationId,
        *,
        name: str,
        timezone: str,
        settings: OrganizationSettings,
    ) -> None: ...


class UserStore(Protocol):
    async def add(self, user: User, password_hash: str) -> None: ...

    async def get(self, organization_id: OrganizationId, user_id: UserId) -> User | None: ...

    async def list(self, organization_id: OrganizationId) -> Sequence[User]: ...

    async def count(self, organization_id: OrganizationId) -> int: ...

    async def count_active_owners(self, organization_id: OrganizationId) -> int: ...

    async def email_taken(self, organization_id: OrganizationId, email: str) -> bool: ...

    async def credentials_by_email(
        self, email: str, organization_id: OrganizationId | None
    ) -> Sequence[Credentials]: ...

    async def update(
        self, organization_id: OrganizationId, user_id: UserId, *, role: Role, is_active: bool
    ) -> None: ...


class DeviceSessionStore(Protocol):
    async def add(self, session: DeviceSession) -> None: ...

    async def get(
        self, organization_id: OrganizationId, session_id: DeviceSessionId
    ) -> DeviceSession | None: ...

    async def list_active(
        self, organization_id: OrganizationId, user_id: UserId
    ) -> Sequence[DeviceSession]: ...

    async def device_ids(self, organization_id: OrganizationId, user_id: UserId) -> frozenset[str]:
        """The devices the user has logged in from (revoked sessions included: their pings
        may still arrive from an agent's buffer)."""
        ...

    async def touch(
        self, organization_id: OrganizationId, session_id: DeviceSessionId, now: datetime
    ) -> None: ...

    async def revoke(
        self, organization_id: OrganizationId, session_id: DeviceSessionId, now: datetime
    ) -> bool: ...

    async def revoke_all(
        self, organization_id: OrganizationId, user_id: UserId, now: datetime
    ) -> Sequence[DeviceSessionId]: ...

    async def add_refresh_token(
        self, session_id: DeviceSessionId, token_hash: str, now: datetime, expires_at: datetime
    ) -> None: ...

    async def spend_refresh_token(
        self, token_hash: str, now: datetime
    ) -> tuple[DeviceSession | None, bool]:
        """Mark the token spent. Returns its device session and whether this call spent it
        (False: unknown, already spent, or expired)."""
        ...


class InviteStore(Protocol):
    async def add(self, invite: Invite, token_hash: str, created_by: UserId) -> None: ...

    async def claim(
        self, organization_id: OrganizationId, token_hash: str, user_id: UserId, now: datetime
    ) -> Invite | None:
        """Spend a usable invite of this organization; None if there is none."""
        ...


class ProjectStore(Protocol):
    async def add(self, project: Project) -> None: ...

    async def get(
        self, organization_id: OrganizationId, project_id: ProjectId
    ) -> Project | None: ...

    async def list(
        self, organization_id: OrganizationId, *, include_archived: bool
    ) -> Sequence[Project]: ...

    async def name_taken(
        self, organization_id: OrganizationId, name: str, *, other_than: ProjectId | None
    ) -> bool: ...

    async def update(
        self, organization_id: OrganizationId, project_id: ProjectId, changes: Mapping[str, Any]
    ) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Stores never commit; the use case calls `commit` once, and callbacks
    registered with `after_commit` (events, cache invalidation) run only after it succeeded."""

    @property
    def organizations(self) -> OrganizationStore: ...

    @property
    def users(self) -> UserStore: ...

    @property
    def device_sessions(self) -> DeviceSessionStore: ...

    @property
    def invites(self) -> InviteStore: ...

    @property
    def projects(self) -> ProjectStore: ...

    @property
    def pings(self) -> PingStore: ...

    @property
    def usage(self) -> UsageStore: ...

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def rollups(self) -> RollupStore: ...

    @property
    def alerts(self) -> AlertStore: ...

    @property
    def summaries(self) -> SummaryStore: ...

    @property
    def directory(self) -> Directory: ...

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, readonly: bool = False) -> AbstractAsyncContextManager[UnitOfWork]: ...


# --- Ping ingestion ---------------------------------------------------------------------------


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


class PingStore(Protocol):
    async def add(self, pings: Sequence[OwnedPing], *, pending: bool) -> Sequence[OwnedPing]:
        """Insert the pings not stored yet; return those that were new."""
        ...

    async def count_pending(self) -> int: ...

    async def take_pending(self, limit: int) -> Sequence[OwnedPing]: ...

    async def mark_derived(self, pings: Sequence[OwnedPing]) -> None: ...

    async def needed(self, device: DeviceKey, plan: Rederivation) -> Sequence[Ping]: ...


class UsageStore(Protocol):
    async def lock(self, devices: Sequence[DeviceKey]) -> None:
        """Serialize re-derivation per user (all of a user's devices: their hourly rollups are
        shared) across workers until the transaction ends."""
        ...

    async def touching(self, device: DeviceKey, window: Window) -> Sequence[Interval]: ...

    async def replace(
        self, device: DeviceKey, plan: Rederivation, fresh: Sequence[Interval]
    ) -> None: ...

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


# --- Reports ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserUsage:
    user_id: UserId
    usage: Usage


class RollupStore(Protocol):
    async def replace(
        self,
        organization_id: OrganizationId,
        user_id: UserId,
        start: datetime,
        end: datetime,
        rows: Sequence[Usage],
    ) -> None:
        """Replace the user's hourly rows for the hours in [start, end) (whole hours)."""
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


# --- Work sessions ----------------------------------------------------------------------------


class SessionStore(Protocol):
    async def start(self, session: WorkSession) -> None:
        """Raises `SessionAlreadyActive` when the user has one (enforced by the database)."""
        ...

    async def get(
        self, organization_id: OrganizationId, session_id: WorkSessionId, *, lock: bool = False
    ) -> WorkSession | None:
        """`lock=True`: the row is locked until the transaction ends (its current version)."""
        ...

    async def active(
        self, organization_id: OrganizationId, user_id: UserId | None
    ) -> Sequence[WorkSession]: ...

    async def history(
        self,
        organization_id: OrganizationId,
        *,
        user_id: UserId | None,
        project_id: ProjectId | None,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, WorkSessionId] | None,
        limit: int,
    ) -> Sequence[WorkSession]: ...

    async def stop(
        self, organization_id: OrganizationId, session_id: WorkSessionId, now: datetime
    ) -> WorkSession | None: ...

    async def close_stale(
        self, organization_id: OrganizationId, cutoff: datetime
    ) -> Sequence[WorkSession]: ...

    async def record(
        self, session: WorkSession, activities: Sequence[Activity]
    ) -> list[Activity]: ...

    async def recorded(
        self, session: WorkSession, event_ids: Sequence[str]
    ) -> dict[str, Activity]: ...

    async def add_to_counters(
        self,
        session: WorkSession,
        *,
        active_seconds: int,
        idle_seconds: int,
        last_activity_at: datetime,
        limit_seconds: int,
    ) -> WorkSession | None: ...

    async def ledger_totals(self, session: WorkSession) -> tuple[int, int]: ...


class Notifier(Protocol):
    """Real-time events, published only after the change they report has committed."""

    async def publish(
        self,
        event: str,
        payload: Mapping[str, Any],
        *,
        organization_id: OrganizationId,
        user_id: UserId,
    ) -> None: ...


# --- Presence ---------------------------------------------------------------------------------


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


# --- Data lifecycle ---------------------------------------------------------------------------


class DataLifecycle(Protocol):
    async def expire(self, kind: DataClass, before: datetime) -> int:
        """Remove the class's data older than `before` (titles: blank them). Returns how many
        rows went, or partitions dropped on PostgreSQL."""
        ...


# --- Scheduled jobs and alerts ----------------------------------------------------------------


class JobRunStore(Protocol):
    """The run log and lease of scheduled jobs. Each call is its own transaction: a claim must
    be visible to every other scheduler at once, whatever the job then does."""

    async def claim(
        self, job: str, scheduled_for: datetime, *, now: datetime, lease: datetime
    ) -> JobRun | None:
        """Record the run as running, held until `lease`; None if it exists already."""
        ...

    async def expired(self, jobs: Sequence[str], now: datetime) -> Sequence[JobRun]:
        """Runs of these jobs whose lease has ended: holders that died, retries now due."""
        ...

    async def take_over(self, run: JobRun, *, now: datetime, lease: datetime) -> JobRun | None:
        """Start `run`'s next attempt if it is still as read (one caller wins)."""
        ...

    async def renew(self, run: JobRun, lease: datetime) -> bool: ...

    async def finish(
        self,
        run: JobRun,
        *,
        outcome: Outcome,
        now: datetime,
        error: str | None,
        detail: str | None,
        lease: datetime | None,
    ) -> bool:
        """Record the attempt's end, unless another process took the run over meanwhile."""
        ...

    async def recent(self, *, job: str | None, limit: int) -> Sequence[JobRun]: ...

    async def forget_before(self, moment: datetime) -> int:
        """Delete finished runs scheduled before `moment`; returns how many."""
        ...


class AlertStore(Protocol):
    async def add(self, new: Sequence[Alert]) -> Sequence[Alert]:
        """Insert those whose user has no alert with the same key; returns them."""
        ...

    async def get(self, organization_id: OrganizationId, alert_id: UUID) -> Alert | None: ...

    async def between(
        self,
        organization_id: OrganizationId,
        user_id: UserId | None,
        start: datetime,
        end: datetime,
    ) -> Sequence[Alert]: ...

    async def acknowledge(
        self, organization_id: OrganizationId, alert_id: UUID, by: UserId, now: datetime
    ) -> Alert | None:
        """Mark acknowledged (the first acknowledgement stays); the alert, or None."""
        ...

    async def active_sessions(self, organization_id: OrganizationId) -> Sequence[SessionActivity]:
        """The organization's active work sessions with their latest active moment."""
        ...


class SummaryStore(Protocol):
    async def upsert(self, summaries: Sequence[DailySummary]) -> None: ...

    async def get(
        self, organization_id: OrganizationId, user_id: UserId, day: date
    ) -> DailySummary | None: ...

    async def latest(self, organization_id: OrganizationId, since: date) -> Mapping[UserId, date]:
        """Each user's latest summarized day, among days from `since`."""
        ...

    async def changed_hours(
        self, organization_id: OrganizationId, *, margin: timedelta, since: datetime
    ) -> Sequence[tuple[UserId, datetime]]:
        """(user, hour) of rollups from `since` on written after the organization's latest
        summary was computed, less `margin` (transactions still open at that moment)."""
        ...


class Directory(Protocol):
    """What jobs that go over every tenant list (the one cross-tenant read besides login)."""

    async def organizations(
        self, after: OrganizationId | None, limit: int
    ) -> Sequence[Organization]: ...
