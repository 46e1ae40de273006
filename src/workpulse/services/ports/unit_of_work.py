"""One transaction with every store bound to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from workpulse.services.ports.accounts import (
    DeviceSessionStore,
    InviteStore,
    OrganizationStore,
    ProjectStore,
    UserStore,
)
from workpulse.services.ports.jobs import AlertStore, Directory, SummaryStore
from workpulse.services.ports.reports import RollupStore
from workpulse.services.ports.sessions import ActivityLedger, SessionStore
from workpulse.services.ports.usage import PingStore, UsageStore


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


class SessionUnitOfWork(UnitOfWork, Protocol):
    @property
    def sessions(self) -> ActivityLedger: ...


class SessionUnitOfWorkFactory(Protocol):
    def __call__(
        self, *, readonly: bool = False, autocommit: bool = False
    ) -> AbstractAsyncContextManager[SessionUnitOfWork]:
        """`autocommit=True`: each statement is its own transaction where the database allows
        it (for a use case whose one write is a single atomic statement); elsewhere ignored."""
        ...
