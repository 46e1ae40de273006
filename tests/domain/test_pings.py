from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workpulse.domain.organizations import Privacy, TitlePolicy, UrlPolicy
from workpulse.domain.pings import (
    Ping,
    Rejected,
    Rejection,
    apply_privacy,
    check_ping,
    derive_event_id,
    domain_of,
)

NOW = datetime(2024, 3, 4, 12, tzinfo=UTC)
HORIZON = timedelta(days=7)


def check(**fields: Any) -> Ping | Rejected:
    values: dict[str, Any] = {
        "app_name": "Firefox",
        "device_id": "laptop",
        "start": NOW - timedelta(minutes=1),
        "now": NOW,
        "horizon": HORIZON,
        "privacy": Privacy(),
    }
    values.update(fields)
    return check_ping(**values)


def accepted(**fields: Any) -> Ping:
    result = check(**fields)
    assert isinstance(result, Ping), result
    return result


def rejected(**fields: Any) -> Rejection:
    result = check(**fields)
    assert isinstance(result, Rejected), result
    assert result.message
    return result.reason


# --- Domains -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://WWW.Example.COM:8443/x", "example.com"),
        ("http://docs.python.org", "docs.python.org"),
        ("https://bücher.de/", "xn--bcher-kva.de"),
        ("https://Straße.de", "strasse.de"),  # IDNA 2003 maps ß to ss
        ("example.com/path", "example.com"),
        ("www.example.com", "example.com"),
        ("localhost:3000", "localhost"),
        ("//cdn.Example.com/x.js", "cdn.example.com"),
        ("https://user:secret@www.example.com./", "example.com"),
        ("https://www.www.example.com", "www.example.com"),
        ("https://www.co", "www.co"),
        ("http://intranet/wiki", "intranet"),
        ("http://192.168.0.1:8080/a", "192.168.0.1"),
        ("https://[2001:DB8:0::1]:443/", "2001:db8::1"),
        ("not a url", None),
        ("", None),
        ("hello", None),
        ("2001:db8::1", None),
        ("about:blank", None),
        ("chrome://settings", None),
        ("mailto:ann@example.com", None),
        ("file:///etc/hosts", None),
        ("https://a..b/", None),
        ("https://example.com:99999/", None),
        ("https://exa mple.com/", None),
    ],
)
def test_domain_of_gives_the_host_reports_group_by(url: str, domain: str | None) -> None:
    assert domain_of(url) == domain


def test_domain_of_nothing_is_nothing() -> None:
    assert domain_of(None) is None


# --- Checking ----------------------------------------------------------------------------------


def test_a_point_sample_without_a_time_is_taken_now() -> None:
    ping = accepted(start=None)
    assert (ping.start, ping.end) == (NOW, None)


def test_fields_are_trimmed_and_instants_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    ping = accepted(
        app_name="  Firefox ",
        device_id=" laptop ",
        start=datetime(2024, 3, 4, 13, 0, tzinfo=plus_two),
        end=datetime(2024, 3, 4, 13, 30, tzinfo=plus_two),
        title="",
        url="  ",
    )
    assert (ping.app_name, ping.device_id) == ("Firefox", "laptop")
    assert (ping.title, ping.url) == (None, None)
    assert ping.start == datetime(2024, 3, 4, 11, tzinfo=UTC)
    assert ping.start.tzinfo is UTC


@pytest.mark.parametrize(
    "fields",
    [
        {"app_name": "   "},
        {"app_name": "x" * 201},
        {"device_id": ""},
        {"device_id": "d" * 129},
        {"url": "https://example.com/" + "x" * 2030},
        {"title": "t" * 513},
        {"event_id": "e" * 129},
        {"app_name": "Fire\x00fox"},
        {"start": NOW.replace(tzinfo=None)},  # naive
        {"end": NOW - timedelta(minutes=1)},  # end == start
        {"start": NOW - timedelta(hours=25), "end": NOW - timedelta(seconds=1)},
    ],
)
def test_a_ping_outside_the_field_bounds_is_invalid(fields: dict[str, Any]) -> None:
    assert rejected(**fields) is Rejection.INVALID


def test_the_longest_fields_are_accepted() -> None:
    ping = accepted(
        app_name="x" * 200,
        device_id="d" * 128,
        url="https://example.com/" + "x" * 2028,
        title="t" * 512,
        event_id="e" * 128,
        start=NOW - timedelta(hours=24),
        end=NOW,
    )
    assert ping.domain == "example.com"


def test_a_ping_older_than_the_horizon_is_too_old_and_one_on_it_is_accepted() -> None:
    assert rejected(start=NOW - HORIZON - timedelta(seconds=1)) is Rejection.TOO_OLD
    assert accepted(start=NOW - HORIZON).start == NOW - HORIZON


