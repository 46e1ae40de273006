"""Work sessions and activity (the WorkPulse seed's API: snake_case session objects, camelCase
activity input)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Query, Response, status
from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from workpulse.bootstrap import Container
from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import ProjectId, UserId, WorkSessionId
from workpulse.domain.sessions import Activity, WorkSession
from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal, IdentityDep, identify
from workpulse.entrypoints.http.errors import WRITES
from workpulse.entrypoints.http.hot import Answer, Call, HotRoute, bearer
from workpulse.entrypoints.http.schemas import Text
from workpulse.services import activity, sessions
from workpulse.services.activity import ActivityInput, Status
from workpulse.services.authentication import Identity

router = APIRouter(tags=["sessions"], responses=WRITES)
MAX_EVENTS = 1000


class SessionOut(BaseModel):
    id: UUID
    organization_id: UUID
    user_id: UUID
    project_id: UUID | None
    status: Literal["active", "stopped"]
    start_time: datetime
    end_time: datetime | None
    total_active_seconds: int
    total_idle_seconds: int
    last_activity_at: datetime | None
    version: int

    @classmethod
    def of(cls, s: WorkSession) -> SessionOut:
        return cls(
            id=s.id,
            organization_id=s.organization_id,
            user_id=s.user_id,
            project_id=s.project_id,
            status=s.status.value,
            start_time=s.start_time,
            end_time=s.end_time,
            total_active_seconds=s.total_active_seconds,
            total_idle_seconds=s.total_idle_seconds,
            last_activity_at=s.last_activity_at,
            version=s.version,
        )


class StartIn(BaseModel):
    project_id: UUID | None = None
    start_time: AwareDatetime | None = Field(
        default=None, description="When an agent that was offline started (at most 24 h ago)."
    )


class ActivityIn(BaseModel):
    activityType: Literal["active", "idle"]
    durationSeconds: StrictInt
    appName: Text | None = Field(default=None, max_length=200)
    url: Text | None = Field(default=None, max_length=2048)
    timestamp: AwareDatetime | None = None
    event_id: Text | None = Field(default=None, min_length=1, max_length=128)

    def to_input(self) -> ActivityInput:
        return ActivityInput(
            activity_type=self.activityType,
            duration_seconds=self.durationSeconds,
            timestamp=self.timestamp,
            app_name=self.appName,
            url=self.url,
            event_id=self.event_id,
        )


class BatchIn(BaseModel):
    sessionId: UUID
    events: list[Any] = Field(max_length=MAX_EVENTS)


class ActivityOut(BaseModel):
    event_id: str
    activity_type: str
    duration_seconds: int
    timestamp: datetime
    app_name: str | None
    url: str | None
    duplicate: bool = False

    @classmethod
    def of(cls, a: Activity, duplicate: bool = False) -> ActivityOut:
        return cls(
            event_id=a.event_id,
            activity_type=a.activity_type.value,
            duration_seconds=a.duration_seconds,
            timestamp=a.timestamp,
            app_name=a.app_name,
            url=a.url,
            duplicate=duplicate,
        )


class RecordedOut(BaseModel):
    session: SessionOut
    activity: ActivityOut


class EventResultOut(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    reason: str | None = None
    message: str | None = None


class BatchOut(BaseModel):
    session: SessionOut
    processedCount: int
    results: list[EventResultOut]


class HistoryOut(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None


_activity = TypeAdapter(ActivityIn)
MAX_ACTIVITY_BYTES = 64 * 1024  # one event: its URL is at most 2,048 characters


@router.post("/sessions/start", status_code=status.HTTP_201_CREATED)
async def start(
    principal: CurrentPrincipal, container: ContainerDep, body: StartIn | None = None
) -> SessionOut:
    body = body or StartIn()
    session = await sessions.start(
        principal,
        project_id=None if body.project_id is None else ProjectId(body.project_id),
        start_time=body.start_time,
        deps=container.session_deps,
    )
    return SessionOut.of(session)


@router.post("/sessions/{session_id}/stop", status_code=status.HTTP_201_CREATED)
async def stop(
    session_id: UUID, principal: CurrentPrincipal, container: ContainerDep
) -> SessionOut:
    return SessionOut.of(
        await sessions.stop(principal, WorkSessionId(session_id), deps=container.session_deps)
    )


@router.get("/sessions/active")
async def active(principal: CurrentPrincipal, container: ContainerDep) -> list[SessionOut]:
    return [SessionOut.of(s) for s in await sessions.active(principal, deps=container.session_deps)]


def _cursor(session: WorkSession) -> str:
    raw = f"{session.start_time.isoformat()}|{session.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _after(cursor: str | None) -> tuple[datetime, WorkSessionId] | None:
    if cursor is None:
        return None
    try:
        start, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment = datetime.fromisoformat(start)
        if moment.utcoffset() is None:
            raise ValueError("naive")
        return moment, WorkSessionId(UUID(ident))
    except ValueError as exc:
        raise InvalidInput("cursor is not one this API gave out") from exc


@router.get("/sessions")
async def history(
    principal: CurrentPrincipal,
    container: ContainerDep,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    user_id: UUID | None = None,
    project_id: UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HistoryOut:
    if start is not None and end is not None and end <= start:
        raise InvalidInput("to must be after from")
    found = await sessions.history(
        principal,
        user_id=None if user_id is None else UserId(user_id),
        project_id=None if project_id is None else ProjectId(project_id),
        start=start,
        end=end,
        after=_after(cursor),
        limit=limit,
        deps=container.session_deps,
    )
    return HistoryOut(
        items=[SessionOut.of(s) for s in found],
        next_cursor=_cursor(found[-1]) if len(found) == limit else None,
    )


@router.get("/sessions/{session_id}")
async def get_session(
    session_id: UUID, principal: CurrentPrincipal, container: ContainerDep
) -> SessionOut:
    return SessionOut.of(
        await sessions.get(principal, WorkSessionId(session_id), deps=container.session_deps)
    )


def _moment(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _session_json(s: WorkSession) -> dict[str, Any]:
    """`SessionOut` as a plain dict, for the hot path (the same JSON, a test compares)."""
    return {
        "id": str(s.id),
        "organization_id": str(s.organization_id),
        "user_id": str(s.user_id),
        "project_id": None if s.project_id is None else str(s.project_id),
        "status": s.status.value,
        "start_time": _moment(s.start_time),
        "end_time": _moment(s.end_time),
        "total_active_seconds": s.total_active_seconds,
        "total_idle_seconds": s.total_idle_seconds,
        "last_activity_at": _moment(s.last_activity_at),
        "version": s.version,
    }


def recorded_json(session: WorkSession, activity: Activity, *, duplicate: bool) -> bytes:
    """The `RecordedOut` body, serialized by orjson without building pydantic models: the
    activity route is the agents' hot path (docs/benchmarks.md). Datetimes in UTC, with `Z`."""
    body = {
        "session": _session_json(session),
        "activity": {
            "event_id": activity.event_id,
            "activity_type": activity.activity_type.value,
            "duration_seconds": activity.duration_seconds,
            "timestamp": _moment(activity.timestamp),
            "app_name": activity.app_name,
            "url": activity.url,
            "duplicate": duplicate,
        },
    }
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


