"""Settings: one class, `WORKPULSE_*` environment variables and an optional `.env`, built once.

Unknown `WORKPULSE_*` variables and malformed values stop start-up with a message naming them
(`SettingsError`). Without `WORKPULSE_DATABASE_URL` the product runs embedded on a SQLite file in
the working directory; with PostgreSQL a real secret of at least 32 bytes is required.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "WORKPULSE_"
EMBEDDED_DATABASE = "workpulse.db"
MIN_SECRET_BYTES = 32
_WEAK_SECRETS = {
    "secret",
    "changeme",
    "change-me",
    "changethis",
    "your-secret-key",
    "jwt-secret",
    "default",
    # Published defaults long enough to pass the length check: the FastAPI security tutorial's
    # SECRET_KEY, copied into many projects. The short ones above fail the length check anyway.
    "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d7",
}


class SettingsError(Exception):
    """Start-up stops with this message."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        # Unknown WORKPULSE_* keys are refused by load_settings (environment and .env alike);
        # other keys in a shared .env belong to other tools and are left alone.
        env_prefix=PREFIX,
        env_file=".env",
        extra="ignore",
        frozen=True,
        # `WORKPULSE_RETENTION_ROLLUPS_DAYS=none` unsets an optional number (keep forever).
        env_parse_none_str="none",
    )

    database_url: str | None = None
    database_replica_url: str | None = None
    redis_url: str | None = None
    # Every Redis key and channel starts with this, so several deployments (or test runs) can
    # share one Redis.
    redis_prefix: str = Field(default="workpulse", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    jwt_secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # 20 kept, none beyond: the same ceiling as 10 + 10 overflow, but a connection is not closed
    # and reopened each time concurrency passes 10 (bench/sessions: 399 reconnects in 10 s at 32
    # concurrent requests, 584 -> 900 activity req/s without them).
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_max_overflow: int = Field(default=0, ge=0, le=500)
    # "pgbouncer": the database URL points at PgBouncer in transaction pooling, where a server
    # connection keeps no prepared statement from one transaction to the next. The statement
    # caches are then 0 (asyncpg >= 0.31 prepares unnamed statements inside each transaction).
    database_pooler: Literal["direct", "pgbouncer"] = "direct"
    db_statement_cache_size: int = Field(default=100, ge=0)

    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    session_cache_ttl_seconds: float = Field(default=30, ge=0, le=3600)
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65_536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    login_failures_per_account: int = Field(default=10, ge=1)
    login_failures_per_address: int = Field(default=100, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)

    # Ping ingestion: past the backlog bound the API answers 503 with Retry-After. With Redis it
    # counts stream entries (one per request); without, pending pings in the database.
    ingest_backlog_entries: int = Field(default=100_000, ge=1)
    ingest_backlog_pings: int = Field(default=1_000_000, ge=1)
    ingest_claim_idle_seconds: float = Field(default=30, gt=0)
    ingest_max_deliveries: int = Field(default=5, ge=1)
    ingest_batch_entries: int = Field(default=50, ge=1, le=10_000)

    # Retention per data class in days (docs/reports.md); unset keeps forever. Applied by the
    # scheduler's retention job: whole month partitions on PostgreSQL, rows on SQLite.
    retention_raw_pings_days: int | None = Field(default=180, ge=92)
    retention_titles_days: int | None = Field(default=30, ge=1)
    retention_intervals_days: int | None = Field(default=730, ge=1)
    retention_rollups_days: int | None = Field(default=None, ge=1)

    # Scheduler (docs/scheduler.md): how often a process looks for due runs, how long a claimed
    # run is held without renewal (a crashed holder's run is taken over after it), the first
    # retry's wait (then x4), how long the run log is kept, and a port for /metrics of a
    # standalone `workpulse scheduler` (unset: none; `serve` shows them on its own /metrics).
    scheduler_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    scheduler_lease_seconds: float = Field(default=60, ge=0.5, le=3600)
    scheduler_retry_seconds: float = Field(default=10, gt=0, le=3600)
    scheduler_history_days: int = Field(default=30, ge=1, le=3650)
    scheduler_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Job periods in seconds. Summaries must divide 900, so that runs fall on every zone's
    # midnight; shorter periods are for tests and demos.
    scheduler_summaries_seconds: int = Field(default=900, ge=1)
    scheduler_idle_seconds: int = Field(default=60, ge=1, le=3600)
    scheduler_overtime_seconds: int = Field(default=300, ge=1, le=1800)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    graceful_timeout_seconds: int = Field(default=30, ge=1)

    # Real time (docs/realtime.md). Socket.IO pings every interval; no pong within the timeout
    # closes the socket. A process's sockets count as connected until `presence_ttl` after its
    # last heartbeat (sent every third of it), so a crashed process's users go offline then.
    realtime_ping_interval_seconds: float = Field(default=25, gt=0, le=600)
    realtime_ping_timeout_seconds: float = Field(default=20, gt=0, le=600)
    realtime_recheck_seconds: float = Field(default=60, gt=0, le=3600)
    presence_ttl_seconds: float = Field(default=30, ge=0.3, le=3600)
    presence_agent_seconds: float = Field(default=120, ge=1, le=86_400)
    presence_flush_seconds: float = Field(default=2, gt=0, le=60)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "*" in value:
            raise ValueError("list the allowed origins; '*' is refused (cookies are credentials)")
        return value

    @field_validator("scheduler_summaries_seconds")
    @classmethod
    def _summaries_on_midnights(cls, value: int) -> int:
        if 900 % value:
            raise ValueError("must divide 900 (15 minutes), so that runs fall on local midnights")
        return value

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql", "postgres:", "sqlite")):
            raise ValueError("use a postgresql://… or sqlite:///… URL")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_statement_cache_behind_pgbouncer(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("database_pooler") == "pgbouncer":
            cache = data.setdefault("db_statement_cache_size", 0)
            if str(cache).strip() != "0":
                raise ValueError(
                    f"{PREFIX}DB_STATEMENT_CACHE_SIZE must be 0 (or unset) with "
                    f"{PREFIX}DATABASE_POOLER=pgbouncer: transaction pooling keeps no prepared "
                    "statements"
                )
        return data

    @model_validator(mode="after")
    def _pooler_needs_postgresql(self) -> Settings:
        if self.database_pooler != "direct" and self.embedded:
            raise ValueError(f"{PREFIX}DATABASE_POOLER needs a postgresql:// database URL")
        return self

    @model_validator(mode="after")
    def _secret_outside_embedded_mode(self) -> Settings:
        if self.embedded:
            return self
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if not secret:
            raise ValueError(f"{PREFIX}JWT_SECRET is required with PostgreSQL")
        if len(secret.encode()) < MIN_SECRET_BYTES or secret.lower() in _WEAK_SECRETS:
            raise ValueError(
                f"{PREFIX}JWT_SECRET must be a random value of at least {MIN_SECRET_BYTES} bytes"
            )
        return self

    @property
    def embedded(self) -> bool:
        """SQLite: one process, and a generated secret kept beside the database is allowed."""
        return self.database_url is None or self.database_url.startswith("sqlite")

    @property
    def effective_database_url(self) -> str:
        if self.database_url is None:
            return f"sqlite:///{Path.cwd() / EMBEDDED_DATABASE}"
        return self.database_url

    @property
    def sqlite_path(self) -> Path | None:
        url = self.effective_database_url
        if not url.startswith("sqlite"):
            return None
        return Path(url.split(":///", 1)[1])


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings once, refusing unknown `WORKPULSE_*` variables by name."""
    environ = os.environ if environ is None else environ
    names = set(environ)
    if Path(".env").is_file():
        names |= set(dotenv_values(".env"))
    known = {PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in names if k.upper().startswith(PREFIX) and k.upper() not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            name = f"{PREFIX}{field.upper()}" if field else "settings"
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from exc


def describe(settings: Settings) -> dict[str, object]:
    """The effective settings without secrets, for the start-up log line."""
    shown = settings.model_dump(exclude={"jwt_secret"})
    for key in ("database_url", "database_replica_url", "redis_url"):
        if shown.get(key):
            shown[key] = _hide_password(str(shown[key]))
    shown["effective_database_url"] = _hide_password(settings.effective_database_url)
    return shown


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
