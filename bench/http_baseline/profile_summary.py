"""Summarize a py-spy `--format raw` profile (collapsed stacks) of a WorkPulse API process.

Each sample is charged to one bucket: walking its stack from the innermost frame outwards, the
first frame that matches a bucket's patterns decides. So time in structlog under the access-log
middleware counts as "access log", and time writing the response to the socket counts as
"uvicorn", whichever middleware called it. Also prints the hottest frames, inclusive.

    python bench/http_baseline/profile_summary.py bench/results/me.raw
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# (bucket, substrings of "function (path)"): the first bucket whose pattern a frame contains.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    (
        "thread-pool hop (a sync dependency run by run_in_threadpool)",
        ("run_in_threadpool", "anyio/", "threading.py", "queue.py", "concurrent/futures"),
    ),
    ("access log (structlog + logging to stderr)", ("structlog/", "logging/__init__.py")),
    ("prometheus metrics", ("prometheus_client/",)),
    ("request id (uuid4)", ("uuid4 (",)),
    (
        "JWT check and identity (PyJWT, token and session caches)",
        (
            "minimal_app.py",
            "workpulse/services/identity.py",
            "workpulse/adapters/tokens.py",
            "workpulse/adapters/session_cache.py",
            "workpulse/adapters/clock.py",
            "cachetools/",
            "jwt/",
        ),
    ),
    ("HTTPBearer header parsing", ("fastapi/security/",)),
    (
        "response model: pydantic validate + serialize",
        (
            "serialize_response",
            "pydantic",
            "jsonable_encoder",
            "workpulse/entrypoints/http/schemas",
        ),
    ),
    ("FastAPI dependency resolution", ("fastapi/dependencies/",)),
    ("FastAPI native telemetry check", ("fastapi/telemetry/", "opentelemetry/")),
    ("routing (route matching)", ("matches (", "_match (", "Route.matches")),
    ("WorkPulse request-context middleware (own frames)", ("workpulse/entrypoints/http/",)),
    ("uvicorn (HTTP parsing, socket writes)", ("uvicorn/",)),
    ("starlette / fastapi plumbing", ("starlette/", "fastapi/")),
    ("asyncio event loop", ("asyncio/", "uvloop")),
]
OTHER = "other"
# Frames every sample of a thread passes through (process entry, the event loop's runner).
_ENTRY = (
    "<frozen runpy>",
    "typer/",
    "workpulse/entrypoints/cli.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
    "Thread._bootstrap",
)
_LINE = re.compile(r":\d+\)$")


def read_stacks(path: Path) -> Iterable[tuple[list[str], int]]:
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        yield [_LINE.sub(")", frame) for frame in stack.split(";")], int(count)


def bucket_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, patterns in BUCKETS:
            if any(pattern in frame for pattern in patterns):
                return name
    return OTHER


@dataclass(frozen=True)
class Profile:
    total: int
    buckets: Counter[str]
    inclusive: Counter[str]


def load(path: Path) -> Profile:
    buckets: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in read_stacks(path):
        total += count
        buckets[bucket_of(frames)] += count
        for frame in set(frames):
            inclusive[frame] += count
    return Profile(total, buckets, inclusive)


def hottest(profile: Profile, top: int) -> list[str]:
    lines = []
    for frame, n in profile.inclusive.most_common():
        if any(entry in frame for entry in _ENTRY):
            continue
        lines.append(f"  {100 * n / profile.total:5.1f}%  {frame}")
        if len(lines) >= top:
            break
    return lines


def summarize(path: Path, top: int = 25) -> str:
    profile = load(path)
    if profile.total == 0:
        return f"{path}: no samples\n"
    lines = [f"{path.name}: {profile.total} samples (all threads, idle excluded)", ""]
    lines += ["| share | bucket (innermost matching frame wins) |", "| ---: | --- |"]
    lines += [
        f"| {100 * n / profile.total:.1f}% | {name} |" for name, n in profile.buckets.most_common()
    ]
    lines += ["", f"Hottest frames, inclusive (top {top}, entry frames left out):", ""]
    lines += hottest(profile, top)
    return "\n".join(lines) + "\n"


def compare(base: tuple[str, Profile, float], other: tuple[str, Profile, float]) -> str:
    """Each bucket in µs of server CPU per request: its share of the samples times the CPU per
    request measured while the profile was recorded. The last column is what `other` spends
    beyond `base`."""
    (base_name, base_profile, base_us), (name, profile, us) = base, other

    def cost(p: Profile, per_request: float, bucket: str) -> float:
        return p.buckets[bucket] / max(p.total, 1) * per_request

    order = sorted(
        set(base_profile.buckets) | set(profile.buckets),
        key=lambda b: cost(base_profile, base_us, b) - cost(profile, us, b),
    )
    lines = [
        f"| bucket | {base_name} µs/req | {name} µs/req | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for bucket in order:
        mine, theirs = cost(profile, us, bucket), cost(base_profile, base_us, bucket)
        lines.append(f"| {bucket} | {theirs:.0f} | {mine:.0f} | {mine - theirs:+.0f} |")
    lines.append(f"| **total** | {base_us:.0f} | {us:.0f} | {us - base_us:+.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sys.stdout.write(summarize(args.raw, args.top))


if __name__ == "__main__":
    main()
