"""An organization and its settings.

Settings are stored as a JSON object in which every key is optional: a row inserted by hand with
`INSERT INTO organizations (name, plan_type) VALUES (...)` has `{}` and gets the defaults below.
`OrganizationSettings.from_mapping({"idle_minutes": 10})` keeps the other defaults;
`with_changes({"pulse_seconds": 0})` raises `InvalidSetting`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from workpulse.domain.errors import InvalidSetting
from workpulse.domain.ids import OrganizationId
from workpulse.domain.timezones import parse_timezone


class TitlePolicy(StrEnum):
    KEEP = "keep"
    DROP = "drop"


class UrlPolicy(StrEnum):
    FULL = "full"
    DOMAIN = "domain"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Privacy:
    titles: TitlePolicy = TitlePolicy.KEEP
    urls: UrlPolicy = UrlPolicy.FULL
    excluded_apps: tuple[str, ...] = ()


# (minimum, maximum) of each numeric setting; the unit is in the name.
_BOUNDS: dict[str, tuple[float, float]] = {
    "idle_minutes": (1, 24 * 60),
    "overtime_hours": (1, 24),
    "pulse_seconds": (1, 600),
    "join_gap_seconds": (0, 3600),
    "ping_horizon_days": (1, 90),
    "max_activity_seconds": (1, 86_400),
    "session_timeout_minutes": (5, 7 * 24 * 60),
}


@dataclass(frozen=True, slots=True)
class OrganizationSettings:
    idle_minutes: int = 5
    overtime_hours: float = 9
    pulse_seconds: int = 10
    join_gap_seconds: int = 30
    ping_horizon_days: int = 7
    max_activity_seconds: int = 3600
    session_timeout_minutes: int = 120
    open_signup: bool = False
    employees_see_team: bool = False
    privacy: Privacy = field(default_factory=Privacy)

    def __post_init__(self) -> None:
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidSetting(f"{name} must be a number")
            if not low <= value <= high:
                raise InvalidSetting(f"{name} must be between {low:g} and {high:g}")
        for name in ("open_signup", "employees_see_team"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidSetting(f"{name} must be true or false")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> OrganizationSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidSetting(f"unknown settings: {', '.join(unknown)}")
        values = dict(raw)
        privacy = values.pop("privacy", None)
        return cls(**values, privacy=_privacy_from(privacy or {}))

    def with_changes(self, changes: Mapping[str, Any]) -> OrganizationSettings:
        merged = self.to_mapping()
        for key, value in changes.items():
            if key == "privacy" and isinstance(value, Mapping):
                merged["privacy"] = {**merged["privacy"], **value}
            else:
                merged[key] = value
        return OrganizationSettings.from_mapping(merged)

    def to_mapping(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["privacy"] = {
            "titles": self.privacy.titles.value,
            "urls": self.privacy.urls.value,
            "excluded_apps": list(self.privacy.excluded_apps),
        }
        return data


def _privacy_from(raw: Mapping[str, Any]) -> Privacy:
    unknown = sorted(set(raw) - {"titles", "urls", "excluded_apps"})
    if unknown:
        raise InvalidSetting(f"unknown privacy settings: {', '.join(unknown)}")
    try:
        titles = TitlePolicy(raw.get("titles", TitlePolicy.KEEP))
        urls = UrlPolicy(raw.get("urls", UrlPolicy.FULL))
    except ValueError as exc:
        raise InvalidSetting(
            "privacy.titles is keep|drop and privacy.urls is full|domain|none"
        ) from exc
    excluded = raw.get("excluded_apps", ())
    if not isinstance(excluded, list | tuple) or not all(
        isinstance(p, str) and 0 < len(p) <= 200 for p in excluded
    ):
        raise InvalidSetting("privacy.excluded_apps is a list of non-empty patterns")
    if len(excluded) > 200:
        raise InvalidSetting("privacy.excluded_apps holds at most 200 patterns")
    return Privacy(titles=titles, urls=urls, excluded_apps=tuple(excluded))


@dataclass(frozen=True, slots=True)
class Organization:
    id: OrganizationId
    name: str
    plan_type: str
    timezone: str
    settings: OrganizationSettings
    created_at: datetime


def check_organization_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 200 or "\x00" in cleaned:
        raise InvalidSetting("name must be 1 to 200 characters, without NUL")
    return cleaned


def check_timezone_name(name: str) -> str:
    parse_timezone(name)
    return name
