"""A ping is one observation from a device: which app (and page) was in front, from when.

A ping is a point sample (`end is None`: "at `start` the user was in this app") or an explicit
span (`start` to `end`). `check_ping` turns the fields a client sent into a `Ping`, or into a
`Rejected` with a reason and a message; each item of a batch is judged on its own.

Order of the checks: field bounds (`invalid`), then time bounds (`in_future`, `too_old`), then
the organization's privacy settings (`excluded`, titles and URLs dropped). Privacy is applied
before anything is stored, and a missing `event_id` is derived from what is stored, so that a
hash of a dropped title is never kept.

Example: `check_ping(app_name=" Firefox ", url="https://www.Example.com:8443/x", device_id="d1",
start=None, now=now, horizon=timedelta(days=7), privacy=Privacy(urls=UrlPolicy.DOMAIN))` is a
`Ping` at `now` with app "Firefox", url None, domain "example.com" and an event id
"sha256:…"; the same call with `start=now + timedelta(minutes=6)` is
`Rejected(Rejection.IN_FUTURE, …)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from workpulse.domain.organizations import Privacy, TitlePolicy, UrlPolicy

MAX_APP_NAME = 200
MAX_URL = 2048
MAX_TITLE = 512
MAX_DEVICE_ID = 128
MAX_EVENT_ID = 128
MAX_DOMAIN = 253  # the DNS limit on a host name
MAX_SPAN = timedelta(hours=24)
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Ping:
    """A checked ping. Instants are aware and in UTC; `end` is None for a point sample."""

    device_id: str
    app_name: str
    url: str | None
    domain: str | None
    title: str | None
    idle: bool
    start: datetime
    end: datetime | None
    event_id: str


class Rejection(StrEnum):
    INVALID = "invalid"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    EXCLUDED = "excluded"


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why one ping was not accepted; `message` is safe to show to the client."""

    reason: Rejection
    message: str


# --- Domains -------------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_LABEL = re.compile(r"[a-z0-9_\-]+")


def domain_of(url: str | None) -> str | None:
    """The host a URL points at, in the one form reports group by; None when there is none.

    Lower case, IDNA 2003 punycode (`bücher.de` → `xn--bcher-kva.de`, `straße.de` →
    `strasse.de`), without port, user info, trailing dot or one leading `www.` label; other
    subdomains are kept. `www.` stays when nothing with a dot would remain (`www.co`).
    IP addresses are kept (IPv6 compressed, without brackets; an IPv6 address must be in
    brackets, as RFC 3986 requires). Only web schemes (http, https, ws, wss, ftp) have a
    domain: `about:blank`, `chrome://settings`, `mailto:` and `file:` URLs give None. Without a
    scheme (`example.com/path`, `localhost:3000`) the host must contain a dot or be
    `localhost` or an IP address, so that plain words are not taken for hosts.
    """
    if url is None:
        return None
    text = url.strip()
    scheme = _SCHEME.match(text)
    explicit = scheme is not None and text[scheme.end() : scheme.end() + 2] == "//"
    if scheme is not None and explicit:
        if scheme.group()[:-1].lower() not in _WEB_SCHEMES:
            return None
    elif scheme is not None and not text[scheme.end() : scheme.end() + 1].isdigit():
        return None  # "mailto:…", "about:blank"; "host:8080" has a port, not a scheme
    elif not text.startswith("//"):
        text = "//" + text
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError:
        return None
    if not host:
        return None
    return _normalize_host(host, needs_dot=not explicit)


