"""The composition root: builds every adapter once from the settings and hands them out.

SQLite or PostgreSQL is chosen by `database_url`; in-process or Redis by `redis_url`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workpulse.adapters.clock import SystemClock
from workpulse.adapters.db import migrate
from workpulse.adapters.db.engine import create_engine
from workpulse.adapters.db.partitions import Partitions
from workpulse.adapters.db.retention import SqlDataLifecycle
from workpulse.adapters.db.uow import SqlDatabase
from workpulse.adapters.db_queue import DatabaseQueue
from workpulse.adapters.notifier import InProcessNotifier
from workpulse.adapters.organization_settings import CachedOrganizationSettings
from workpulse.adapters.passwords import Argon2Hasher
from workpulse.adapters.ping_stream import Keys, RedisPingQueue
from workpulse.adapters.presence import LocalPresence, RedisPresence, SightingBuffer
from workpulse.adapters.probes import DatabaseProbe, RedisProbe
from workpulse.adapters.realtime import EventRelay, RedisEmitter, WatchedSessionCache
from workpulse.adapters.session_cache import LocalSessionCache, RedisSessionCache
from workpulse.adapters.throttle import LocalLoginThrottle, RedisLoginThrottle
from workpulse.adapters.tokens import JwtCodec
from workpulse.domain.retention import RetentionPolicy
from workpulse.services import sessions
from workpulse.services.activity_groups import ActivityGroups
from workpulse.services.health import Probe
from workpulse.services.identity import AuthPolicy
from workpulse.services.ports import (
    Clock,
    LoginThrottle,
    PingQueue,
    PresenceStore,
    SessionStateCache,
)
from workpulse.settings import Settings

SECRET_SUFFIX = ".jwt-secret"


@dataclass(frozen=True)
class Container:
    settings: Settings
    engine: AsyncEngine
    database: SqlDatabase
    # Report reads: the read replica when WORKPULSE_DATABASE_REPLICA_URL is set, else `database`.
    report_database: SqlDatabase
    # Retention (docs/reports.md): the policy from settings and the SQL that applies it.
    retention: RetentionPolicy
    lifecycle: SqlDataLifecycle
    redis: Redis | None
    clock: Clock
    hasher: Argon2Hasher
    tokens: JwtCodec
    session_cache: SessionStateCache
    throttle: LoginThrottle
    auth_policy: AuthPolicy
    dummy_hash: str
    metrics: CollectorRegistry
    probes: tuple[Probe, ...]
    partitions: Partitions
    settings_of: CachedOrganizationSettings
    ping_queue: PingQueue
    # The database queue when there is no Redis: the in-process worker waits on its `wake`.
    database_queue: DatabaseQueue | None
    redis_keys: Keys
    notifier: InProcessNotifier
    session_deps: sessions.Dependencies
    # Real time: events from the notifier to Socket.IO rooms, revocations, presence.
    relay: EventRelay
    revocations: WatchedSessionCache
    presence: PresenceStore
    sightings: SightingBuffer


def _nothing() -> None:
    """With Redis, stream workers poll for pending pings; nothing to wake in this process."""


def embedded_secret(database: Path) -> str:
    """The embedded mode's JWT secret, generated once and kept beside the database (0600)."""
    path = database.with_name(database.name + SECRET_SUFFIX)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def create_private_database(path: Path) -> None:
    """Creates an empty SQLite database readable by its owner only (0600), unless one exists.

    It holds password hashes and activity data; SQLite gives its -wal and -shm files the same
    permissions. Left to SQLite, the file would follow the umask (usually world-readable).
    """
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = settings.sqlite_path
    assert path is not None, "settings validation requires a secret outside embedded mode"
    return embedded_secret(path)


def database_engine(settings: Settings, application_name: str = "workpulse") -> AsyncEngine:
    return create_engine(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        statement_cache_size=settings.db_statement_cache_size,
        application_name=application_name,
    )


async def migrate_if_needed(settings: Settings, engine: AsyncEngine) -> bool:
    """`serve` brings an embedded database (or an empty PostgreSQL one) to the newest schema.

    Returns whether it migrated. A PostgreSQL database that is merely behind is left for an
    explicit `workpulse migrate`, run before new code is rolled out.
    """
    current = await migrate.current_revision(engine)
    if current == migrate.head():
        return False
    if settings.embedded or current is None:
        await migrate.upgrade(engine)
        return True
    return False


