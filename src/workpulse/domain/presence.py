"""Presence and who receives real-time events.

A user is online while at least one of their connections is alive, on any process: a socket
(kept alive by its process's heartbeat) or an agent sending pings (each ping keeps the agent
alive for a while). Online users whose agent's latest ping said idle are `idle`. `USER_ONLINE`
is announced when a user's first live connection appears and `USER_OFFLINE` when the last one is
gone, closed or expired: two tabs, one closed, stay online.

Events go to rooms: the user concerned (`user:<id>`), the organization's managers, admins and
owners (`org:<id>`) and, for presence only, the employees of an organization whose setting
`employees_see_team` is on (`team:<id>`). Any event name follows the same rule, so an event
added later (the scheduler's alerts) cannot reach another organization or other employees.

Example: `event_rooms("SESSION_UPDATE", org, alice)` is `("user:<alice>", "org:<org>")`; an
employee of that organization is in neither room, a manager is in the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase

from workpulse.domain.ids import OrganizationId, UserId
from workpulse.domain.organizations import OrganizationSettings, UrlPolicy
from workpulse.domain.roles import Principal, can_view, sees_organization

USER_ONLINE = "USER_ONLINE"
USER_OFFLINE = "USER_OFFLINE"
# Events about presence, which employees may see when their organization lets them.
PRESENCE_EVENTS = frozenset({USER_ONLINE, USER_OFFLINE})


def user_room(user_id: UserId) -> str:
    return f"user:{user_id}"


def organization_room(organization_id: OrganizationId) -> str:
    return f"org:{organization_id}"


def team_room(organization_id: OrganizationId) -> str:
    return f"team:{organization_id}"


def event_rooms(event: str, organization_id: OrganizationId, user_id: UserId) -> tuple[str, ...]:
    """Where an event about `user_id` goes. A socket in several of these rooms gets it once."""
    rooms = (user_room(user_id), organization_room(organization_id))
    if event in PRESENCE_EVENTS:
        return (*rooms, team_room(organization_id))
    return rooms


def rooms_of(principal: Principal, settings: OrganizationSettings) -> frozenset[str]:
    """The rooms a connection of `principal` joins, from the member's current role."""
    rooms = {user_room(principal.user_id)}
    if sees_organization(principal):
        rooms.add(organization_room(principal.organization_id))
    elif settings.employees_see_team:
        rooms.add(team_room(principal.organization_id))
    return frozenset(rooms)


def sees_presence_of(principal: Principal, subject: UserId, settings: OrganizationSettings) -> bool:
    return can_view(principal, subject) or settings.employees_see_team


def sees_current_app(principal: Principal, subject: UserId) -> bool:
    """What someone is doing is shown only to whoever may see their data."""
    return can_view(principal, subject)


class Status(StrEnum):
    ONLINE = "online"
    IDLE = "idle"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Sighting:
    """What an agent's latest accepted ping said: the app in focus, its domain, idle or not,
    and when that ping happened (its end for a span)."""

    app_name: str
    domain: str | None
    idle: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class RawSighting:
    """A ping as the client sent it, noted on the hot path unchecked; it becomes a `Sighting`
    (normalized, within the privacy settings) in the background. `received_at` is when the
    server accepted it."""

    app_name: str
    url: str | None
    domain: str | None
    idle: bool
    start: datetime | None
    end: datetime | None
    received_at: datetime

    @property
    def moment(self) -> datetime:
        return self.end or self.start or self.received_at


@dataclass(frozen=True, slots=True)
class Record:
    """A user's stored presence. `online` is whether a live connection exists (announced with
    USER_ONLINE and not yet with USER_OFFLINE); `agent_until` is when the agent's last ping
    stops counting; `last_seen` is the last moment any connection of theirs was seen alive."""

    online: bool
    last_seen: datetime | None
    agent_until: datetime | None = None
    sighting: Sighting | None = None


def status_of(record: Record | None, now: datetime) -> Status:
    if record is None or not record.online:
        return Status.OFFLINE
    if _agent_alive(record, now) and record.sighting is not None and record.sighting.idle:
        return Status.IDLE
    return Status.ONLINE


def current_app(
    record: Record | None, now: datetime, settings: OrganizationSettings
) -> tuple[str, str | None] | None:
    """The app (and domain) the user's agent last reported, while the agent is alive and the
    organization's privacy settings allow it: an excluded app is never shown (it would not
    have been accepted; the list may have changed since), the domain only unless URLs are off."""
    if record is None or not record.online or not _agent_alive(record, now):
        return None
    sighting = record.sighting
    if sighting is None:
        return None
    privacy = settings.privacy
    name = sighting.app_name.casefold()
    if any(fnmatchcase(name, pattern.casefold()) for pattern in privacy.excluded_apps):
        return None
    domain = None if privacy.urls is UrlPolicy.NONE else sighting.domain
    return sighting.app_name, domain


def _agent_alive(record: Record, now: datetime) -> bool:
    return record.agent_until is not None and record.agent_until > now