def _normalize_host(host: str, *, needs_dot: bool) -> str | None:
    host = host.lower().removesuffix(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return address.compressed
    if ":" in host:
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    host = host.lower()
    labels = host.split(".")
    if len(host) > MAX_DOMAIN or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if needs_dot and len(labels) < 2 and host != "localhost":
        return None
    if labels[0] == "www" and len(labels) > 2:
        host = host[4:]
    return host


def _client_domain(domain: str) -> str | None:
    """A client-sent domain is read as a host, with or without a scheme around it."""
    return domain_of(domain if "://" in domain else "http://" + domain.strip())


# --- Checking --------------------------------------------------------------------------------


def check_ping(
    *,
    app_name: str,
    device_id: str,
    start: datetime | None,
    end: datetime | None = None,
    url: str | None = None,
    domain: str | None = None,
    title: str | None = None,
    idle: bool = False,
    event_id: str | None = None,
    now: datetime,
    horizon: timedelta,
    privacy: Privacy,
    future_tolerance: timedelta = FUTURE_TOLERANCE,
    max_span: timedelta = MAX_SPAN,
) -> Ping | Rejected:
    """Check and normalize one ping, then apply `privacy` (see the module docstring).

    `start=None` means a point sample at `now` (the time of receipt). The domain is derived
    from `url` when a URL is given (the client's `domain` is then ignored), else the client's
    `domain` is normalized; a URL or domain without a usable host gives domain None, which is
    not an error. Blank optional strings count as absent. A ping is `too_old` when its last
    instant (`end` for a span) is before `now - horizon`, `in_future` when it is after
    `now + future_tolerance`.
    """
    start = now if start is None else start
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            return _invalid(f"{name} needs a time zone offset")
    start = start.astimezone(UTC)
    end = None if end is None else end.astimezone(UTC)

    app_name = app_name.strip()
    device_id = device_id.strip()
    url = _blank_to_none(url)
    title = _blank_to_none(title, strip=False)
    event_id = _blank_to_none(event_id)
    domain = _blank_to_none(domain)
    texts = {"app_name": app_name, "device_id": device_id, "url": url, "title": title}
    for name, text in {**texts, "event_id": event_id, "domain": domain}.items():
        if text is not None and "\x00" in text:
            return _invalid(f"{name} must not contain NUL characters")
    if not app_name or len(app_name) > MAX_APP_NAME:
        return _invalid(f"app_name must be 1 to {MAX_APP_NAME} characters")
    if not device_id or len(device_id) > MAX_DEVICE_ID:
        return _invalid(f"device_id must be 1 to {MAX_DEVICE_ID} characters")
    if url is not None and len(url) > MAX_URL:
        return _invalid(f"url must be at most {MAX_URL} characters")
    if domain is not None and len(domain) > MAX_URL:
        return _invalid(f"domain must be at most {MAX_URL} characters")
    if title is not None and len(title) > MAX_TITLE:
        return _invalid(f"title must be at most {MAX_TITLE} characters")
    if event_id is not None and len(event_id) > MAX_EVENT_ID:
        return _invalid(f"event_id must be at most {MAX_EVENT_ID} characters")
    if end is not None and end <= start:
        return _invalid("end_time must be after start_time")
    if end is not None and end - start > max_span:
        return _invalid(f"a span lasts at most {_hours(max_span)} hours")

    last = start if end is None else end
    if last > now + future_tolerance:
        return Rejected(Rejection.IN_FUTURE, "the ping is in the future: check the device clock")
    if last < now - horizon:
        oldest = (now - horizon).astimezone(UTC).isoformat(timespec="seconds")
        return Rejected(Rejection.TOO_OLD, f"pings before {oldest} are no longer accepted")

    if url is not None:
        domain = domain_of(url)
    elif domain is not None:
        domain = _client_domain(domain)
    # One Ping built once, privacy applied and the id derived first: this runs for every
    # ping the API takes, and each `dataclasses.replace` cost as much as the rest of it.
    if _excluded(app_name, privacy):
        return _EXCLUDED
    title, url, domain = _kept(privacy, title, url, domain)
    if event_id is None:
        event_id = _content_id(device_id, app_name, url, domain, title, idle, start, end)
    return Ping(
        device_id=device_id,
        app_name=app_name,
        url=url,
        domain=domain,
        title=title,
        idle=idle,
        start=start,
        end=end,
        event_id=event_id,
    )


_EXCLUDED = Rejected(
    Rejection.EXCLUDED, "this app is excluded by the organization's privacy settings"
)


def apply_privacy(ping: Ping, privacy: Privacy) -> Ping | Rejected:
    """Drop what the organization does not keep; an excluded app is not stored at all.

    `excluded_apps` are shell patterns (`*`, `?`, `[…]`) matched against the whole app name,
    ignoring case: `"*password*"` excludes "1Password". The event id is left as it is.
    """
    if _excluded(ping.app_name, privacy):
        return _EXCLUDED
    title, url, domain = _kept(privacy, ping.title, ping.url, ping.domain)
    return dataclasses.replace(ping, title=title, url=url, domain=domain)


def _excluded(app_name: str, privacy: Privacy) -> bool:
    if not privacy.excluded_apps:
        return False
    name = app_name.casefold()
    return any(fnmatchcase(name, pattern.casefold()) for pattern in privacy.excluded_apps)


def _kept(
    privacy: Privacy, title: str | None, url: str | None, domain: str | None
) -> tuple[str | None, str | None, str | None]:
    """(title, url, domain) as the organization keeps them."""
    return (
        None if privacy.titles is TitlePolicy.DROP else title,
        url if privacy.urls is UrlPolicy.FULL else None,
        None if privacy.urls is UrlPolicy.NONE else domain,
    )


def derive_event_id(ping: Ping) -> str:
    """A stable id from the ping's content, so that a ping sent twice is a duplicate.

    sha256 of a canonical JSON array of every field but `event_id`, with instants in UTC to
    the microsecond (the same instant written with another offset gives the same id).
    71 characters: "sha256:" and 64 hex digits.
    """
    return _content_id(
        ping.device_id,
        ping.app_name,
        ping.url,
        ping.domain,
        ping.title,
        ping.idle,
        ping.start,
        ping.end,
    )


_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _content_id(
    device_id: str,
    app_name: str,
    url: str | None,
    domain: str | None,
    title: str | None,
    idle: bool,
    start: datetime,
    end: datetime | None,
) -> str:
    canonical = [
        1,  # version of this canonical form
        device_id,
        app_name,
        url,
        domain,
        title,
        idle,
        _instant(start),
        None if end is None else _instant(end),
    ]
    text = _CANONICAL.encode(canonical)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _blank_to_none(text: str | None, *, strip: bool = True) -> str | None:
    if text is None or not text.strip():
        return None
    return text.strip() if strip else text


def _invalid(message: str) -> Rejected:
    return Rejected(Rejection.INVALID, message)


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}"
