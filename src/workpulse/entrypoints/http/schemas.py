"""Request and response bodies. Strict types where a wrong JSON type must be refused rather
than coerced; API shapes are separate from tables and domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from workpulse.domain.organizations import Organization, TitlePolicy, UrlPolicy
from workpulse.domain.projects import Project
from workpulse.domain.roles import Role
from workpulse.domain.users import DeviceSession, User

# Text stored in the database: PostgreSQL cannot hold a NUL character, so it is refused here
# with a 422 instead of failing in the driver with a 500. (Passwords are only hashed: any text.)
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(strict=True, pattern=NO_NUL)]


class UserOut(BaseModel):
    id: UUID
    organization_id: UUID
    email: str
    name: str
    role: Role
    is_active: bool
    timezone: str | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            organization_id=user.organization_id,
            email=user.email,
            name=user.name,
            role=user.role,
            is_active=user.is_active,
            timezone=user.timezone,
            created_at=user.created_at,
        )


class RegisterIn(BaseModel):
    email: EmailStr = Field(max_length=320)
    password: StrictStr = Field(min_length=8, max_length=1024)
    name: Text = Field(min_length=1, max_length=200)
    organization_id: UUID | None = None
    organization_name: Text | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    invite_token: Text | None = Field(default=None, max_length=200)


class LoginIn(BaseModel):
    email: Text = Field(min_length=1, max_length=320)
    password: StrictStr = Field(min_length=1, max_length=1024)
    organization_id: UUID | None = None
    device_name: Text | None = Field(default=None, max_length=200)


class RefreshIn(BaseModel):
    refresh_token: Text | None = Field(default=None, max_length=200)


class TokensOut(BaseModel):
    user: UserOut
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class DeviceSessionOut(BaseModel):
    id: UUID
    device_id: str
    device_name: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool

    @classmethod
    def of(cls, session: DeviceSession, current: UUID) -> DeviceSessionOut:
        return cls(
            id=session.id,
            device_id=session.device_id,
            device_name=session.device_name,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            current=session.id == current,
        )


class PrivacyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    titles: TitlePolicy | None = None
    urls: UrlPolicy | None = None
    excluded_apps: list[Text] | None = None


class SettingsPatch(BaseModel):
    """Every field optional; only the fields given change. Units are in the names."""

    model_config = ConfigDict(extra="forbid")
    idle_minutes: StrictInt | None = None
    overtime_hours: StrictFloat | StrictInt | None = None
    pulse_seconds: StrictInt | None = None
    join_gap_seconds: StrictInt | None = None
    ping_horizon_days: StrictInt | None = None
    max_activity_seconds: StrictInt | None = None
    session_timeout_minutes: StrictInt | None = None
    open_signup: StrictBool | None = None
    employees_see_team: StrictBool | None = None
    privacy: PrivacyPatch | None = None


class OrganizationOut(BaseModel):
    id: UUID
    name: str
    plan_type: str
    timezone: str
    settings: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, organization: Organization) -> OrganizationOut:
        return cls(
            id=organization.id,
            name=organization.name,
            plan_type=organization.plan_type,
            timezone=organization.timezone,
            settings=organization.settings.to_mapping(),
            created_at=organization.created_at,
        )


class OrganizationPatch(BaseModel):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    timezone: Text | None = Field(default=None, max_length=64)
    settings: SettingsPatch | None = None


class InviteIn(BaseModel):
    role: Role = Role.EMPLOYEE


class InviteOut(BaseModel):
    invite_token: str
    role: Role
    expires_at: datetime


class UserPatch(BaseModel):
    role: Role | None = None
    active: StrictBool | None = None


class ProjectIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=5000)


class ProjectPatch(BaseModel):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=5000)


class ProjectOut(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    description: str | None
    created_at: datetime
    archived_at: datetime | None

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id,
            organization_id=project.organization_id,
            name=project.name,
            description=project.description,
            created_at=project.created_at,
            archived_at=project.archived_at,
        )


class ComponentHealth(BaseModel):
    status: str
    message: str | None = None


class HealthOut(BaseModel):
    status: str
    info: dict[str, ComponentHealth]
    error: dict[str, ComponentHealth] = Field(default_factory=dict)
