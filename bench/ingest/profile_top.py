"""The hottest frames of a py-spy `--format raw` profile (collapsed stacks), inclusive and by
their own time, with line numbers dropped so a function counts once.

    python bench/ingest/profile_top.py bench/results/ingest/batch1-worker1.raw [--top 40]
    python bench/ingest/profile_top.py FILE --under store_and_derive   # only those stacks
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def frames_of(stack: str) -> list[str]:
    # "process 123:"python";frame (file.py:12);frame2 (...)" -> frames without line numbers
    return [_LINE.sub(")", f) for f in stack.split(";") if "(" in f]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", help="keep only stacks with a frame containing this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = frames_of(stack)
        if args.under and not any(args.under in f for f in frames):
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    out = [f"{total} samples\n", "inclusive:"]
    out += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(args.top)]
    out += ["", "own time:"]
    out += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(args.top)]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
