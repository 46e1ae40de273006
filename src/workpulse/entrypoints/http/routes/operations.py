"""Health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workpulse.entrypoints.http.deps import ContainerDep
from workpulse.entrypoints.http.errors import RETRY_AFTER
from workpulse.entrypoints.http.schemas import ComponentHealth, HealthOut
from workpulse.services import health

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=HealthOut,
    response_model_exclude_none=True,  # the contract's {"status": "up"}, no "message": null
    responses={
        503: {
            "model": HealthOut,
            "description": "A dependency is down",
            "headers": {"Retry-After": RETRY_AFTER},
        }
    },
)
async def get_health(container: ContainerDep) -> Any:
    statuses = await health.check(container.probes)
    info = {s.name: ComponentHealth(status="up") for s in statuses if s.up}
    error = {
        s.name: ComponentHealth(status="down", message=s.message) for s in statuses if not s.up
    }
    body = HealthOut(status="error" if error else "ok", info=info, error=error)
    if error:
        return JSONResponse(
            body.model_dump(mode="json", exclude_none=True),
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return body


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def get_metrics(container: ContainerDep) -> Response:
    return Response(generate_latest(container.metrics), media_type=CONTENT_TYPE_LATEST)
