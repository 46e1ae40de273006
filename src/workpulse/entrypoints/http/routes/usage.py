"""Ping ingestion (`POST /usage/track`) and the merged intervals (`GET /usage/intervals`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel

from workpulse.bootstrap import Container
from workpulse.domain.errors import InvalidInput
from workpulse.domain.ids import UserId
from workpulse.domain.pings import Rejected, Rejection
from workpulse.entrypoints.http.deps import ContainerDep, IdentityDep, identify
from workpulse.entrypoints.http.errors import documented
from workpulse.entrypoints.http.hot import Answer, Call, HotRoute, TooLarge, bearer
from workpulse.entrypoints.http.metrics import IngestMetrics
from workpulse.services import ingest, presence
from workpulse.services.authentication import Identity
from workpulse.services.ports import Backlogged

router = APIRouter(prefix="/usage", tags=["usage"])

MAX_PINGS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_RANGE = timedelta(days=31)


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


AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class PingIn(msgspec.Struct):
    """A point sample at `timestamp` (default: now), or a span `start_time` to `end_time`.

    msgspec checks these strict types (no coercion: a number is not a string) in ~1 µs, pydantic
    in ~5; the request body's schema in the OpenAPI document is made from this class too."""

    app_name: str
    url: str | None = None
    domain: str | None = None
    title: str | None = None
    timestamp: AwareTime | None = None
    start_time: AwareTime | None = None
    end_time: AwareTime | None = None
    idle: bool = False
    device_id: str | None = None
    event_id: str | None = None
    tz: str | None = None


def _body_schema() -> dict[str, Any]:
    (_, components) = msgspec.json.schema_components([PingIn])
    ping = components["PingIn"]
    batch = {
        "title": "PingBatchIn",
        "type": "object",
        "properties": {"pings": {"type": "array", "items": ping, "maxItems": MAX_PINGS}},
        "required": ["pings"],
    }
    return {"oneOf": [ping, batch]}


_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_list = msgspec.json.Decoder(list[msgspec.Raw])
_ping = msgspec.json.Decoder(PingIn)


def _item(raw: bytes | msgspec.Raw) -> ingest.PingInput | Rejected:
    try:
        p = _ping.decode(raw)
    except msgspec.ValidationError as exc:
        # "Expected `str`, got `int` - at `$.app_name`" → "app_name: Expected `str`, got `int`"
        message, _, where = str(exc).partition(" - at `$.")
        return Rejected(Rejection.INVALID, f"{where.rstrip('`') or 'ping'}: {message}")
    return ingest.PingInput(
        p.app_name, p.url, p.domain, p.title, p.timestamp, p.start_time, p.end_time,
        p.idle, p.device_id, p.event_id, p.tz,
    )  # fmt: skip


def _items(body: bytes) -> list[ingest.PingInput | Rejected]:
    try:
        fields = _object.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidInput('send one ping object or {"pings": [...]}') from exc
    except msgspec.DecodeError as exc:
        raise InvalidInput("the body is not valid JSON") from exc
    if "pings" not in fields:
        return [_item(body)]
    try:
        pings = _list.decode(fields["pings"])
    except msgspec.ValidationError as exc:
        raise InvalidInput("pings must be a list") from exc
    if len(pings) > MAX_PINGS:
        raise TooLarge(f"at most {MAX_PINGS} pings per request")
    return [_item(raw) for raw in pings]


async def track_for(
    container: Container, metrics: IngestMetrics, found: Identity, body: bytes
) -> Answer:
    """Check and queue one request's pings: 202 with a result per item (413, 422, 503)."""
    try:
        items = _items(body)
    except TooLarge as exc:
        return Answer.json(413, {"error": "PayloadTooLarge", "detail": str(exc)})
    caller = ingest.Caller(
        principal=found.principal, device_id=found.device_id, device_ids=found.device_ids
    )
    counter = metrics.pings
    try:
        results = await ingest.track(
            caller,
            items,
            settings_of=container.settings_of,
            queue=container.ping_queue,
            clock=container.clock,
        )
    except Backlogged as exc:
        counter.labels("backlogged", "").inc(len(items))
        return Answer.json(
            503,
            {"error": "Backlogged", "detail": "the ingestion queue is full; retry later"},
            {"Retry-After": str(exc.retry_after)},
        )
    tally = {ingest.Outcome.ACCEPTED: 0, ingest.Outcome.DUPLICATE: 0, ingest.Outcome.REJECTED: 0}
    out = []
    for i, r in enumerate(results):
        tally[r.outcome] += 1
        counter.labels(r.outcome.value, r.reason or "").inc()
        out.append(
            {
                "index": i,
                "status": r.outcome.value,
                "event_id": r.event_id,
                "reason": r.reason,
                "message": r.message,
            }
        )
    # Presence: the agent is alive; only an in-memory note here, written in the background.
    presence.agent_pinged(
        found.principal, items, results, sightings=container.sightings, clock=container.clock
    )
    return Answer.json(
        202,
        {
            "accepted": tally[ingest.Outcome.ACCEPTED],
            "duplicates": tally[ingest.Outcome.DUPLICATE],
            "rejected": tally[ingest.Outcome.REJECTED],
            "results": out,
        },
    )


async def _track_hot(call: Call) -> Answer:
    container: Container = call.state.container
    found = await identify(container, bearer(call.authorization))
    return await track_for(container, call.state.ingest_metrics, found, call.body)


HOT_ROUTES = [HotRoute("POST", "/usage/track", _track_hot, max_body=MAX_BODY_BYTES)]
"""Served by `hot.HotLane` before FastAPI's router; the route below documents the operation
and is what FastAPI itself would run."""


@router.post(
    "/track",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TrackOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _body_schema()}},
        }
    },
    responses=documented(401, 403, 413, 422, 429, 503),
)
async def track(request: Request, found: IdentityDep, container: ContainerDep) -> Response:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        answer = Answer.json(
            413, {"error": "PayloadTooLarge", "detail": f"the body is over {MAX_BODY_BYTES} bytes"}
        )
    else:
        answer = await track_for(container, request.app.state.ingest_metrics, found, body)
    return Response(answer.body, answer.status, dict(answer.headers), "application/json")


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
