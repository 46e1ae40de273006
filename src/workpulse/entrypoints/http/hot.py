"""The agents' busiest routes served as plain ASGI, before FastAPI's router.

A desktop agent pings every few seconds and posts activity as it happens: these few routes carry
most of the traffic. FastAPI spends ~120 µs of CPU on a request before its handler runs (route
matching over every route, dependency resolution, the `Request` object; measured in
`docs/benchmarks.md`), as much as the whole of what `POST /usage/track` then does. This
middleware sits innermost of the app's middleware (request context, access log, metrics and
CORS still apply), matches the hot routes by method and path template, reads the body and
answers from the same handler that the FastAPI route calls. Everything else goes on to FastAPI,
whose routes of the same operations document them in the OpenAPI schema.

A handler raises domain errors as anywhere else; they are answered here with the same status
and body as FastAPI's handlers give (`errors.describe`). Any other exception goes on up to
Starlette's error middleware: a logged 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import structlog
from starlette.datastructures import State
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from workpulse.domain.errors import WorkPulseError
from workpulse.entrypoints.http import errors

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer, already encoded."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, status: int, document: object, headers: Mapping[str, str] | None = None
    ) -> Answer:
        return cls(status, orjson.dumps(document), headers or {})


@dataclass(frozen=True, slots=True)
class Call:
    """What a hot handler gets: the app's state (the container, the metrics), the path
    parameters, the `Authorization` header and the body."""

    state: State
    params: Mapping[str, str]
    authorization: str | None
    body: bytes


Handler = Callable[[Call], Awaitable[Answer]]


class TooLarge(Exception):
    """The body is over the route's limit: 413."""


@dataclass(frozen=True, slots=True)
class HotRoute:
    method: str
    path: str  # the template, e.g. "/sessions/{session_id}/activity"; also the metrics label
    handler: Handler
    max_body: int
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex, _, _ = compile_path(self.path)
        object.__setattr__(self, "pattern", regex)


def bearer(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def error_answer(exc: WorkPulseError) -> Answer:
    status, name, detail, headers = errors.describe(exc)
    return Answer.json(status, {"error": name, "detail": detail}, headers)


class HotLane:
    def __init__(self, app: ASGIApp, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.exact = {(r.method, r.path): r for r in routes if "{" not in r.path}
        self.templated = tuple(r for r in routes if "{" in r.path)

    def _match(self, method: str, path: str) -> tuple[HotRoute, dict[str, str]] | None:
        route = self.exact.get((method, path))
        if route is not None:
            return route, {}
        for route in self.templated:
            if route.method == method and (found := route.pattern.match(path)):
                return route, found.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self._match(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, params = matched
        scope["route"] = route  # for the request context's route label
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            body = await _read_body(receive, route.max_body)
        except TooLarge:
            answer = Answer.json(
                413,
                {"error": "PayloadTooLarge", "detail": f"the body is over {route.max_body} bytes"},
            )
        except _Disconnected:
            # Nothing was accepted and no one will read the answer; answered (and counted) as
            # FastAPI's handler does, a 400 rather than a server error.
            log.info("client disconnected", path=scope["path"])
            answer = Answer.json(
                400, {"error": "ClientDisconnected", "detail": "the client closed the connection"}
            )
        else:
            try:
                answer = await route.handler(Call(scope["app"].state, params, authorization, body))
            except WorkPulseError as exc:
                answer = error_answer(exc)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        headers.extend((k.lower().encode(), v.encode()) for k, v in answer.headers.items())
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
