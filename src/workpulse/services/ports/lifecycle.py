"""Data lifecycle: retention."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from workpulse.domain.retention import DataClass


class DataLifecycle(Protocol):
    async def expire(self, kind: DataClass, before: datetime) -> int:
        """Remove the class's data older than `before` (titles: blank them). Returns how many
        rows went, or partitions dropped on PostgreSQL."""
        ...
