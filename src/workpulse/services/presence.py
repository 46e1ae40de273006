"""Presence: connections in, `USER_ONLINE`/`USER_OFFLINE` out, and the organization's view.

Sockets are kept alive by their process's heartbeat and agents by their pings; the store (Redis,
or this process's memory in embedded mode) tells which change made a user online or offline, so
each transition is announced once, whichever process saw it. The hot path (`POST /usage/track`)
only remembers the latest ping per user in memory (`agent_pinged`); `flush_sightings` writes
them in the background, at most once per user per interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workpulse.domain import presence
from workpulse.domain.ids import UserId
from workpulse.domain.organizations import OrganizationSettings
from workpulse.domain.pings import Ping, Rejected, check_ping
from workpulse.domain.presence import RawSighting, Sighting, Status
from workpulse.domain.roles import Principal
from workpulse.services.ingest import ItemResult, Outcome, PingInput, SettingsOf
from workpulse.services.ports import (
    AgentSightings,
    Clock,
    Liveness,
    Notifier,
    PresenceStore,
    UnitOfWorkFactory,
    UserRef,
)

AGENT = "agent"


def transition_payload(event: str, user: UserRef, now: datetime) -> dict[str, Any]:
    """The payload of USER_ONLINE and USER_OFFLINE (docs/realtime.md)."""
    return {
        "user_id": str(user.user_id),
        "organization_id": str(user.organization_id),
        "status": Status.ONLINE.value if event == presence.USER_ONLINE else Status.OFFLINE.value,
        "at": now.isoformat(),
    }


async def _announce(
    notifier: Notifier, event: str, users: Sequence[UserRef], now: datetime
) -> None:
    for user in users:
        await notifier.publish(
            event,
            transition_payload(event, user, now),
            organization_id=user.organization_id,
            user_id=user.user_id,
        )


async def connected(
    user: UserRef,
    connection: str,
    *,
    store: PresenceStore,
    notifier: Notifier,
    clock: Clock,
    ttl: timedelta,
) -> None:
    now = clock.now()
    made_online = await store.keep_alive([Liveness(user, connection, now + ttl)], now)
    await _announce(notifier, presence.USER_ONLINE, made_online, now)


async def disconnected(
    user: UserRef, connection: str, *, store: PresenceStore, notifier: Notifier, clock: Clock
) -> None:
    now = clock.now()
    if await store.drop(user, connection, now):
        await _announce(notifier, presence.USER_OFFLINE, [user], now)


async def heartbeat(
    connections: Sequence[tuple[UserRef, str]],
    *,
    store: PresenceStore,
    notifier: Notifier,
    clock: Clock,
    ttl: timedelta,
) -> None:
    """Extends this process's live connections, then marks offline whoever has none left
    anywhere (a crashed process's users, once their connections expire)."""
    now = clock.now()
    if connections:
        made_online = await store.keep_alive(
            [Liveness(user, connection, now + ttl) for user, connection in connections], now
        )
        await _announce(notifier, presence.USER_ONLINE, made_online, now)
    await _announce(notifier, presence.USER_OFFLINE, await store.expire(now), now)


def agent_pinged(
    principal: Principal,
    items: Sequence[PingInput | Rejected],
    results: Sequence[ItemResult],
    *,
    sightings: AgentSightings,
    clock: Clock,
) -> None:
    """Note the latest ping of a request that was not rejected (a duplicate too: the agent is
    alive). The hot path's whole cost: no I/O, no checking; `flush_sightings` does the rest."""
    now = clock.now()
    latest: PingInput | None = None
    latest_at = now
    for item, result in zip(items, results, strict=True):
        if isinstance(item, PingInput) and result.outcome is not Outcome.REJECTED:
            at = item.end_time or item.start_time or item.timestamp or now
            if latest is None or at >= latest_at:
                latest, latest_at = item, at
    if latest is None:
        return
    sightings.saw(
        UserRef(principal.organization_id, principal.user_id),
        RawSighting(
            app_name=latest.app_name,
            url=latest.url,
            domain=latest.domain,
            idle=latest.idle,
            start=latest.start_time or latest.timestamp,
            end=latest.end_time,
            received_at=now,
        ),
    )


def _checked(raw: RawSighting, settings: OrganizationSettings) -> Sighting | None:
    """The sighting as ingestion would store the ping: normalized app name and domain, the
    organization's privacy settings applied (None if the app is excluded, or the ping is not
    valid any more)."""
    ping = check_ping(
        app_name=raw.app_name,
        device_id=AGENT,
        start=raw.start,
        end=raw.end,
        url=raw.url,
        domain=raw.domain,
        idle=raw.idle,
        event_id=AGENT,
        now=raw.received_at,
        horizon=timedelta(days=settings.ping_horizon_days),
        privacy=settings.privacy,
    )
    if not isinstance(ping, Ping):
        return None
    return Sighting(
        app_name=ping.app_name, domain=ping.domain, idle=ping.idle, at=ping.end or ping.start
    )


async def flush_sightings(
    seen: Mapping[UserRef, RawSighting],
    *,
    store: PresenceStore,
    notifier: Notifier,
    settings_of: SettingsOf,
    clock: Clock,
    agent_ttl: timedelta,
) -> None:
    """Write the agents' latest pings: each keeps its user online for `agent_ttl`."""
    if not seen:
        return
    now = clock.now()
    alive = []
    for user, raw in seen.items():
        sighting = _checked(raw, await settings_of(user.organization_id))
        alive.append(Liveness(user, AGENT, now + agent_ttl, sighting))
    made_online = await store.keep_alive(alive, now)
    await _announce(notifier, presence.USER_ONLINE, made_online, now)


@dataclass(frozen=True, slots=True)
class PresenceView:
    user_id: UserId
    name: str
    status: Status
    last_seen: datetime | None
    app_name: str | None
    domain: str | None


async def organization_presence(
    principal: Principal,
    *,
    uow_factory: UnitOfWorkFactory,
    store: PresenceStore,
    settings_of: SettingsOf,
    clock: Clock,
) -> list[PresenceView]:
    """The presence of the organization's active members the caller may see: managers and up
    everyone, employees themselves (everyone with `employees_see_team`, but the current app only
    of themselves)."""
    settings = await settings_of(principal.organization_id)
    async with uow_factory(readonly=True) as uow:
        members = await uow.users.list(principal.organization_id)
    visible = [
        m for m in members if m.is_active and presence.sees_presence_of(principal, m.id, settings)
    ]
    now = clock.now()
    records = await store.records(principal.organization_id, [m.id for m in visible], now)
    views = []
    for member in visible:
        record = records.get(member.id)
        app = (
            presence.current_app(record, now, settings)
            if presence.sees_current_app(principal, member.id)
            else None
        )
        views.append(
            PresenceView(
                user_id=member.id,
                name=member.name,
                status=presence.status_of(record, now),
                last_seen=None if record is None else record.last_seen,
                app_name=None if app is None else app[0],
                domain=None if app is None else app[1],
            )
        )
    return views


async def still_signed_in(
    principal: Principal, *, uow_factory: UnitOfWorkFactory
) -> Principal | None:
    """The principal with the member's current role while the device session and the member are
    active; None once either is revoked or deactivated. Reads the database, not the session
    cache: it runs when a revocation was just announced, before every cache may have heard."""
    async with uow_factory(readonly=True) as uow:
        session = await uow.device_sessions.get(
            principal.organization_id, principal.device_session_id
        )
        user = await uow.users.get(principal.organization_id, principal.user_id)
    if session is None or user is None or session.user_id != user.id:
        return None
    if not (session.active and user.is_active):
        return None
    return Principal(
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        device_session_id=principal.device_session_id,
    )
