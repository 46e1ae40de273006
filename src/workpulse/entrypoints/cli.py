"""`workpulse`: serve | api | worker | scheduler | migrate."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Annotated

import structlog
import typer
import uvicorn
import uvloop
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from workpulse import bootstrap
from workpulse.adapters.db import migrate as migrations
from workpulse.adapters.db.jobs import SqlJobRuns
from workpulse.adapters.ping_stream import DeadLetters, Keys
from workpulse.domain.jobs import JobRun
from workpulse.entrypoints import logs
from workpulse.entrypoints.http.app import Background, create_app
from workpulse.entrypoints.scheduler import run_scheduler
from workpulse.entrypoints.worker import run_worker
from workpulse.settings import Settings, SettingsError, describe, load_settings

app = typer.Typer(
    name="workpulse",
    help="WorkPulse: time tracking and workforce productivity backend.",
    no_args_is_help=True,
    add_completion=False,
)
log = structlog.get_logger("workpulse.cli")

HostOption = Annotated[str | None, typer.Option(help="Overrides WORKPULSE_HOST.")]
PortOption = Annotated[int | None, typer.Option(help="Overrides WORKPULSE_PORT.")]


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"workpulse: {exc}", err=True)
        raise typer.Exit(2) from exc
    logs.configure(settings.log_level, settings.log_format)
    return settings


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal it stopped on once its graceful shutdown is done, so SIGTERM
    would end the process killed by that signal (status 143) even after a clean, complete stop.
    A graceful stop on SIGTERM is a success: exit 0, like `worker` and `scheduler`."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM:
            self.should_exit = True
            return
        super().handle_exit(sig, frame)


def _serve_http(
    settings: Settings,
    *,
    role: str,
    migrate: bool,
    background: list[Background],
    host: str | None,
    port: int | None,
) -> None:
    # The options outrank WORKPULSE_HOST/PORT; applied to the settings so that the start-up log
    # of the effective settings shows the address actually served.
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings.model_copy(update=overrides)
    application = create_app(settings, role=role, migrate=migrate, background=background)
    config = uvicorn.Config(
        application.state.realtime.asgi(application),  # Socket.IO at /socket.io, same port
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_timeout_seconds,
    )
    server = _Server(config)
    _settle_heap()
    server.run()  # SIGTERM/SIGINT: stop accepting, finish in-flight requests, run shutdown
    if not server.started:
        raise typer.Exit(1)


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Everything in one process: HTTP API, ingestion worker and scheduler.

    With no configuration: an embedded SQLite file in the working directory, in-process queue
    and pub/sub. Migrates the database when it is embedded or empty.
    """
    settings = _settings()
    _serve_http(
        settings,
        role="serve",
        migrate=True,
        background=[run_worker, run_scheduler],
        host=host,
        port=port,
    )


@app.command()
def api(host: HostOption = None, port: PortOption = None) -> None:
    """The HTTP API alone (run any number behind a load balancer)."""
    settings = _settings()
    _serve_http(settings, role="api", migrate=False, background=[], host=host, port=port)


def _run_background(part: Background, role: str) -> None:
    settings = _settings()

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        async with bootstrap.build(settings, role=role) as container:
            log.info("started", role=role, settings=describe(settings))
            await part(container, stopping)

    # uvloop, as uvicorn uses for the API: asyncpg's and redis-py's socket work on the stdlib
    # loop was a quarter of a worker's CPU (py-spy, bench/ingest drain).
    _settle_heap()
    uvloop.run(main())


def _settle_heap() -> None:
    """Keep the garbage collector's full passes off what was built at start-up.

    Everything imported by now (FastAPI, pydantic, SQLAlchemy, Socket.IO, ...: the bulk of the
    process's objects) lives as long as the process. Left to the collector, every full pass
    walked all of it: in the API under single pings, 24 full passes in a minute of 100-260 ms
    each, with the event loop stopped (bench/ingest --phases single,halfrate, p99 at half rate).
    Frozen, those objects are skipped; objects made later are collected as before."""
    gc.collect()
    gc.freeze()


@app.command()
def worker() -> None:
    """An ingestion worker (any number, with Redis)."""
    _run_background(run_worker, "worker")


@app.command()
def scheduler() -> None:
    """The job scheduler (several may run; each job run happens once)."""
    _run_background(run_scheduler, "scheduler")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()

    async def main() -> None:
        engine = bootstrap.database_engine(settings, application_name="workpulse-migrate")
        try:
            before = await migrations.current_revision(engine)
            await migrations.upgrade(engine)
            after = await migrations.current_revision(engine)
        finally:
            await engine.dispose()
        log.info("migrated", before=before, after=after)

    asyncio.run(main())


deadletters = typer.Typer(help="Pings that failed repeatedly (Redis Streams mode).")
app.add_typer(deadletters, name="deadletters")


def _dead_letters_run(action: str, ids: list[str] | None = None) -> None:
    settings = _settings()
    if not settings.redis_url:
        typer.echo("workpulse: dead letters exist only with WORKPULSE_REDIS_URL", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        redis = Redis.from_url(settings.redis_url or "")
        try:
            letters = DeadLetters(redis, Keys(settings.redis_prefix))
            if action == "list":
                for ident, fields in await letters.list(count=1000):
                    count = len(json.loads(fields.get("p") or "[]"))
                    typer.echo(
                        f"{ident}\t{fields.get('failed_at', '')}\t{count} pings\t"
                        f"{fields.get('reason', '')}"
                    )
            else:
                replayed = await letters.replay(ids or None)
                typer.echo(f"replayed {replayed} dead letter(s)")
        finally:
            await redis.aclose()

    asyncio.run(run())


@deadletters.command("list")
def deadletters_list() -> None:
    """List dead letters: id, when, how many pings, why."""
    _dead_letters_run("list")


@deadletters.command("replay")
def deadletters_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids to replay (default: all).")] = None,
) -> None:
    """Put dead letters back on the ping stream, for the workers to try again."""
    _dead_letters_run("replay", ids)


jobs = typer.Typer(help="Scheduled jobs: the run log the scheduler processes share.")
app.add_typer(jobs, name="jobs")


@jobs.command("list")
def jobs_list(
    job: Annotated[str | None, typer.Option(help="Only this job's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many runs.")] = 50,
) -> None:
    """The latest job runs: scheduled time, start, end, outcome, attempt, what it did or why
    it failed."""
    settings = _settings()

    async def read() -> Sequence[JobRun]:
        engine = bootstrap.database_engine(settings, application_name="workpulse-jobs")
        try:
            return await SqlJobRuns(engine).recent(job=job, limit=limit)
        finally:
            await engine.dispose()

    runs = asyncio.run(read())
    table = Table(title=f"job runs (latest {limit})")
    for column in ("job", "scheduled for", "started", "finished", "outcome", "attempt", "detail"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run.job,
            run.scheduled_for.isoformat(timespec="seconds"),
            run.started_at.isoformat(timespec="seconds"),
            "" if run.finished_at is None else run.finished_at.isoformat(timespec="seconds"),
            run.outcome.value,
            str(run.attempt),
            run.error or run.detail or "",
        )
    Console().print(table)


def main() -> None:
    app(prog_name="workpulse")


if __name__ == "__main__":
    main()
