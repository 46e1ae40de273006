"""The notifier in one process: hands each event to the listeners registered in this process
(the Socket.IO server of the real-time issue registers one). Publishing never fails the change
it reports: a failing listener is logged."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workpulse.domain.ids import OrganizationId, UserId

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    payload: Mapping[str, Any]
    organization_id: OrganizationId
    user_id: UserId


Listener = Callable[[Event], Awaitable[None]]


class InProcessNotifier:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(
        self,
        event: str,
        payload: Mapping[str, Any],
        *,
        organization_id: OrganizationId,
        user_id: UserId,
    ) -> None:
        message = Event(event, payload, organization_id, user_id)
        for listener in self._listeners:
            try:
                await listener(message)
            except Exception:
                log.exception("event listener failed", extra={"event": event})
