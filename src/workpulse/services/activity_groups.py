"""Single activity events written in groups: the events that arrive while earlier writes are
under way share one read and one statement.

An agent posts its events one at a time, and under load many requests wait at once. Written
one by one, each event costs two round trips, a commit with its WAL flush, and (on one busy
session) a wait for the row lock held through the previous event's commit: in
bench/sessions the database and the driver took most of a request's CPU. Here a request hands
its checked event to `ActivityGroups.record` and waits; at most `in_flight` groups are being
written at a time, and each takes what queued since the last one started (up to `largest`),
except events of a session that a group in flight is writing, which wait for the next one. A
group reads its sessions in one statement, applies the same checks as the one-event path, and
writes with the store's `record_many`: every event at most once, counters added in the
database, and a session whose row another transaction holds is skipped, so it holds up no one
else; the group answers the rest, then writes the held sessions' events again, waiting for
their rows. With nothing else in flight a request is written at once, alone: waiting is only
ever for a write already under way.

An event the group did not write gets None: a stopped or foreign session, a repeat, an event
out of bounds or without room, a lost deadlock or any other failure of the group but the
database being unreachable. The caller then takes the one-event
path, which writes it if it fits after all, or says why not, exactly as before. Each session a
group changed is announced once (`SESSION_UPDATE`), with its counters after all of the group's
events.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from workpulse.domain.errors import StorageUnavailable, WorkPulseError
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
    Entry,
    Notifier,
    OwnedPing,
    PartitionKeeper,
    SessionUnitOfWorkFactory,
)
from workpulse.services.sessions import announce

log = logging.getLogger(__name__)

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
        notifier: Notifier,
        partitions: PartitionKeeper,
        wake_worker: Callable[[], None],
        *,
        in_flight: int = IN_FLIGHT,
        largest: int = LARGEST,
    ) -> None:
        self._uow_factory = uow_factory
        self._notifier = notifier
        self._partitions = partitions
        self._wake_worker = wake_worker
        self._in_flight = in_flight
        self._largest = largest
        self._queue: list[_Waiting] = []
        self._busy: set[WorkSessionId] = set()  # sessions of the groups being written
        self._writing = 0
        self._kicked = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Counted for the metrics (read at scrape time) and tests: groups run, the events
        # they carried, the events they left to the one-event path, and groups that failed.
        self.groups = 0
        self.events = 0
        self.unwritten = 0
        self.failed = 0

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
        self._kick_soon()
        return await answer

    def _kick_soon(self) -> None:
        if not self._kicked and self._writing < self._in_flight:
            # After the requests already read in this turn of the loop have queued theirs.
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._kick)

    def _kick(self) -> None:
        """Start groups while slots are free. A group takes the queued events (oldest first,
        up to `largest`) whose sessions no group in flight is writing; the others wait for the
        next group, so two groups of this process never contend for one session's row."""
        self._kicked = False
        while self._queue and self._writing < self._in_flight:
            group: list[_Waiting] = []
            later: list[_Waiting] = []
            for waiting in self._queue:
                free = waiting.session_id not in self._busy and len(group) < self._largest
                (group if free else later).append(waiting)
            if not group:
                return  # all for sessions being written: the next group starts when one ends
            self._queue = later
            sessions = {w.session_id for w in group}
            self._busy |= sessions
            self._writing += 1
            # A context of its own: the group serves many requests, not the first one's.
            task = asyncio.create_task(self._write(group, sessions), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._writing -= 1
        if self._queue:
            self._kick_soon()

    async def _write(self, group: Sequence[_Waiting], sessions: set[WorkSessionId]) -> None:
        try:
            held = await self._settle(group, wait=False)
            if held:
                # Sessions another transaction held (another API process's group, a stop, a
                # batch): their events again, alone, waiting for those rows. The rest of the
                # group has its answers already, and its sessions are free for the next group.
                still = {w.session_id for w in held}
                self._busy -= sessions - still
                sessions &= still
                if self._queue:
                    self._kick_soon()
                await self._settle(held, wait=True)
        except BaseException:
            for waiting in group:  # cancelled (the process is stopping): nobody waits forever
                waiting.answer.cancel()
            raise
        finally:
            self._busy -= sessions
        self.groups += 1
        self.events += len(group)

    async def _settle(self, group: Sequence[_Waiting], *, wait: bool) -> list[_Waiting]:
        """Write the group and answer its requests, but for those whose session another
        transaction held (without `wait`), which are returned."""
        try:
            answers, held = await self._written(group, wait=wait)
        except StorageUnavailable as exc:
            for waiting in group:  # each would meet it alone too: 503 with Retry-After
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return []
        except Exception:
            # A lost deadlock (TransientConflict), or a failure of one event's row that should
            # not become every event's 500: each takes the one-event path, alone.
            log.warning("activity group not written; its events go one by one", exc_info=True)
            self.failed += 1
            answers, held = [None] * len(group), frozenset()
        again: list[_Waiting] = []
        for waiting, answer in zip(group, answers, strict=True):
            if answer is None and waiting.session_id in held:
                again.append(waiting)
            elif not waiting.answer.done():
                self.unwritten += answer is None
                waiting.answer.set_result(answer)
        return again

    async def _written(
        self, group: Sequence[_Waiting], *, wait: bool
    ) -> tuple[list[WorkSession | None], frozenset[WorkSessionId]]:
        keys = list(dict.fromkeys((w.principal.organization_id, w.session_id) for w in group))
        ping_starts = [w.usage.start for w in group if w.usage is not None]
        if ping_starts:  # before the transaction: creating a month's partition takes its own
            await self._partitions.ensure(ping_starts)
        # Without pings the one statement is its own transaction; with them, they join it.
        async with self._uow_factory(autocommit=not ping_starts) as uow:
            found = await uow.sessions.get_many(keys)
            checked: list[tuple[int, WorkSession]] = []
            earliest: dict[WorkSessionId, datetime] = {}
            for place, waiting in enumerate(group):
                session = _own(found.get(waiting.session_id), waiting.principal)
                if session is None:
                    continue
                activity, bound = waiting.activity, waiting.max_duration
                try:
                    check_activity(session, activity, max_duration=bound, now=waiting.now)
                except WorkPulseError:
                    continue
                checked.append((place, session))
                earliest[session.id] = min(earliest.get(session.id, waiting.now), waiting.now)
            # Each session's bound at the earliest of its requests' times: never more room
            # than any of them would have had alone.
            limits = {sid: counter_limit_seconds(found[sid], now) for sid, now in earliest.items()}
            entries = [Entry(s, group[place].activity, limits[s.id]) for place, s in checked]
            answers: list[WorkSession | None] = [None] * len(group)
            newest: dict[WorkSessionId, WorkSession] = {}
            results = await uow.sessions.record_many(entries, wait=wait)
            for (place, _), written in zip(checked, results.sessions, strict=True):
                answers[place] = written
                if written is not None:
                    newest[written.id] = written
            pings = [
                OwnedPing(w.principal.organization_id, w.principal.user_id, w.usage)
                for w, written in zip(group, answers, strict=True)
                if written is not None and w.usage is not None
            ]
            if pings:
                await uow.pings.add(pings, pending=True)
                uow.after_commit(self._woken)
            for session in newest.values():
                announce(uow, self._notifier, session, "activity")
            await uow.commit()
        return answers, frozenset() if wait else results.held

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
