"""Health: every dependency answers within a deadline, or the service reports itself down."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

PROBE_TIMEOUT_SECONDS = 2.0


class Probe(Protocol):
    name: str

    async def check(self) -> None:
        """Return when the dependency answers; raise when it does not."""
        ...


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    up: bool
    message: str | None = None


async def check(probes: Sequence[Probe]) -> list[ComponentStatus]:
    async def one(probe: Probe) -> ComponentStatus:
        try:
            await asyncio.wait_for(probe.check(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            return ComponentStatus(probe.name, up=False, message=type(exc).__name__)
        return ComponentStatus(probe.name, up=True)

    return list(await asyncio.gather(*(one(p) for p in probes)))
