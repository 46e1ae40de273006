"""ActivityGroups' own bookkeeping, with a fake unit of work: an unreachable database reaches
every waiting request, any other failure sends each back to the one-event path, no more groups
are written at once than allowed, and a session is written by one group at a time. The writes
themselves are tested against the real databases in test_sessions.py and
tests/adapters/test_session_store.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pytest

from workpulse.domain.errors import StorageUnavailable, TransientConflict
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId, WorkSessionId
from workpulse.domain.roles import Principal, Role
from workpulse.domain.sessions import Activity, ActivityType
from workpulse.services.activity_groups import ActivityGroups

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class SilentNotifier:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing was written, nothing is announced")


class NoPartitions:
    async def ensure(self, moments: Iterable[datetime]) -> None:
        raise AssertionError("nothing was written, no partition is needed")


def no_wake() -> None:
    raise AssertionError("nothing was written, no worker is woken")


class FailingDatabase:
    """A unit-of-work factory whose every unit of work fails as it opens."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.opened = 0

    def __call__(self, *, readonly: bool = False, autocommit: bool = False) -> FailingDatabase:
        return self

    async def __aenter__(self) -> Any:
        self.opened += 1
        raise self.error

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return False


def event(k: int) -> Activity:
    return Activity(
        event_id=f"e{k}",
        activity_type=ActivityType.ACTIVE,
        duration_seconds=10,
        timestamp=NOW,
        app_name=None,
        url=None,
        domain=None,
    )


async def record_three(database: FailingDatabase) -> list[object]:
    groups = ActivityGroups(database, SilentNotifier(), NoPartitions(), no_wake)
    principal = Principal(
        UserId(uuid.uuid4()),
        OrganizationId(uuid.uuid4()),
        Role.OWNER,
        DeviceSessionId(uuid.uuid4()),
    )
    session_id = WorkSessionId(uuid.uuid4())
    return await asyncio.gather(
        *(
            groups.record(principal, session_id, event(k), max_duration=3600, now=NOW)
            for k in range(3)
        ),
        return_exceptions=True,
    )


async def test_a_database_failure_reaches_every_request_of_the_group() -> None:
    database = FailingDatabase(StorageUnavailable())
    outcomes = await record_three(database)
    assert database.opened == 1  # the three arrived together: one group
    assert all(isinstance(o, StorageUnavailable) for o in outcomes)


@pytest.mark.parametrize("error", [TransientConflict(), RuntimeError("one bad row")])
async def test_other_failures_send_every_request_back_to_the_one_event_path(
    error: Exception,
) -> None:
    database = FailingDatabase(error)
    assert await record_three(database) == [None, None, None]


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_no_more_groups_are_written_at_once_than_allowed(in_flight: int) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    state = {"now": 0, "most": 0, "opened": 0}

    class SlowDatabase(FailingDatabase):
        async def __aenter__(self) -> Any:
            state["opened"] += 1
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            entered.set()
            await release.wait()
            state["now"] -= 1
            raise TransientConflict()

    groups = ActivityGroups(
        SlowDatabase(TransientConflict()),
        SilentNotifier(),
        NoPartitions(),
        no_wake,
        in_flight=in_flight,
    )
    principal = Principal(
        UserId(uuid.uuid4()),
        OrganizationId(uuid.uuid4()),
        Role.OWNER,
        DeviceSessionId(uuid.uuid4()),
    )
    first = asyncio.ensure_future(
        groups.record(principal, WorkSessionId(uuid.uuid4()), event(0), max_duration=60, now=NOW)
    )
    await entered.wait()
    rest = [
        asyncio.ensure_future(
            groups.record(
                principal, WorkSessionId(uuid.uuid4()), event(k), max_duration=60, now=NOW
            )
        )
        for k in range(1, 9)
    ]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(first, *rest) == [None] * 9
    assert state["most"] == in_flight
    # The first alone, then the eight that came while it was written: one group, as soon as a
    # slot was free (at once with two slots, after the first with one).
    assert state["opened"] == 2


async def test_a_session_being_written_waits_for_the_next_group() -> None:
    opened: list[set[WorkSessionId]] = []
    release = asyncio.Event()

    class Reading:
        """A unit of work whose session read notes the group's sessions, then fails."""

        sessions = property(lambda self: self)

        async def get_many(self, keys: list[tuple[object, WorkSessionId]]) -> Any:
            opened.append({session_id for _, session_id in keys})
            await release.wait()
            raise TransientConflict()

    class Recording(FailingDatabase):
        async def __aenter__(self) -> Any:
            return Reading()

    groups = ActivityGroups(
        Recording(TransientConflict()), SilentNotifier(), NoPartitions(), no_wake
    )
    principal = Principal(
        UserId(uuid.uuid4()),
        OrganizationId(uuid.uuid4()),
        Role.OWNER,
        DeviceSessionId(uuid.uuid4()),
    )
    hot, other = WorkSessionId(uuid.uuid4()), WorkSessionId(uuid.uuid4())

    def one(session_id: WorkSessionId, k: int) -> asyncio.Future[object]:
        return asyncio.ensure_future(
            groups.record(principal, session_id, event(k), max_duration=60, now=NOW)
        )

    first = one(hot, 0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [one(hot, 1), one(other, 2), one(hot, 3)]
    await asyncio.sleep(0.01)
    # The hot session is being written: only the other session's event started a group.
    assert opened == [{hot}, {other}]
    release.set()
    assert await asyncio.gather(first, *later) == [None] * 4
    assert opened == [{hot}, {other}, {hot}]  # both hot events, together, after the first
