"""Projects group work sessions inside one organization.

Deleting a project archives it (`archived_at` set): sessions and reports keep their project,
and the name becomes free for a new project.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import OrganizationId, ProjectId


@dataclass(frozen=True, slots=True)
class Project:
    id: ProjectId
    organization_id: OrganizationId
    name: str
    description: str | None
    created_at: datetime
    archived_at: datetime | None


def check_project_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 200 or "\x00" in cleaned:
        raise InvalidInput("name must be 1 to 200 characters, without NUL")
    return cleaned
