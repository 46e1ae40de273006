"""`Annotated` dependency aliases: the container, and the caller's identity from the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from workpulse.bootstrap import Container
from workpulse.domain.errors import Unauthenticated
from workpulse.domain.roles import Principal
from workpulse.services import authentication


async def _container(request: Request) -> Container:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop that cost more
    # than the rest of an authenticated request (docs/benchmarks.md).
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(_container)]


class _BearerIdentity(HTTPBearer):
    """The caller's identity from `Authorization: Bearer <access token>`.

    One dependency rather than one that depends on `HTTPBearer` and on the container: FastAPI
    resolves each node of the dependency tree at several µs per request. Being an `HTTPBearer`,
    it is still the bearer security scheme in the OpenAPI document."""

    async def __call__(self, request: Request) -> authentication.Identity:  # type: ignore[override]
        credentials = await super().__call__(request)
        return await identify(
            request.app.state.container, None if credentials is None else credentials.credentials
        )


async def identify(container: Container, token: str | None) -> authentication.Identity:
    """The caller of an access token (FastAPI's dependency and the hot lane both use this)."""
    if not token:
        raise Unauthenticated("send the access token as 'Authorization: Bearer <token>'")
    return await authentication.authenticate(
        token,
        uow_factory=container.database,
        tokens=container.tokens,
        cache=container.session_cache,
        clock=container.clock,
    )


_identity = _BearerIdentity(
    auto_error=False, scheme_name="HTTPBearer", description="Access token from /auth/login"
)


IdentityDep = Annotated[authentication.Identity, Depends(_identity)]


async def _principal(found: IdentityDep) -> Principal:
    return found.principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
