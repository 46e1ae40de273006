"""`Annotated` dependency aliases: the container, and the caller's identity from the token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workpulse.bootstrap import Container
from workpulse.domain.errors import Unauthenticated
from workpulse.domain.roles import Principal
from workpulse.services import authentication

_bearer = HTTPBearer(auto_error=False, description="Access token from /auth/login")


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(_container)]


async def _identity(
    request: Request,
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> authentication.Identity:
    if credentials is None:
        raise Unauthenticated("send the access token as 'Authorization: Bearer <token>'")
    found = await authentication.authenticate(
        credentials.credentials,
        uow_factory=container.database,
        tokens=container.tokens,
        cache=container.session_cache,
        clock=container.clock,
    )
    request.state.user_id = str(found.principal.user_id)
    return found


IdentityDep = Annotated[authentication.Identity, Depends(_identity)]


async def _principal(found: IdentityDep) -> Principal:
    return found.principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
