"""The unit of work turns a deadlock into `TransientConflict` (rolled back whole, safe to run
again), which use cases retry, instead of an unexpected error."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from workpulse.adapters.db.engine import create_engine
from workpulse.adapters.db.uow import SqlDatabase
from workpulse.domain.errors import TransientConflict
from workpulse.domain.ids import OrganizationId
from workpulse.domain.organizations import Organization, OrganizationSettings


async def test_a_deadlock_victim_is_a_transient_conflict(postgresql_url: str) -> None:
    engine = create_engine(postgresql_url, pool_size=4, max_overflow=0)
    database = SqlDatabase(engine)
    try:
        ids = [OrganizationId(uuid.uuid4()) for _ in range(2)]
        async with database() as uow:
            for n, organization_id in enumerate(ids):
                await uow.organizations.add(
                    Organization(
                        organization_id,
                        f"D{n}",
                        "free",
                        "UTC",
                        OrganizationSettings(),
                        datetime.now(UTC),
                    )
                )
            await uow.commit()
        first_locked = [asyncio.Event(), asyncio.Event()]

        async def crossing(mine: int) -> None:
            async with database() as uow:
                await uow.organizations.lock(ids[mine])
                first_locked[mine].set()
                await first_locked[1 - mine].wait()
                await uow.organizations.lock(ids[1 - mine])  # each waits on the other
                await uow.commit()

        outcomes = await asyncio.gather(crossing(0), crossing(1), return_exceptions=True)
    finally:
        await engine.dispose()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1, outcomes  # PostgreSQL picks one victim; the other commits
    assert isinstance(failures[0], TransientConflict)
