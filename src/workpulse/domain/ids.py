"""Typed identifiers, so that a user id is never passed where an organization id is expected."""

from typing import NewType
from uuid import UUID

OrganizationId = NewType("OrganizationId", UUID)
UserId = NewType("UserId", UUID)
ProjectId = NewType("ProjectId", UUID)
DeviceSessionId = NewType("DeviceSessionId", UUID)
InviteId = NewType("InviteId", UUID)
WorkSessionId = NewType("WorkSessionId", UUID)
