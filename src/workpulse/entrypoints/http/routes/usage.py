"""Ping ingestion (`POST /usage/track`) and the merged intervals (`GET /usage/intervals`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, StrictBool, StrictStr, TypeAdapter, ValidationError

from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import UserId
from workpulse.domain.pings import Rejected, Rejection
from workpulse.entrypoints.http.deps import ContainerDep, IdentityDep
from workpulse.entrypoints.http.errors import documented, error_response
from workpulse.services import ingest, presence
from workpulse.services.ports import Backlogged

router = APIRouter(prefix="/usage", tags=["usage"])

MAX_PINGS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_RANGE = timedelta(days=31)


class PingIn(BaseModel):
    """A point sample at `timestamp` (default: now), or a span `start_time` to `end_time`."""

    app_name: StrictStr
    url: StrictStr | None = None
    domain: StrictStr | None = None
    title: StrictStr | None = None
    timestamp: AwareDatetime | None = None
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    idle: StrictBool = False
    device_id: StrictStr | None = None
    event_id: StrictStr | None = None
    tz: StrictStr | None = None


class PingBatchIn(BaseModel):
    pings: list[PingIn]


class ItemOut(BaseModel):
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    reason: str | None = None
    message: str | None = None


class TrackOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemOut]


class IntervalOut(BaseModel):
    user_id: UUID
    device_id: str
    app_name: str
    domain: str | None
    idle: bool
    start_time: datetime
    end_time: datetime


_ping = TypeAdapter(PingIn)
_BODY_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/PingIn"},
        {"$ref": "#/components/schemas/PingBatchIn"},
    ]
}


def _item(raw: object) -> ingest.PingInput | Rejected:
    try:
        parsed = _ping.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "ping"
        return Rejected(Rejection.INVALID, f"{where}: {first['msg']}")
    return ingest.PingInput(**parsed.model_dump())


def _items(body: bytes) -> list[object]:
    if len(body) > MAX_BODY_BYTES:
        raise _TooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the body is not valid JSON") from exc
    if isinstance(document, dict) and "pings" in document:
        pings = document["pings"]
        if not isinstance(pings, list):
            raise InvalidInput("pings must be a list")
        if len(pings) > MAX_PINGS:
            raise _TooLarge(f"at most {MAX_PINGS} pings per request")
        return pings
    if isinstance(document, dict):
        return [document]
    raise InvalidInput('send one ping object or {"pings": [...]}')


class _TooLarge(Exception):
    pass


@router.post(
    "/track",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}
    },
    responses=documented(401, 403, 413, 422, 429, 503),
)
async def track(request: Request, found: IdentityDep, container: ContainerDep) -> Any:
    body = await request.body()
    try:
        raw_items = _items(body)
    except _TooLarge as exc:
        return error_response(413, "PayloadTooLarge", str(exc))
    caller = ingest.Caller(
        principal=found.principal, device_id=found.device_id, device_ids=found.device_ids
    )
    items = [_item(raw) for raw in raw_items]
    try:
        results = await ingest.track(
            caller,
            items,
            settings_of=container.settings_of,
            queue=container.ping_queue,
            clock=container.clock,
        )
    except Backlogged as exc:
        request.app.state.ingest_metrics.pings.labels("backlogged", "").inc(len(raw_items))
        return error_response(
            503,
            "Backlogged",
            "the ingestion queue is full; retry later",
            {"Retry-After": str(exc.retry_after)},
        )
    counter = request.app.state.ingest_metrics.pings
    for r in results:
        counter.labels(r.outcome.value, r.reason or "").inc()
    # Presence: the agent is alive; only an in-memory note here, written in the background.
    presence.agent_pinged(
        found.principal, items, results, sightings=container.sightings, clock=container.clock
    )
    out = TrackOut(
        accepted=sum(r.outcome is ingest.Outcome.ACCEPTED for r in results),
        duplicates=sum(r.outcome is ingest.Outcome.DUPLICATE for r in results),
        rejected=sum(r.outcome is ingest.Outcome.REJECTED for r in results),
        results=[
            ItemOut(
                index=i,
                status=r.outcome.value,
                event_id=r.event_id,
                reason=r.reason,
                message=r.message,
            )
            for i, r in enumerate(results)
        ],
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.get("/intervals", responses=documented(401, 404, 422, 503))
async def list_intervals(
    found: IdentityDep,
    container: ContainerDep,
    start: Annotated[AwareDatetime, Query(alias="from")],
    end: Annotated[AwareDatetime, Query(alias="to")],
    user_id: UUID | None = None,
) -> list[IntervalOut]:
    if end <= start:
        raise InvalidInput("to must be after from")
    if end - start > MAX_RANGE:
        raise InvalidInput(f"a range covers at most {MAX_RANGE.days} days")
    rows = await ingest.intervals(
        found.principal,
        user_id=None if user_id is None else UserId(user_id),
        start=start,
        end=end,
        uow_factory=container.database,
    )
    return [
        IntervalOut(
            user_id=owner,
            device_id=i.device_id,
            app_name=i.app_name,
            domain=i.domain,
            idle=i.idle,
            start_time=i.start,
            end_time=i.end,
        )
        for owner, i in rows
    ]