def test_a_span_is_too_old_only_when_its_end_is() -> None:
    start = NOW - HORIZON - timedelta(hours=1)
    assert accepted(start=start, end=NOW - HORIZON).start == start
    assert rejected(start=start, end=NOW - HORIZON - timedelta(seconds=1)) is Rejection.TOO_OLD


def test_a_ping_more_than_five_minutes_ahead_is_in_the_future() -> None:
    assert accepted(start=NOW + timedelta(minutes=5)).start == NOW + timedelta(minutes=5)
    assert rejected(start=NOW + timedelta(minutes=5, seconds=1)) is Rejection.IN_FUTURE
    assert rejected(start=NOW, end=NOW + timedelta(minutes=6)) is Rejection.IN_FUTURE


def test_the_domain_comes_from_the_url_when_there_is_one() -> None:
    assert accepted(url="https://www.github.com/a", domain="other.org").domain == "github.com"
    assert accepted(url="about:blank", domain="other.org").domain is None


def test_a_domain_sent_alone_is_normalized_or_dropped() -> None:
    assert accepted(domain="WWW.GitHub.com").domain == "github.com"
    assert accepted(domain="https://bücher.de/x").domain == "xn--bcher-kva.de"
    assert accepted(domain="intranet").domain == "intranet"
    assert accepted(domain="not a domain").domain is None


# --- Privacy -----------------------------------------------------------------------------------


def _ping() -> Ping:
    return accepted(url="https://github.com/a/b", title="Pull request #1", event_id="e1")


def test_dropped_titles_are_not_kept() -> None:
    private = apply_privacy(_ping(), Privacy(titles=TitlePolicy.DROP))
    assert isinstance(private, Ping)
    assert private.title is None
    assert private.url == "https://github.com/a/b"


def test_the_domain_policy_keeps_the_domain_but_not_the_url() -> None:
    private = apply_privacy(_ping(), Privacy(urls=UrlPolicy.DOMAIN))
    assert isinstance(private, Ping)
    assert (private.url, private.domain) == (None, "github.com")


def test_the_none_policy_keeps_neither_url_nor_domain() -> None:
    private = apply_privacy(_ping(), Privacy(urls=UrlPolicy.NONE))
    assert isinstance(private, Ping)
    assert (private.url, private.domain) == (None, None)


@pytest.mark.parametrize("pattern", ["firefox", "FIRE*", "*fox", "F?refox", "[fg]irefox"])
def test_an_app_matching_an_excluded_pattern_in_any_case_is_excluded(pattern: str) -> None:
    result = apply_privacy(_ping(), Privacy(excluded_apps=(pattern,)))
    assert isinstance(result, Rejected)
    assert result.reason is Rejection.EXCLUDED


def test_an_excluded_pattern_must_match_the_whole_app_name() -> None:
    assert isinstance(apply_privacy(_ping(), Privacy(excluded_apps=("fire",))), Ping)


def test_checking_applies_privacy_after_the_field_and_time_checks() -> None:
    privacy = Privacy(excluded_apps=("firefox",))
    assert rejected(privacy=privacy) is Rejection.EXCLUDED
    assert rejected(privacy=privacy, app_name="") is Rejection.INVALID
    assert rejected(privacy=privacy, start=NOW + timedelta(hours=1)) is Rejection.IN_FUTURE


# --- Event ids ---------------------------------------------------------------------------------


def test_a_client_event_id_is_kept() -> None:
    assert accepted(event_id=" abc ").event_id == "abc"


def test_a_ping_sent_twice_without_an_event_id_gets_the_same_id() -> None:
    first = accepted(url="https://github.com", title="Home")
    assert first.event_id.startswith("sha256:")
    assert len(first.event_id) == 71
    assert accepted(url="https://github.com", title="Home").event_id == first.event_id
    assert accepted(url="https://github.com", title="Other").event_id != first.event_id


def test_the_derived_id_is_computed_from_what_privacy_keeps() -> None:
    dropped = accepted(title="Secret plan", privacy=Privacy(titles=TitlePolicy.DROP))
    untitled = accepted(title=None)
    assert dropped.title is None
    assert dropped.event_id == untitled.event_id


@settings(max_examples=50, deadline=None)
@given(
    minutes=st.integers(-14 * 60, 14 * 60),
    seconds=st.integers(0, 3600),
    micro=st.integers(0, 999_999),
)
def test_the_same_instant_written_with_any_offset_gets_the_same_id(
    minutes: int, seconds: int, micro: int
) -> None:
    instant = NOW - timedelta(seconds=seconds, microseconds=micro)
    local = instant.astimezone(timezone(timedelta(minutes=minutes)))
    ping = accepted(start=instant)
    assert derive_event_id(dataclasses.replace(ping, start=local)) == derive_event_id(ping)
    assert accepted(start=local).event_id == ping.event_id
