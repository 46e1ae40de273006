"""One table from domain error families to HTTP statuses, and one body shape for every error:
`{"error": "<Name>", "detail": ...}`, including unknown routes, 405, validation and 500."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from workpulse.domain import errors
from workpulse.entrypoints.http.middleware import REQUEST_ID_KEY

log = structlog.get_logger(__name__)

STATUS_OF: list[tuple[type[errors.WorkPulseError], int]] = [
    (errors.NotFound, 404),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.Conflict, 409),
    (errors.InvalidInput, 422),
    (errors.RateLimited, 429),
    (errors.Unavailable, 503),
]


class ErrorBody(BaseModel):
    error: str
    detail: Any  # required, though it may be null


RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": ErrorBody,
            "description": HTTPStatus(code).phrase,
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in codes
    }


# What an authenticated route can answer besides its success.
AUTHENTICATED = documented(401, 403, 404, 422, 429, 503)
PUBLIC = documented(401, 403, 404, 409, 422, 429, 503)
WRITES = documented(401, 403, 404, 409, 422, 429, 503)


def error_response(
    status: int, name: str, detail: object, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": name, "detail": detail}, status_code=status, headers=headers)


def _status_of(exc: errors.WorkPulseError) -> int:
    for family, status in STATUS_OF:
        if isinstance(exc, family):
            return status
    return 400


def describe(exc: errors.WorkPulseError) -> tuple[int, str, object, dict[str, str]]:
    """A domain error's status, error name, detail and headers (also used by the hot lane)."""
    status = _status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited | errors.Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return status, type(exc).__name__, exc.detail, headers


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.WorkPulseError)
    status, name, detail, headers = describe(exc)
    return error_response(status, name, detail, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is not echoed back: it may be a password.
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return error_response(422, "ValidationError", detail)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's 400 is a body it cannot decode (e.g. not UTF-8): invalid input, so 422.
        return error_response(
            422,
            "ValidationError",
            [{"loc": ["body"], "msg": str(exc.detail), "type": "body_invalid"}],
        )
    name = HTTPStatus(exc.status_code).phrase.title().replace(" ", "").replace("-", "")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, name, exc.detail, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this handler outside every middleware, so the request id is added here.
    request_id = request.scope.get(REQUEST_ID_KEY)
    log.error("unhandled error", path=request.url.path, request_id=request_id, exc_info=exc)
    return error_response(
        500,
        "InternalError",
        "an unexpected error occurred; it was logged",
        {"X-Request-Id": request_id} if request_id else None,
    )


async def _client_gone(request: Request, _exc: Exception) -> JSONResponse:
    # The client closed the connection while its body was being read: nothing was accepted and
    # no one will read an answer. Not a server error.
    log.info("client disconnected", path=request.url.path)
    return error_response(400, "ClientDisconnected", "the client closed the connection")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.WorkPulseError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
