"""Presence use cases with the in-process store: pings noted on the hot path, checked and
written in the background; transitions announced through the notifier (a recording fake)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from workpulse.adapters.presence import LocalPresence, SightingBuffer
from workpulse.domain.ids import DeviceSessionId, OrganizationId, UserId
from workpulse.domain.organizations import OrganizationSettings
from workpulse.domain.pings import Rejected, Rejection
from workpulse.domain.presence import Sighting, Status, status_of
from workpulse.domain.roles import Principal, Role
from workpulse.services import presence
from workpulse.services.ingest import ItemResult, Outcome, PingInput
from workpulse.services.ports import UserRef

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AGENT_TTL = timedelta(minutes=2)


class FixedClock:
    def __init__(self) -> None:
        self.moment = NOW

    def now(self) -> datetime:
        return self.moment


class RecordingNotifier:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(
        self,
        event: str,
        payload: Mapping[str, Any],
        *,
        organization_id: OrganizationId,
        user_id: UserId,
    ) -> None:
        self.published.append((event, dict(payload)))


def employee() -> Principal:
    return Principal(
        UserId(uuid.uuid4()),
        OrganizationId(uuid.uuid4()),
        Role.EMPLOYEE,
        DeviceSessionId(uuid.uuid4()),
    )


async def flushed(
    principal: Principal, items: list[PingInput | Rejected], settings: OrganizationSettings
) -> tuple[LocalPresence, RecordingNotifier]:
    store, notifier, buffer, clock = (
        LocalPresence(),
        RecordingNotifier(),
        SightingBuffer(),
        FixedClock(),
    )
    results = [
        ItemResult(Outcome.REJECTED if isinstance(i, Rejected) else Outcome.ACCEPTED) for i in items
    ]
    presence.agent_pinged(principal, items, results, sightings=buffer, clock=clock)

    async def settings_of(_: OrganizationId) -> OrganizationSettings:
        return settings

    await presence.flush_sightings(
        buffer.drain(),
        store=store,
        notifier=notifier,
        settings_of=settings_of,
        clock=clock,
        agent_ttl=AGENT_TTL,
    )
    return store, notifier


async def test_the_latest_ping_of_a_request_is_the_current_app_normalized() -> None:
    alice = employee()
    items: list[PingInput | Rejected] = [
        PingInput(app_name="Mail", timestamp=NOW - timedelta(seconds=20)),
        PingInput(app_name=" Firefox ", url="https://Docs.Python.org/3/", timestamp=NOW),
        PingInput(app_name="Terminal", timestamp=NOW - timedelta(seconds=10)),
        Rejected(Rejection.INVALID, "bad"),
    ]
    store, notifier = await flushed(alice, items, OrganizationSettings())
    record = (await store.records(alice.organization_id, [alice.user_id], NOW))[alice.user_id]
    assert record.sighting == Sighting(
        app_name="Firefox", domain="docs.python.org", idle=False, at=NOW
    )
    assert record.agent_until == NOW + AGENT_TTL
    assert status_of(record, NOW) is Status.ONLINE
    assert [event for event, _ in notifier.published] == ["USER_ONLINE"]
    assert notifier.published[0][1] == {
        "user_id": str(alice.user_id),
        "organization_id": str(alice.organization_id),
        "status": "online",
        "at": NOW.isoformat(),
    }


async def test_an_app_excluded_by_privacy_keeps_the_agent_online_without_showing_it() -> None:
    alice = employee()
    settings = OrganizationSettings().with_changes({"privacy": {"excluded_apps": ["*pass*"]}})
    store, notifier = await flushed(alice, [PingInput(app_name="1Password")], settings)
    record = (await store.records(alice.organization_id, [alice.user_id], NOW))[alice.user_id]
    assert record.online
    assert record.sighting is None
    assert [event for event, _ in notifier.published] == ["USER_ONLINE"]


async def test_a_request_whose_pings_were_all_rejected_notes_nothing() -> None:
    buffer = SightingBuffer()
    presence.agent_pinged(
        employee(),
        [PingInput(app_name="Mail")],
        [ItemResult(Outcome.REJECTED, reason="too_old")],
        sightings=buffer,
        clock=FixedClock(),
    )
    assert buffer.drain() == {}


async def test_the_agent_expires_and_the_user_goes_offline_once() -> None:
    alice = employee()
    store, notifier = await flushed(alice, [PingInput(app_name="Mail")], OrganizationSettings())
    clock = FixedClock()
    clock.moment = NOW + AGENT_TTL
    await presence.heartbeat([], store=store, notifier=notifier, clock=clock, ttl=AGENT_TTL)
    await presence.heartbeat([], store=store, notifier=notifier, clock=clock, ttl=AGENT_TTL)
    assert [event for event, _ in notifier.published] == ["USER_ONLINE", "USER_OFFLINE"]
    user = UserRef(alice.organization_id, alice.user_id)
    assert not (await store.records(user.organization_id, [user.user_id], clock.moment))[
        user.user_id
    ].online
