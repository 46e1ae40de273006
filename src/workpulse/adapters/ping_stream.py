"""Redis Streams as the ping queue (with `WORKPULSE_REDIS_URL`).

API side: one Lua script per request checks the backlog bound, marks each ping's idempotency key
(`SET NX EX`) and appends the new pings as ONE stream entry, atomically; the API answers after
Redis acknowledged it. The keys live as long as a ping can be accepted (the organization's
horizon), so a repeat is always answered `duplicate`.

Worker side: a consumer group. Entries are acknowledged and deleted only after the database
committed them; entries of a consumer that died are claimed after `claim_idle_ms`; an entry
delivered `max_deliveries` times without success goes to a dead-letter stream with its reason.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workpulse.domain.errors import Unavailable
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.pings import Ping
from workpulse.services.ports import Backlogged, OwnedPing

GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Keys:
    """Redis key names under one prefix (tests and tenants of a shared Redis keep apart)."""

    prefix: str = "workpulse"

    @property
    def stream(self) -> str:
        return f"{self.prefix}:pings"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}:pings:dead"

    def seen(self, owned: OwnedPing) -> str:
        ping = owned.ping
        return (
            f"{self.prefix}:seen:{owned.organization_id}:{owned.user_id}:"
            f"{ping.device_id}:{ping.event_id}"
        )


# KEYS: stream, then one idempotency key per ping. ARGV: backlog bound, ttl, then the payloads.
_SUBMIT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return -1 end
local flags, fresh = {}, {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2]) then
    flags[#flags + 1] = 1
    fresh[#fresh + 1] = ARGV[i + 1]
  else
    flags[#flags + 1] = 0
  end
end
if #fresh > 0 then
  redis.call('XADD', KEYS[1], '*', 'p', '[' .. table.concat(fresh, ',') .. ']')
end
return flags
"""


def encode(owned: OwnedPing) -> str:
    p = owned.ping
    return orjson.dumps(
        [
            str(owned.organization_id),
            str(owned.user_id),
            p.device_id,
            p.event_id,
            p.app_name,
            p.url,
            p.domain,
            p.title,
            p.idle,
            p.start.isoformat(),
            None if p.end is None else p.end.isoformat(),
        ]
    ).decode()


def decode(payload: bytes | str) -> list[OwnedPing]:
    found = []
    # An entry is one request's pings: one organization and user, parsed once.
    ids: dict[str, uuid.UUID] = {}
    for org, user, device, event, app, url, domain, title, idle, start, end in orjson.loads(
        payload
    ):
        if org not in ids:
            ids[org] = uuid.UUID(org)
        if user not in ids:
            ids[user] = uuid.UUID(user)
        found.append(
            OwnedPing(
                OrganizationId(ids[org]),
                UserId(ids[user]),
                Ping(
                    device_id=device,
                    app_name=app,
                    url=url,
                    domain=domain,
                    title=title,
                    idle=bool(idle),
                    start=datetime.fromisoformat(start).astimezone(UTC),
                    end=None if end is None else datetime.fromisoformat(end).astimezone(UTC),
                    event_id=event,
                ),
            )
        )
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_Waiting = tuple[list[str], list[Any], "asyncio.Future[Any]"]
MAX_GROUP = 256  # script calls per round trip


