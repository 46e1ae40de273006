"""Running Alembic migrations programmatically, on either database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.runtime.environment import NameFilterParentNames
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def include_name(name: str | None, type_: str, parent_names: NameFilterParentNames) -> bool:
    # Partitions (added by later migrations on PostgreSQL) are not tables of their own.
    return not (type_ == "table" and name is not None and "_p20" in name)


def _upgrade(connection: sa.Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def compare(connection: sa.Connection) -> list[Any]:
    """Differences between the live schema and `tables.metadata` (empty when none drifted)."""
    from alembic.autogenerate import compare_metadata

    from workpulse.adapters.db.tables import metadata

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))