async def _record_one(
    container: Container, found: Identity, session_id: WorkSessionId, item: ActivityInput
) -> Answer:
    session, (result,) = await activity.record(
        found.principal, found.device_id, session_id, [item], deps=container.session_deps
    )
    if result.error is not None:
        raise result.error
    assert result.activity is not None
    body = recorded_json(session, result.activity, duplicate=result.status is Status.DUPLICATE)
    return Answer(status.HTTP_201_CREATED, body)


_uuid = TypeAdapter(UUID)


def _problems(exc: ValidationError) -> list[dict[str, Any]]:
    return [dict(e) for e in exc.errors(include_input=False, include_url=False)]


def _invalid(where: str, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as FastAPI's handler writes them (errors.py), under `where`."""
    return [
        {"loc": [where, *e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


async def _record_hot(call: Call) -> Answer:
    """`record_activity` on the hot lane, with FastAPI's answers in FastAPI's order: a body
    that is not JSON first, then the token, then every problem of the path and the body."""
    document = None
    if call.body:
        try:
            document = json.loads(call.body)
        except ValueError as exc:
            where = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
            problem = {"loc": [where], "msg": "JSON decode error", "type": "json_invalid"}
            return Answer.json(
                422, {"error": "ValidationError", "detail": _invalid("body", [problem])}
            )
    container: Container = call.state.container
    found = await identify(container, bearer(call.authorization))
    problems: list[dict[str, Any]] = []
    try:
        session_id = WorkSessionId(_uuid.validate_python(call.params["session_id"]))
    except ValidationError as exc:
        problems += _invalid("path", [{**e, "loc": ["session_id"]} for e in _problems(exc)])
    body = None
    if document is None:
        problems += _invalid("body", [{"loc": [], "msg": "Field required", "type": "missing"}])
    else:
        try:
            # validate_python on the decoded JSON, as FastAPI does: the same rules and errors.
            body = _activity.validate_python(document)
        except ValidationError as exc:
            problems += _invalid("body", _problems(exc))
    if problems or body is None:
        return Answer.json(422, {"error": "ValidationError", "detail": problems})
    return await _record_one(container, found, session_id, body.to_input())


HOT_ROUTES = [
    HotRoute("POST", "/sessions/{session_id}/activity", _record_hot, max_body=MAX_ACTIVITY_BYTES)
]
"""Served by `hot.HotLane` before FastAPI's router; the route below documents the operation
and is what FastAPI itself would run."""


@router.post(
    "/sessions/{session_id}/activity",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordedOut,
)
async def record_activity(
    session_id: UUID, body: ActivityIn, found: IdentityDep, container: ContainerDep
) -> Response:
    answer = await _record_one(container, found, WorkSessionId(session_id), body.to_input())
    return Response(answer.body, answer.status, media_type="application/json")


@router.post("/activity/batch", status_code=status.HTTP_201_CREATED)
async def record_batch(body: BatchIn, found: IdentityDep, container: ContainerDep) -> BatchOut:
    parsed: list[ActivityInput | None] = []
    problems: dict[int, str] = {}
    for index, raw in enumerate(body.events):
        try:
            parsed.append(_activity.validate_python(raw).to_input())
        except ValidationError as exc:
            first = exc.errors()[0]
            problems[index] = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            parsed.append(None)
    valid = [p for p in parsed if p is not None]
    session, results = await activity.record(
        found.principal,
        found.device_id,
        WorkSessionId(body.sessionId),
        valid,
        deps=container.session_deps,
    )
    outcomes = iter(results)
    out: list[EventResultOut] = []
    for index, item in enumerate(parsed):
        if item is None:
            out.append(
                EventResultOut(
                    index=index,
                    status="rejected",
                    reason="ValidationError",
                    message=problems[index],
                )
            )
            continue
        result = next(outcomes)
        out.append(
            EventResultOut(
                index=index,
                status=result.status.value,
                event_id=None if result.activity is None else result.activity.event_id,
                reason=None if result.error is None else type(result.error).__name__,
                message=None if result.error is None else str(result.error.detail),
            )
        )
    return BatchOut(
        session=SessionOut.of(session),
        processedCount=sum(r.status is Status.ACCEPTED for r in results),
        results=out,
    )
