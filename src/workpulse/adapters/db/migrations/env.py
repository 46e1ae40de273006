"""Alembic environment: runs on the connection `workpulse migrate` hands over (see migrate.py)."""

from __future__ import annotations

from alembic import context

from workpulse.adapters.db.migrate import include_name
from workpulse.adapters.db.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    include_name=include_name,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
