from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workpulse.domain.errors import InvalidSetting, InvalidTimezone
from workpulse.domain.organizations import OrganizationSettings, UrlPolicy
from workpulse.domain.timezones import parse_timezone


def test_an_empty_settings_document_means_the_defaults() -> None:
    settings = OrganizationSettings.from_mapping({})
    assert settings == OrganizationSettings()
    assert (settings.idle_minutes, settings.overtime_hours, settings.pulse_seconds) == (5, 9, 10)
    assert settings.open_signup is False


def test_a_change_keeps_every_other_setting() -> None:
    changed = OrganizationSettings().with_changes(
        {"idle_minutes": 10, "privacy": {"urls": "domain"}}
    )
    assert changed.idle_minutes == 10
    assert changed.privacy.urls is UrlPolicy.DOMAIN
    assert changed.privacy.titles.value == "keep"
    assert changed.pulse_seconds == OrganizationSettings().pulse_seconds


@pytest.mark.parametrize(
    "change",
    [
        {"pulse_seconds": 0},
        {"idle_minutes": "5"},
        {"open_signup": 1},
        {"overtime_hours": True},
        {"privacy": {"urls": "everything"}},
        {"privacy": {"excluded_apps": [""]}},
        {"unknown_key": 1},
    ],
)
def test_an_invalid_setting_is_refused_by_name(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidSetting):
        OrganizationSettings().with_changes(change)


@given(
    idle=st.integers(min_value=1, max_value=1440),
    pulse=st.integers(min_value=1, max_value=600),
    signup=st.booleans(),
)
def test_settings_survive_a_round_trip_through_their_stored_form(
    idle: int, pulse: int, signup: bool
) -> None:
    settings = OrganizationSettings().with_changes(
        {"idle_minutes": idle, "pulse_seconds": pulse, "open_signup": signup}
    )
    assert OrganizationSettings.from_mapping(settings.to_mapping()) == settings


@pytest.mark.parametrize("name", ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "UTC\x00"])
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(InvalidTimezone):
        parse_timezone(name)


def test_a_real_time_zone_is_accepted() -> None:
    assert str(parse_timezone("Asia/Kathmandu")) == "Asia/Kathmandu"