class RedisPingQueue:
    """Requests that arrive while a round trip to Redis is in flight share the next one: a
    pipeline of their script calls, each still atomic and answered on its own. That halves the
    API's CPU per single-ping submission (bench/ingest/submit_cost.py: ~115 → ~55 µs)."""

    def __init__(
        self, redis: Redis, keys: Keys, *, backlog_bound: int, retry_after: int = 5
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._bound = backlog_bound
        self._retry_after = retry_after
        self._script = redis.register_script(_SUBMIT)
        self._waiting: deque[_Waiting] = deque()
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, pings: Sequence[OwnedPing], *, dedupe_for: timedelta) -> Sequence[bool]:
        keys = [self._keys.stream, *(self._keys.seen(p) for p in pings)]
        ttl = max(1, int(dedupe_for.total_seconds()))
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, [self._bound, ttl, *map(encode, pings)], answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_groups())
        try:
            reply = await answer
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Not acknowledged, so not accepted: the client retries (503), and should the script
            # have run after all, the retry is answered `duplicate`.
            raise Unavailable(self._retry_after, "the ingestion queue is unavailable") from exc
        if reply == -1:
            raise Backlogged(self._retry_after)
        return [bool(flag) for flag in reply]

    async def _send_groups(self) -> None:
        while self._waiting:
            group = [self._waiting.popleft() for _ in range(min(len(self._waiting), MAX_GROUP))]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for keys, args, _ in group:
                        await self._script(keys=keys, args=args, client=pipe)
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the whole round trip failed: each request learns why
                for _, _, answer in group:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for (_, _, answer), reply in zip(group, replies, strict=True):
                if answer.done():  # its request was cancelled (the client went away)
                    continue
                if isinstance(reply, Exception):
                    answer.set_exception(reply)
                else:
                    answer.set_result(reply)

    async def backlog(self) -> int:
        return int(await self._redis.xlen(self._keys.stream))


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    pings: list[OwnedPing] | None  # None when the entry cannot be decoded
    raw: dict[str, Any]
    problem: str | None = None


def _entry(entry_id: bytes | str, fields: dict[Any, Any]) -> Entry:
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    try:
        return Entry(ident, decode(raw["p"]), raw)
    except (KeyError, ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        return Entry(ident, None, raw, problem=f"undecodable entry: {exc!r}")


class StreamConsumer:
    """One worker's view of the consumer group."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        name: str | None = None,
    ) -> None:
        self._redis = redis
        self._stream = keys.stream
        self._dead = keys.dead_letters
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    async def join(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, block_ms: int | None) -> list[Entry]:
        """Up to `count` new entries, waiting up to `block_ms` for one (None: no wait)."""
        reply: Any = await self._redis.xreadgroup(
            GROUP, self.name, {self._stream: ">"}, count=count, block=block_ms
        )
        return [_entry(i, f) for _, entries in reply or [] for i, f in entries if f]

    async def claim_stale(self, count: int) -> list[Entry]:
        """Entries that another (dead) consumer held longer than `claim_idle_ms`."""
        reply = await self._redis.xautoclaim(
            self._stream, GROUP, self.name, self.claim_idle_ms, start_id="0-0", count=count
        )
        return [_entry(i, f) for i, f in reply[1] if f]

    async def deliveries(self, entry_id: str) -> int:
        found = await self._redis.xpending_range(self._stream, GROUP, entry_id, entry_id, 1)
        return int(found[0]["times_delivered"]) if found else 0

    async def done(self, ids: Sequence[str]) -> None:
        if ids:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self._stream, GROUP, *ids)
                pipe.xdel(self._stream, *ids)
                await pipe.execute()

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self._dead,
                {
                    "p": entry.raw.get("p", ""),
                    "reason": reason[:1000],
                    "entry": entry.id,
                    "failed_at": datetime.now(UTC).isoformat(),
                },
            )
            pipe.xack(self._stream, GROUP, entry.id)
            pipe.xdel(self._stream, entry.id)
            await pipe.execute()


class DeadLetters:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._stream = keys.stream
        self._dead = keys.dead_letters

    async def list(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        rows: Any = await self._redis.xrange(self._dead, count=count)
        return [(_text(i), {_text(k): _text(v) for k, v in fields.items()}) for i, fields in rows]

    async def replay(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters back on the ping stream (all, or the given ids)."""
        replayed = 0
        for ident, fields in await self.list(count=100_000):
            if ids is not None and ident not in ids:
                continue
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self._stream, {"p": fields["p"]})
                pipe.xdel(self._dead, ident)
                await pipe.execute()
            replayed += 1
        return replayed

    async def count(self) -> int:
        return int(await self._redis.xlen(self._dead))
