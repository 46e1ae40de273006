"""The naive baseline for `POST /usage/track`: the smallest FastAPI app that does what a first
version of the endpoint would do for one ping.

It checks the bearer token with PyJWT on every request (HS256, the same secret, issuer and
required claims as `workpulse.adapters.tokens.JwtCodec`), validates the body with a pydantic
model of one ping (the same fields and strict types as WorkPulse's `PingIn`), and appends it to
a Redis Stream with one `XADD` (redis-py asyncio, hiredis when installed), then answers 202.
No idempotency, no backlog bound, no per-item results, no middleware, no logging.

Run by `bench/ingest/run.py` as one uvicorn process:

    BENCH_JWT_SECRET=... BENCH_REDIS_URL=redis://127.0.0.1:6379/0 BENCH_STREAM=... \
        python -m uvicorn --app-dir bench/ingest naive_app:app
"""

from __future__ import annotations

import os
import time

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, StrictBool, StrictStr
from redis.asyncio import Redis

SECRET = os.environ["BENCH_JWT_SECRET"]
STREAM = os.environ["BENCH_STREAM"]
ISSUER = "workpulse"
REQUIRED = ["sub", "org", "role", "sid", "exp", "iat", "typ"]

redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


class Ping(BaseModel):
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


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "InvalidToken", "detail": None},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


@app.post("/usage/track", status_code=202, response_model=None)
async def track(ping: Ping, request: Request) -> dict[str, int] | JSONResponse:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _unauthorized()
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"verify_exp": False, "require": REQUIRED},
        )
    except jwt.PyJWTError:
        return _unauthorized()
    if claims["typ"] != "access" or claims["exp"] <= time.time():
        return _unauthorized()
    await redis.xadd(
        STREAM,
        {"org": claims["org"], "user": claims["sub"], "p": ping.model_dump_json()},
    )
    return {"accepted": 1}
