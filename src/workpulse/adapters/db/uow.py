"""The unit of work: one connection, one transaction, stores bound to it, after-commit hooks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import sqlalchemy.exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workpulse.adapters.db.alerts import SqlAlertStore
from workpulse.adapters.db.jobs import SqlDirectory
from workpulse.adapters.db.organizations import SqlOrganizationStore
from workpulse.adapters.db.pings import SqlPingStore
from workpulse.adapters.db.projects import SqlProjectStore
from workpulse.adapters.db.rollups import SqlRollupStore
from workpulse.adapters.db.sessions import SqlSessionStore
from workpulse.adapters.db.summaries import SqlSummaryStore
from workpulse.adapters.db.usage import SqlUsageStore
from workpulse.adapters.db.users import SqlDeviceSessionStore, SqlInviteStore, SqlUserStore
from workpulse.domain.errors import StorageUnavailable, TransientConflict

log = logging.getLogger(__name__)


class SqlUnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._callbacks: list[Callable[[], Awaitable[None]]] = []
        self.organizations = SqlOrganizationStore(conn)
        self.users = SqlUserStore(conn)
        self.device_sessions = SqlDeviceSessionStore(conn)
        self.invites = SqlInviteStore(conn)
        self.projects = SqlProjectStore(conn)
        self.pings = SqlPingStore(conn)
        self.usage = SqlUsageStore(conn)
        self.sessions = SqlSessionStore(conn)
        self.rollups = SqlRollupStore(conn)
        self.alerts = SqlAlertStore(conn)
        self.summaries = SqlSummaryStore(conn)
        self.directory = SqlDirectory(conn)

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._callbacks.append(callback)

    async def commit(self) -> None:
        await self._conn.commit()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            # The change is committed: a failing hook (an event, a cache message) is logged,
            # never reported to the client as a failed change.
            try:
                await callback()
            except Exception:
                log.exception("after-commit callback failed")


# deadlock_detected, serialization_failure: the transaction was rolled back whole; run it again.
_TRANSIENT = frozenset({"40P01", "40001"})

# Errors that mean "the database is not reachable right now", not "your query is wrong".
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, OSError, TimeoutError)


class SqlDatabase:
    """Hands out units of work. `readonly=True` opens a deferred transaction on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def __call__(
        self, *, readonly: bool = False, autocommit: bool = False
    ) -> AsyncIterator[SqlUnitOfWork]:
        """`autocommit=True` (PostgreSQL only): no BEGIN, each statement commits by itself, for
        use cases whose one write is a single atomic statement (fewer round trips, and no row
        lock held across them); `commit()` then only runs the after-commit callbacks."""
        try:
            conn = await self.engine.connect()
        except (*_UNAVAILABLE, sa_exc.DBAPIError) as exc:
            # Any failure to connect (refused, "too many clients", starting up) is the database
            # being unavailable: 503 with Retry-After, not a 500.
            raise StorageUnavailable() from exc
        try:
            if self._sqlite:
                await conn.execution_options(sqlite_begin="DEFERRED" if readonly else "IMMEDIATE")
            elif autocommit:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                await conn.begin()
            except _UNAVAILABLE as exc:
                raise StorageUnavailable() from exc
            try:
                yield SqlUnitOfWork(conn)
            except sa_exc.DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) in _TRANSIENT:
                    raise TransientConflict() from exc
                if exc.connection_invalidated or isinstance(exc, _UNAVAILABLE):
                    raise StorageUnavailable() from exc
                raise
        finally:
            await conn.close()  # rolls back whatever was not committed
