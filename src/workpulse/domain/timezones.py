"""Time zones are IANA names checked against the system's tz database (zoneinfo).

Example: `parse_timezone("Asia/Kathmandu")` is the +05:45 zone; `parse_timezone("Mars/Base")`
raises `InvalidTimezone`.
"""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workpulse.domain.errors import InvalidTimezone


def parse_timezone(name: str) -> ZoneInfo:
    # ZoneInfo accepts file-system-like keys; refuse anything that is not a plain key first.
    if not name or len(name) > 64 or name.startswith("/") or ".." in name or "\x00" in name:
        raise InvalidTimezone(f"unknown time zone: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidTimezone(f"unknown time zone: {name!r}") from exc
