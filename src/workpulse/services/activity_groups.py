"""Single activity events written in groups: the events that arrive while earlier writes are
under way share one read and one statement.

An agent posts its events one at a time, and under load many requests wait at once. Written
one by one, each event costs two round trips, a commit with its WAL flush, and (on one busy
session) a wait for the row lock held through the previous event's commit: in
bench/sessions the database and the driver took most of a request's CPU. Here a request hands
its checked event to `ActivityGroups.record` and waits; at most `in_flight` groups are being
written at a time, and each takes everything that arrived since the last one started (up to
`largest`). A group reads its sessions in one statement, applies the same checks as the
one-event path, and writes with the store's `record_many`: every event at most once, counters
added in the database, sessions locked in id order. With nothing else in flight a request
is written at once, alone: waiting is only ever for a write already under way.

An event the group did not write gets None: a stopped or foreign session, a repeat, an event
out of bounds or without room, or a group that lost a deadlock. The caller then takes the
one-event path, which writes it if it fits after all, or says why not, exactly as before.
Each session a group changed is announced once (`SESSION_UPDATE`), with its counters after
all of the group's events.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from workpulse.domain.errors import TransientConflict, WorkPulseError
from workpulse.domain.ids import WorkSessionId
from workpulse.domain.pings import Ping
from workpulse.domain.roles import Principal
from workpulse.domain.sessions import (
    Activity,
    WorkSession,
    check_activity,
    counter_limit_seconds,
)
from workpulse.services.ports import (
    Clock,
    Entry,
    Notifier,
    OwnedPing,
    PartitionKeeper,
    SessionUnitOfWorkFactory,
)
from workpulse.services.sessions import announce

IN_FLIGHT = 4
LARGEST = 256


@dataclass(frozen=True, slots=True)
class _Waiting:
    principal: Principal
    session_id: WorkSessionId
    activity: Activity
    usage: Ping | None  # the span ping the event also stands for, if it has an app or URL
    max_duration: int
    now: datetime  # the request's
    answer: asyncio.Future[WorkSession | None]


class ActivityGroups:
    def __init__(
        self,
        uow_factory: SessionUnitOfWorkFactory,
        clock: Clock,
        notifier: Notifier,
        partitions: PartitionKeeper,
        wake_worker: Callable[[], None],
        *,
        in_flight: int = IN_FLIGHT,
        largest: int = LARGEST,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._notifier = notifier
        self._partitions = partitions
        self._wake_worker = wake_worker
        self._in_flight = in_flight
        self._largest = largest
        self._queue: list[_Waiting] = []
        self._writing = 0
        self._kicked = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.groups = 0  # groups written, and the events they carried: for tests and probes
        self.events = 0

    async def record(
        self,
        principal: Principal,
        session_id: WorkSessionId,
        activity: Activity,
        *,
        usage: Ping | None = None,
        max_duration: int,
        now: datetime,
    ) -> WorkSession | None:
        """The session after the group that wrote this event, or None if no group wrote it.
        `usage`: stored as a pending ping in the same transaction as the event."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[WorkSession | None] = loop.create_future()
        waiting = _Waiting(principal, session_id, activity, usage, max_duration, now, answer)
        self._queue.append(waiting)
        if not self._kicked and self._writing < self._in_flight:
            # After the requests already read in this turn of the loop have queued theirs.
            self._kicked = True
            loop.call_soon(self._kick)
        return await answer

    def _kick(self) -> None:
        self._kicked = False
        while self._queue and self._writing < self._in_flight:
            group, self._queue = self._queue[: self._largest], self._queue[self._largest :]
            self._writing += 1
            # A context of its own: the group serves many requests, not the first one's.
            task = asyncio.create_task(self._write(group), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._writing -= 1
        if self._queue and not self._kicked:
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._kick)

    async def _write(self, group: Sequence[_Waiting]) -> None:
        try:
            answers = await self._written(group)
        except TransientConflict:
            answers = [None] * len(group)  # each takes the one-event path, which runs again
        except BaseException as exc:
            for waiting in group:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.groups += 1
        self.events += len(group)
        for waiting, answer in zip(group, answers, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(answer)

    async def _written(self, group: Sequence[_Waiting]) -> list[WorkSession | None]:
        keys = list(dict.fromkeys((w.principal.organization_id, w.session_id) for w in group))
        # Without usage the one statement is its own transaction; with it, the pings join it.
        usage = any(w.usage is not None for w in group)
        async with self._uow_factory(autocommit=not usage) as uow:
            found = await uow.sessions.get_many(keys)
            now = self._clock.now()
            entries: list[Entry] = []
            places: list[int] = []
            limits: dict[WorkSessionId, int] = {}
            for place, waiting in enumerate(group):
                session = _own(found.get(waiting.session_id), waiting.principal)
                if session is None:
                    continue
                activity, bound = waiting.activity, waiting.max_duration
                try:
                    check_activity(session, activity, max_duration=bound, now=waiting.now)
                except WorkPulseError:
                    continue
                if session.id not in limits:
                    limits[session.id] = counter_limit_seconds(session, now)
                entries.append(Entry(session, activity, limits[session.id]))
                places.append(place)
            answers: list[WorkSession | None] = [None] * len(group)
            newest: dict[WorkSessionId, WorkSession] = {}
            for place, written in zip(places, await uow.sessions.record_many(entries), strict=True):
                answers[place] = written
                if written is not None:
                    newest[written.id] = written
            pings = [
                OwnedPing(w.principal.organization_id, w.principal.user_id, w.usage)
                for w, written in zip(group, answers, strict=True)
                if written is not None and w.usage is not None
            ]
            if pings:
                await self._partitions.ensure(p.ping.start for p in pings)
                await uow.pings.add(pings, pending=True)
                uow.after_commit(self._woken)
            for session in newest.values():
                announce(uow, self._notifier, session, "activity")
            await uow.commit()
        return answers

    async def _woken(self) -> None:
        self._wake_worker()


def _own(session: WorkSession | None, principal: Principal) -> WorkSession | None:
    """The session if it is the principal's own and active (what the one-event path's `own`
    and its first check ask), else None."""
    if (
        session is None
        or session.organization_id != principal.organization_id
        or session.user_id != principal.user_id
        or not session.active
    ):
        return None
    return session
