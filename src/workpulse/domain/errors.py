"""Every expected failure is a `WorkPulseError` subclass named after the problem.

Domain errors carry no HTTP status: the HTTP layer maps the families below (one table) to
statuses, and the class name becomes the `error` field of the response body.
"""

from __future__ import annotations


class WorkPulseError(Exception):
    """Base of every expected error. `detail` is safe to show to the client."""

    default_detail = "error"

    def __init__(self, detail: object = None) -> None:
        self.detail: object = self.default_detail if detail is None else detail
        super().__init__(self.detail)


# Families, each mapped to one status by the HTTP layer.
class NotFound(WorkPulseError):
    default_detail = "not found"


class Unauthenticated(WorkPulseError):
    default_detail = "authentication required"


class Forbidden(WorkPulseError):
    default_detail = "not allowed"


class Conflict(WorkPulseError):
    default_detail = "conflict"


class InvalidInput(WorkPulseError):
    default_detail = "invalid input"


class RateLimited(WorkPulseError):
    default_detail = "too many attempts"

    def __init__(self, retry_after: int, detail: object = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(detail)


class Unavailable(WorkPulseError):
    default_detail = "a dependency is unavailable"

    def __init__(self, retry_after: int = 5, detail: object = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(detail)


# Named problems.
class OrganizationNotFound(NotFound):
    default_detail = "organization not found"


class UserNotFound(NotFound):
    default_detail = "user not found"


class ProjectNotFound(NotFound):
    default_detail = "project not found"


class DeviceSessionNotFound(NotFound):
    default_detail = "device session not found"


class InvalidCredentials(Unauthenticated):
    default_detail = "invalid email or password"


class InvalidToken(Unauthenticated):
    default_detail = "invalid or expired token"


class SessionRevoked(Unauthenticated):
    default_detail = "this device session has been revoked"


class RoleNotAllowed(Forbidden):
    default_detail = "this role cannot be granted by you"


class SignupClosed(Forbidden):
    default_detail = "this organization accepts new members by invitation only"


class InvalidInvite(Forbidden):
    default_detail = "the invitation is invalid, used or expired"


class EmailAlreadyRegistered(Conflict):
    default_detail = "this email is already registered in the organization"


class ProjectNameTaken(Conflict):
    default_detail = "a project with this name already exists"


class LastOwner(Conflict):
    default_detail = "the organization's last owner cannot be demoted or deactivated"


class InvalidTimezone(InvalidInput):
    default_detail = "unknown time zone"


class InvalidSetting(InvalidInput):
    default_detail = "invalid organization setting"


class OrganizationRequired(InvalidInput):
    default_detail = "this email belongs to several organizations: give organization_id"


class TooManyAttempts(RateLimited):
    default_detail = "too many failed attempts, try again later"


class StorageUnavailable(Unavailable):
    default_detail = "the database is unavailable"


class TransientConflict(Unavailable):
    """The database chose this transaction as a deadlock victim or could not serialize it; it
    was rolled back whole, so running it again is safe. Use cases retry; a client sees 503 only
    if the retries run out."""

    default_detail = "the change met a concurrent one; try again"

    def __init__(self, detail: object = None) -> None:
        super().__init__(retry_after=1, detail=detail)