@asynccontextmanager
async def build(settings: Settings, *, role: str = "api") -> AsyncIterator[Container]:
    async with AsyncExitStack() as stack:
        path = settings.sqlite_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            create_private_database(path)
        engine = database_engine(settings, application_name=f"workpulse-{role}")
        stack.push_async_callback(engine.dispose)
        redis: Redis | None = None
        limits = {
            "account": settings.login_failures_per_account,
            "address": settings.login_failures_per_address,
        }
        cache: SessionStateCache
        throttle: LoginThrottle
        if settings.redis_url:
            # health_check_interval: a pooled connection idle through a Redis restart is checked
            # before use instead of failing the request that picks it up.
            redis = Redis.from_url(
                settings.redis_url,
                socket_timeout=5,
                socket_connect_timeout=5,
                health_check_interval=10,
            )
            stack.push_async_callback(redis.aclose)
            redis_cache = RedisSessionCache(
                redis,
                channel=f"{settings.redis_prefix}:auth:invalidate",
                ttl_seconds=settings.session_cache_ttl_seconds,
            )
            await redis_cache.start()
            stack.push_async_callback(redis_cache.stop)
            cache = redis_cache
            throttle = RedisLoginThrottle(
                redis,
                prefix=f"{settings.redis_prefix}:login-failures:",
                limits=limits,
                window_seconds=settings.login_failure_window_seconds,
            )
        else:
            cache = LocalSessionCache(ttl_seconds=settings.session_cache_ttl_seconds)
            throttle = LocalLoginThrottle(
                limits=limits, window_seconds=settings.login_failure_window_seconds
            )
        hasher = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        redis_keys = Keys(settings.redis_prefix)
        database = SqlDatabase(engine)
        report_database = database
        if settings.database_replica_url:
            replica = create_engine(
                settings.database_replica_url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                statement_cache_size=settings.db_statement_cache_size,
                application_name=f"workpulse-{role}-reports",
            )
            stack.push_async_callback(replica.dispose)
            report_database = SqlDatabase(replica)
        partitions = Partitions(engine)
        # Without Redis the database is the ping queue (pending rows); with it, a Redis Stream.
        database_queue: DatabaseQueue | None = None
        ping_queue: PingQueue
        if redis is None:
            database_queue = DatabaseQueue(
                database, partitions, backlog_bound=settings.ingest_backlog_pings
            )
            stack.push_async_callback(database_queue.close)
            ping_queue = database_queue
        else:
            ping_queue = RedisPingQueue(
                redis, redis_keys, backlog_bound=settings.ingest_backlog_entries
            )
        clock = SystemClock()
        notifier = InProcessNotifier()
        # With Redis, events reach the Socket.IO servers of every API process through Redis;
        # without, this process's server attaches itself to the relay.
        relay = EventRelay()
        if settings.redis_url:
            emitter = RedisEmitter(settings.redis_url, channel=f"{settings.redis_prefix}:socketio")
            stack.push_async_callback(emitter.close)
            relay.attach(emitter.emit)
        notifier.listen(relay)
        await relay.start()
        stack.push_async_callback(relay.stop)
        revocations = WatchedSessionCache(
            cache, redis, channel=f"{settings.redis_prefix}:auth:invalidate"
        )
        await revocations.start()
        stack.push_async_callback(revocations.stop)
        presence: PresenceStore = (
            LocalPresence() if redis is None else RedisPresence(redis, prefix=settings.redis_prefix)
        )
        settings_of = CachedOrganizationSettings(database)
        wake_worker = database_queue.wake.set if database_queue is not None else _nothing
        session_deps = sessions.Dependencies(
            uow_factory=database,
            clock=clock,
            notifier=notifier,
            settings_of=settings_of,
            partitions=partitions,
            wake_worker=wake_worker,
            groups=ActivityGroups(database, notifier, partitions, wake_worker),
        )
        yield Container(
            settings=settings,
            engine=engine,
            database=database,
            report_database=report_database,
            retention=RetentionPolicy(
                raw_pings_days=settings.retention_raw_pings_days,
                titles_days=settings.retention_titles_days,
                intervals_days=settings.retention_intervals_days,
                rollups_days=settings.retention_rollups_days,
            ),
            lifecycle=SqlDataLifecycle(engine),
            partitions=partitions,
            settings_of=settings_of,
            notifier=notifier,
            session_deps=session_deps,
            relay=relay,
            revocations=revocations,
            presence=presence,
            sightings=SightingBuffer(),
            ping_queue=ping_queue,
            database_queue=database_queue,
            redis_keys=redis_keys,
            redis=redis,
            clock=clock,
            hasher=hasher,
            tokens=JwtCodec(jwt_secret(settings)),
            session_cache=revocations,
            throttle=throttle,
            auth_policy=AuthPolicy(
                access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
                refresh_ttl=timedelta(days=settings.refresh_token_ttl_days),
            ),
            dummy_hash=await hasher.hash(secrets.token_urlsafe(16)),
            metrics=CollectorRegistry(),
            probes=(DatabaseProbe(engine),)
            if redis is None
            else (DatabaseProbe(engine), RedisProbe(redis)),
        )
