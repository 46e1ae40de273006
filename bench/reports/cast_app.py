"""The non-sargable baseline for `GET /reports/apps`: a minimal FastAPI app running the seed's
query, which casts the column (`(start_time AT TIME ZONE tz)::date = day`) and so cannot use a
range on the (user_id, start_time) index: PostgreSQL reads every interval the user has, in
every partition, and filters them.

The same JWT check as bench/http_baseline/minimal_app.py (PyJWT HS256, WorkPulse's secret,
issuer and required claims, `typ == "access"`, expiry), asyncpg with a pool of 20 connections
(WorkPulse's default pool is 10 + 10 overflow), no middleware, no logging. Like the seed, it
lets the caller read anyone's report through `user_id` (no tenant check) and never splits an
interval at midnight. Idle time is left out, as WorkPulse reports it apart.

Run by `bench/reports/run.py` as one uvicorn process:

    BENCH_JWT_SECRET=... BENCH_DATABASE_URL=postgresql://... \
        python -m uvicorn --app-dir bench/reports cast_app:app
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import jwt
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

ISSUER = "workpulse"
REQUIRED = ["sub", "org", "role", "sid", "exp", "iat", "typ"]

# The seed's report query.
QUERY = """
SELECT app_name, sum(extract(epoch FROM end_time - start_time))::bigint AS seconds
FROM app_usage
WHERE user_id = $1 AND NOT idle AND (start_time AT TIME ZONE $2)::date = $3
GROUP BY app_name
ORDER BY seconds DESC, app_name
"""

pool: asyncpg.Pool | None = None
secret = ""


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool, secret
    secret = os.environ["BENCH_JWT_SECRET"]
    pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"], min_size=1, max_size=20)
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "InvalidToken", "detail": None},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


@app.get("/reports/apps", response_model=None)
async def apps(
    request: Request,
    day: Annotated[date, Query(alias="date")],
    tz: str = "UTC",
    user_id: UUID | None = None,
) -> dict[str, Any] | JSONResponse:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _unauthorized()
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"verify_exp": False, "require": REQUIRED},
        )
    except jwt.PyJWTError:
        return _unauthorized()
    if claims["typ"] != "access" or claims["exp"] <= time.time():
        return _unauthorized()
    subject = user_id or UUID(claims["sub"])
    assert pool is not None
    rows = await pool.fetch(QUERY, subject, tz, day)
    return {
        "date": day.isoformat(),
        "tz": tz,
        "user_id": str(subject),
        "total_seconds": sum(row["seconds"] for row in rows),
        "apps": [{"app_name": row["app_name"], "seconds": row["seconds"]} for row in rows],
    }
