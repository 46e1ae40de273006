"""Two API processes share PostgreSQL and Redis: a revocation or a login lockout made through
one is honoured by the other. Each container stands for one process (its own caches)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import test_settings
from tests.services.test_identity import PASSWORD, authenticate, email, login, register
from workpulse import bootstrap
from workpulse.bootstrap import Container
from workpulse.domain.errors import InvalidCredentials, SessionRevoked, TooManyAttempts
from workpulse.services import identity
from workpulse.services.identity import Registration


@pytest.fixture
async def two_processes(
    postgresql_url: str, redis_url: str
) -> AsyncIterator[tuple[Container, Container]]:
    # A long cache TTL: only the Redis invalidation can make the second process notice.
    settings = test_settings(
        postgresql_url,
        redis_url=redis_url,
        session_cache_ttl_seconds=3600,
        login_failures_per_account=3,
    )
    async with bootstrap.build(settings) as first, bootstrap.build(settings) as second:
        yield first, second


async def eventually_revoked(container: Container, token: str) -> None:
    for _ in range(100):
        try:
            await authenticate(container, token)
        except SessionRevoked:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the other process still accepts a revoked session's token after 2 s")


async def test_a_logout_in_one_process_stops_the_token_in_the_other(
    two_processes: tuple[Container, Container],
) -> None:
    first, second = two_processes
    pair = await register(
        first, Registration(email=email(), password=PASSWORD, name="A", organization_name="X")
    )
    await authenticate(second, pair.access_token)  # the second process has it cached now
    principal = await authenticate(first, pair.access_token)
    await identity.logout(
        principal, uow_factory=first.database, cache=first.session_cache, clock=first.clock
    )
    await eventually_revoked(second, pair.access_token)


async def test_a_login_lockout_is_shared_by_every_process(
    two_processes: tuple[Container, Container],
) -> None:
    first, second = two_processes
    address = f"lock-{uuid.uuid4().hex[:8]}@example.com"
    await register(
        first, Registration(email=address, password=PASSWORD, name="L", organization_name="L")
    )
    for container in (first, second, first):
        with pytest.raises(InvalidCredentials):
            await login(container, address, password="wrong password")
    with pytest.raises(TooManyAttempts) as refused:
        await login(second, address)  # even the right password waits out the window
    assert refused.value.retry_after > 0
