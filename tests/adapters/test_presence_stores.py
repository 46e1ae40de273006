"""The presence stores' contract, run against both: Redis (shared by processes) and the embedded
in-process store. Time is passed in, so expiry is tested without waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from workpulse.adapters.presence import LocalPresence, RedisPresence
from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.presence import Sighting
from workpulse.services.ports import Liveness, PresenceStore, UserRef

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
Stores = Callable[[], PresenceStore]


@pytest.fixture(params=["redis", "local"])
async def stores(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Stores]:
    """A factory of stores sharing one state: with Redis, as two processes would."""
    if request.param == "local":
        local = LocalPresence()
        yield lambda: local
        return
    redis = Redis.from_url(redis_url)
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield lambda: RedisPresence(redis, prefix=prefix)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def someone(organization: OrganizationId | None = None) -> UserRef:
    return UserRef(organization or OrganizationId(uuid.uuid4()), UserId(uuid.uuid4()))


def alive(user: UserRef, connection: str, at: datetime, **extra: Sighting) -> Liveness:
    return Liveness(user, connection, at + TTL, **extra)


async def test_the_first_connection_makes_a_user_online_once(stores: Stores) -> None:
    store, alice = stores(), someone()
    assert await store.keep_alive([alive(alice, "p1:a", T0)], T0) == [alice]
    assert await store.keep_alive([alive(alice, "p1:b", T0)], T0) == []
    assert await store.keep_alive([alive(alice, "p1:a", T0 + TTL / 2)], T0 + TTL / 2) == []


async def test_closing_one_of_two_connections_keeps_the_user_online(stores: Stores) -> None:
    store, alice = stores(), someone()
    await store.keep_alive([alive(alice, "p1:a", T0), alive(alice, "p2:b", T0)], T0)
    assert await store.drop(alice, "p1:a", T0) is False
    assert (await store.records(alice.organization_id, [alice.user_id], T0))[alice.user_id].online
    assert await store.drop(alice, "p2:b", T0 + timedelta(seconds=1)) is True
    assert await store.drop(alice, "p2:b", T0 + timedelta(seconds=1)) is False
    record = (await store.records(alice.organization_id, [alice.user_id], T0))[alice.user_id]
    assert not record.online
    assert record.last_seen == T0 + timedelta(seconds=1)


async def test_racing_last_disconnects_on_two_processes_announce_offline_once(
    stores: Stores,
) -> None:
    one, two, alice = stores(), stores(), someone()
    await one.keep_alive([alive(alice, "p1:a", T0), alive(alice, "p2:b", T0)], T0)
    answers = await asyncio.gather(one.drop(alice, "p1:a", T0), two.drop(alice, "p2:b", T0))
    assert sorted(answers) == [False, True]


async def test_connections_that_stop_being_refreshed_expire_and_the_user_goes_offline_once(
    stores: Stores,
) -> None:
    one, two = stores(), stores()
    alice, bob = someone(), someone()
    await one.keep_alive([alive(alice, "crashed:a", T0), alive(bob, "crashed:b", T0)], T0)
    later = T0 + TTL / 2
    await two.keep_alive([alive(bob, "alive:b", later)], later)
    assert await two.expire(T0 + TTL - timedelta(seconds=1)) == []
    gone = await asyncio.gather(one.expire(T0 + TTL), two.expire(T0 + TTL))
    assert sorted(gone, key=len) == [[], [alice]]
    records = await one.records(alice.organization_id, [alice.user_id], T0 + TTL)
    assert not records[alice.user_id].online
    assert (await one.records(bob.organization_id, [bob.user_id], T0 + TTL))[bob.user_id].online
    # A connection that comes back after the expiry is announced again.
    assert await one.keep_alive([alive(alice, "p3:a", T0 + TTL)], T0 + TTL) == [alice]


async def test_an_agents_sighting_is_kept_with_its_deadline(stores: Stores) -> None:
    store, alice = stores(), someone()
    seen = Sighting(app_name="Code", domain="github.com", idle=True, at=T0)
    assert await store.keep_alive([alive(alice, "agent", T0, sighting=seen)], T0) == [alice]
    record = (await store.records(alice.organization_id, [alice.user_id], T0))[alice.user_id]
    assert record.online
    assert record.sighting == seen
    assert record.agent_until == T0 + TTL
    assert record.last_seen == T0


async def test_records_are_per_organization_and_skip_unknown_users(stores: Stores) -> None:
    store, alice = stores(), someone()
    await store.keep_alive([alive(alice, "p1:a", T0)], T0)
    elsewhere = OrganizationId(uuid.uuid4())
    assert await store.records(elsewhere, [alice.user_id], T0) == {}
    stranger = UserId(uuid.uuid4())
    assert set(await store.records(alice.organization_id, [alice.user_id, stranger], T0)) == {
        alice.user_id
    }
