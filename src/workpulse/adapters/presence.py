"""Presence stores: live connections per user with a deadline each, in Redis (shared by every
process) or in this process (embedded mode), and the hot path's in-memory buffer of pings.

Redis keys, under the configured prefix P:
- `P:presence:online` sorted set of "<org>:<user>" for every user announced online, scored by
  the latest deadline of their connections: a sweep finds the expired ones with one range query.
- `P:presence:conns:<org>:<user>` sorted set of connection ids scored by their deadline.
- `P:presence:info:<org>:<user>` hash: `seen` (last moment alive), `agent_until`, `sighting`
  (JSON of the agent's latest ping), kept for `info_ttl` after the last write.
Each change is one Lua script, so two processes never both announce the same transition.
Scripts touch keys derived from the user key (not all passed in KEYS): fine on one Redis, not
on Redis Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from redis.asyncio import Redis

from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.presence import RawSighting, Record, Sighting
from workpulse.services.ports import Liveness, UserRef

INFO_TTL_SECONDS = 30 * 86_400
_CHUNK = 200  # connections per script call: Redis runs one script at a time

# ARGV: now, info ttl, conns key prefix, info key prefix, then per connection: user key,
# connection id, deadline, sighting JSON or "". Returns the user keys this made online.
_KEEP_ALIVE = """
local now = tonumber(ARGV[1])
local made = {}
for i = 5, #ARGV, 4 do
  local who, conns, info = ARGV[i], ARGV[3] .. ARGV[i], ARGV[4] .. ARGV[i]
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
  redis.call('ZADD', conns, ARGV[i + 2], ARGV[i + 1])
  local top = redis.call('ZREVRANGE', conns, 0, 0, 'WITHSCORES')
  redis.call('EXPIRE', conns, math.ceil(tonumber(top[2]) - now) + 60)
  if not redis.call('ZSCORE', KEYS[1], who) then
    table.insert(made, who)
  end
  redis.call('ZADD', KEYS[1], top[2], who)
  redis.call('HSET', info, 'seen', ARGV[1])
  if ARGV[i + 3] ~= '' then
    redis.call('HSET', info, 'agent_until', ARGV[i + 2], 'sighting', ARGV[i + 3])
  end
  redis.call('EXPIRE', info, ARGV[2])
