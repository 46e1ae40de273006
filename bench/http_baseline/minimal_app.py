"""The baseline for `GET /me`: the smallest FastAPI app that does WorkPulse's JWT check.

One route. It reads `Authorization: Bearer <token>`, verifies it with PyJWT exactly as
`workpulse.adapters.tokens.JwtCodec` does on a cache miss (HS256, the same secret, issuer and
required claims, `typ == "access"`, expiry), and answers a small JSON object. No cache, no
database, no middleware, no logging: what any authenticated FastAPI endpoint costs at least.

Run by `bench/http_baseline/run.py` as one uvicorn process:

    BENCH_JWT_SECRET=... python -m uvicorn --app-dir bench/http_baseline minimal_app:app
"""

from __future__ import annotations

import os
import time

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SECRET = os.environ["BENCH_JWT_SECRET"]
ISSUER = "workpulse"
REQUIRED = ["sub", "org", "role", "sid", "exp", "iat", "typ"]

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "InvalidToken", "detail": None},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


@app.get("/me", response_model=None)
async def me(request: Request) -> dict[str, str] | JSONResponse:
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
    return {"id": claims["sub"], "organization_id": claims["org"], "role": claims["role"]}
