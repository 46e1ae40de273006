"""Request context as plain ASGI middleware (cheaper than BaseHTTPMiddleware): a request id in
and out (`X-Request-Id`), bound to every log line of the request, plus metrics and an access log."""

from __future__ import annotations

import os
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workpulse.entrypoints.http.metrics import HttpMetrics

log = structlog.get_logger("workpulse.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_KEY = "workpulse.request_id"


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/users/{user_id}`), never the raw path: metric labels
    stay bounded. FastAPI names the route in the scope only for API routes; the others (the
    OpenAPI document, the docs) are found by their endpoint."""
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        routes = getattr(scope.get("router"), "routes", ())
        route = next((r for r in routes if getattr(r, "endpoint", None) is scope["endpoint"]), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: dict[str, HttpMetrics]) -> None:
        self.app = app
        # Filled by the lifespan, before the first request; read per request so that no
        # wrapper layer is needed to build this middleware late.
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if _SAFE_ID.match(candidate) else ""
                break
        # 128 random bits as 32 hex digits, as uuid4().hex gave, without building a UUID.
        request_id = request_id or os.urandom(16).hex()
        # For the 500 handler, which runs outside this middleware (see errors.py). Not in
        # scope["state"]: some servers share that dict between requests.
        scope[REQUEST_ID_KEY] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            metrics = self.metrics.get("http")
            if metrics is not None:
                metrics.observe(scope["method"], template, status, elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=template,
                status=status,
                ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
