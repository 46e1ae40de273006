"""The relay between the notifier and Socket.IO: publishers never wait for delivery, events keep
their order and go to the rooms of the audience rule. The emitter here is a recording fake (the
delivery side effect); end-to-end delivery is tested in tests/e2e/test_realtime*.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from workpulse.adapters.notifier import InProcessNotifier
from workpulse.adapters.realtime import EventRelay
from workpulse.domain.ids import OrganizationId, UserId

ORG = OrganizationId(uuid.uuid4())
ALICE = UserId(uuid.uuid4())


class StalledEmitter:
    """Records what it is asked to emit and then blocks until released, like a stuck peer."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], list[str]]] = []
        self.release = asyncio.Event()
        self.called = asyncio.Event()

    async def __call__(self, event: str, payload: Mapping[str, Any], rooms: list[str]) -> None:
        self.calls.append((event, dict(payload), rooms))
        self.called.set()
        await self.release.wait()


async def test_publishing_returns_while_delivery_is_stuck_and_a_full_queue_drops() -> None:
    relay, emitter, notifier = EventRelay(bound=10), StalledEmitter(), InProcessNotifier()
    relay.attach(emitter)
    notifier.listen(relay)
    await relay.start()
    try:
        await notifier.publish("SESSION_UPDATE", {"n": 0}, organization_id=ORG, user_id=ALICE)
        async with asyncio.timeout(10):
            await emitter.called.wait()  # the relay task is now stuck in the emitter
        for n in range(1, 25):
            await notifier.publish("SESSION_UPDATE", {"n": n}, organization_id=ORG, user_id=ALICE)
        assert len(emitter.calls) == 1
        assert relay.dropped == 14  # 10 wait in the queue
    finally:
        emitter.release.set()
        await relay.stop()
    assert [payload["n"] for _, payload, _ in emitter.calls] == list(range(11))


async def test_events_are_emitted_in_order_to_the_rooms_of_their_audience() -> None:
    relay, emitter, notifier = EventRelay(), StalledEmitter(), InProcessNotifier()
    emitter.release.set()
    relay.attach(emitter)
    notifier.listen(relay)
    await relay.start()
    for event in ("SESSION_UPDATE", "USER_ONLINE", "SOMETHING_NEW"):
        await notifier.publish(event, {"x": 1}, organization_id=ORG, user_id=ALICE)
    await relay.stop()
    assert emitter.calls == [
        ("SESSION_UPDATE", {"x": 1}, [f"user:{ALICE}", f"org:{ORG}"]),
        ("USER_ONLINE", {"x": 1}, [f"user:{ALICE}", f"org:{ORG}", f"team:{ORG}"]),
        ("SOMETHING_NEW", {"x": 1}, [f"user:{ALICE}", f"org:{ORG}"]),
    ]