end
return made
"""

_DROP = """
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('HSET', KEYS[3], 'seen', ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #top == 0 then
  return redis.call('ZREM', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[1], 'XX', top[2], ARGV[2])
return 0
"""

_EXPIRE = """
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local gone = {}
for _, who in ipairs(due) do
  local conns = ARGV[2] .. who
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
  local top = redis.call('ZREVRANGE', conns, 0, 0, 'WITHSCORES')
  if #top == 0 then
    redis.call('ZREM', KEYS[1], who)
    table.insert(gone, who)
  else
    redis.call('ZADD', KEYS[1], top[2], who)
  end
end
return gone
"""


def _seconds(moment: datetime) -> str:
    return repr(moment.timestamp())


def _moment(raw: bytes | str | None) -> datetime | None:
    if raw is None:
        return None
    return datetime.fromtimestamp(float(raw), UTC)


def _user(raw: bytes | str) -> UserRef:
    text = raw.decode() if isinstance(raw, bytes) else raw
    organization, _, user = text.partition(":")
    return UserRef(OrganizationId(UUID(organization)), UserId(UUID(user)))


def _sighting_json(sighting: Sighting | None) -> str:
    if sighting is None:
        return ""
    return json.dumps(
        {
            "app_name": sighting.app_name,
            "domain": sighting.domain,
            "idle": sighting.idle,
            "at": sighting.at.isoformat(),
        }
    )


def _sighting(raw: bytes | str | None) -> Sighting | None:
    if not raw:
        return None
    data = json.loads(raw)
    return Sighting(
        app_name=data["app_name"],
        domain=data["domain"],
        idle=bool(data["idle"]),
        at=datetime.fromisoformat(data["at"]),
    )


class RedisPresence:
    def __init__(self, redis: Redis, *, prefix: str, info_ttl_seconds: int = INFO_TTL_SECONDS):
        self._redis = redis
        self._online = f"{prefix}:presence:online"
        self._conns = f"{prefix}:presence:conns:"
        self._info = f"{prefix}:presence:info:"
        self._info_ttl = str(info_ttl_seconds)
        self._keep_alive = redis.register_script(_KEEP_ALIVE)
        self._drop = redis.register_script(_DROP)
        self._expire = redis.register_script(_EXPIRE)

    @staticmethod
    def _who(user: UserRef) -> str:
        return f"{user.organization_id}:{user.user_id}"

    def _keys(self, user: UserRef) -> list[str]:
        who = self._who(user)
        return [self._online, self._conns + who, self._info + who]

    async def keep_alive(self, connections: Sequence[Liveness], now: datetime) -> Sequence[UserRef]:
        """One script call per chunk of connections: a heartbeat of a thousand sockets is two
        round trips and little CPU in this process."""
        made_online: dict[UserRef, None] = {}
        for start in range(0, len(connections), _CHUNK):
            args = [_seconds(now), self._info_ttl, self._conns, self._info]
            for live in connections[start : start + _CHUNK]:
                args += [
                    self._who(live.user),
                    live.connection,
                    _seconds(live.until),
                    _sighting_json(live.sighting),
                ]
            for raw in await self._keep_alive(keys=[self._online], args=args):
                made_online[_user(raw)] = None
        return list(made_online)

    async def drop(self, user: UserRef, connection: str, now: datetime) -> bool:
        gone = await self._drop(
            keys=self._keys(user),
            args=[_seconds(now), self._who(user), connection, self._info_ttl],
        )
        return bool(int(gone))

    async def expire(self, now: datetime) -> Sequence[UserRef]:
        gone: list[UserRef] = []
        while True:
            batch = await self._expire(
                keys=[self._online], args=[_seconds(now), self._conns, _CHUNK]
            )
            gone.extend(_user(raw) for raw in batch)
            if len(batch) < _CHUNK:
                return gone

    async def records(
        self, organization_id: OrganizationId, user_ids: Sequence[UserId], now: datetime
    ) -> Mapping[UserId, Record]:
        if not user_ids:
            return {}
        whos = [self._who(UserRef(organization_id, u)) for u in user_ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(self._online, whos)
            for who in whos:
                pipe.hgetall(self._info + who)
            answers = await pipe.execute()
        scores, infos = answers[0], answers[1:]
        found = {}
        for user_id, score, info in zip(user_ids, scores, infos, strict=True):
            if score is None and not info:
                continue
            found[user_id] = Record(
                online=score is not None,
                last_seen=_moment(info.get(b"seen")),
                agent_until=_moment(info.get(b"agent_until")),
                sighting=_sighting(info.get(b"sighting")),
            )
        return found


@dataclass
class _Person:
    connections: dict[str, datetime] = field(default_factory=dict)
    online: bool = False
    last_seen: datetime | None = None
    agent_until: datetime | None = None
    sighting: Sighting | None = None

    def prune(self, now: datetime) -> None:
        for connection in [c for c, until in self.connections.items() if until <= now]:
            del self.connections[connection]


class LocalPresence:
    """The same rules in this process's memory: the embedded mode's one process."""

    def __init__(self) -> None:
        self._people: dict[UserRef, _Person] = {}

    async def keep_alive(self, connections: Sequence[Liveness], now: datetime) -> Sequence[UserRef]:
        made_online: dict[UserRef, None] = {}
        for live in connections:
            person = self._people.setdefault(live.user, _Person())
            person.prune(now)
            person.connections[live.connection] = live.until
            person.last_seen = now
            if live.sighting is not None:
                person.agent_until, person.sighting = live.until, live.sighting
            if not person.online:
                person.online = True
                made_online[live.user] = None
        return list(made_online)

    async def drop(self, user: UserRef, connection: str, now: datetime) -> bool:
        person = self._people.get(user)
        if person is None:
            return False
        person.connections.pop(connection, None)
        person.prune(now)
        person.last_seen = now
        if person.online and not person.connections:
            person.online = False
            return True
        return False

    async def expire(self, now: datetime) -> Sequence[UserRef]:
        gone = []
        for user, person in self._people.items():
            person.prune(now)
            if person.online and not person.connections:
                person.online = False
                gone.append(user)
        return gone

    async def records(
        self, organization_id: OrganizationId, user_ids: Sequence[UserId], now: datetime
    ) -> Mapping[UserId, Record]:
        found = {}
        for user_id in user_ids:
            person = self._people.get(UserRef(organization_id, user_id))
            if person is not None:
                found[user_id] = Record(
                    online=person.online,
                    last_seen=person.last_seen,
                    agent_until=person.agent_until,
                    sighting=person.sighting,
                )
        return found


class SightingBuffer:
    """The latest ping per user since the last flush: a dict write on the hot path."""

    def __init__(self) -> None:
        self._latest: dict[UserRef, RawSighting] = {}

    def saw(self, user: UserRef, sighting: RawSighting) -> None:
        current = self._latest.get(user)
        if current is None or sighting.moment >= current.moment:
            self._latest[user] = sighting

    def drain(self) -> dict[UserRef, RawSighting]:
        latest, self._latest = self._latest, {}
        return latest
