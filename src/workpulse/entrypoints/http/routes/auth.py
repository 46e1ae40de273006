"""Registration, login, refresh rotation, logout and device sessions."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Cookie, Header, Request, Response, status

from workpulse.domain.errors import InvalidToken
from workpulse.domain.ids import DeviceSessionId, OrganizationId
from workpulse.entrypoints.http.deps import ContainerDep, CurrentPrincipal
from workpulse.entrypoints.http.errors import PUBLIC
from workpulse.entrypoints.http.schemas import (
    NO_NUL,
    DeviceSessionOut,
    LoginIn,
    RefreshIn,
    RegisterIn,
    TokensOut,
    UserOut,
)
from workpulse.services import identity

router = APIRouter(prefix="/auth", tags=["auth"], responses=PUBLIC)

REFRESH_COOKIE = "workpulse_refresh"
DeviceIdHeader = Annotated[str | None, Header(alias="X-Device-Id", max_length=128, pattern=NO_NUL)]


def _device(request: Request, device_id: str | None, device_name: str | None) -> identity.Device:
    return identity.Device(
        device_id=device_id or None,
        device_name=device_name,
        address=request.client.host if request.client else None,
    )


def _answer(pair: identity.TokenPair, request: Request, response: Response) -> TokensOut:
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=int(request.app.state.container.auth_policy.refresh_ttl.total_seconds()),
        path="/auth",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )
    return TokensOut(
        user=UserOut.of(pair.user),
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: RegisterIn,
    request: Request,
    response: Response,
    container: ContainerDep,
    device_id: DeviceIdHeader = None,
) -> TokensOut:
    pair = await identity.register(
        identity.Registration(
            email=body.email,
            password=body.password,
            name=body.name,
            organization_id=None
            if body.organization_id is None
            else OrganizationId(body.organization_id),
            organization_name=body.organization_name,
            role=body.role,
            invite_token=body.invite_token,
        ),
        _device(request, device_id, None),
        uow_factory=container.database,
        hasher=container.hasher,
        tokens=container.tokens,
        clock=container.clock,
        policy=container.auth_policy,
    )
    return _answer(pair, request, response)


@router.post("/login")
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    container: ContainerDep,
    device_id: DeviceIdHeader = None,
) -> TokensOut:
    pair = await identity.login(
        body.email,
        body.password,
        None if body.organization_id is None else OrganizationId(body.organization_id),
        _device(request, device_id, body.device_name),
        uow_factory=container.database,
        hasher=container.hasher,
        tokens=container.tokens,
        throttle=container.throttle,
        clock=container.clock,
        policy=container.auth_policy,
        dummy_hash=container.dummy_hash,
    )
    return _answer(pair, request, response)


@router.post("/refresh")
async def refresh(
    request: Request,
    response: Response,
    container: ContainerDep,
    body: RefreshIn | None = None,
    cookie: Annotated[str | None, Cookie(alias=REFRESH_COOKIE)] = None,
) -> TokensOut:
    token = (body.refresh_token if body else None) or cookie
    if not token:
        raise InvalidToken("give refresh_token in the body or the refresh cookie")
    pair = await identity.refresh(
        token,
        uow_factory=container.database,
        tokens=container.tokens,
        cache=container.session_cache,
        clock=container.clock,
        policy=container.auth_policy,
    )
    return _answer(pair, request, response)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentPrincipal, container: ContainerDep, response: Response) -> None:
    await identity.logout(
        principal,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    response.delete_cookie(REFRESH_COOKIE, path="/auth")


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(
    principal: CurrentPrincipal, container: ContainerDep, response: Response
) -> None:
    await identity.logout_all(
        principal,
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
    response.delete_cookie(REFRESH_COOKIE, path="/auth")


@router.get("/sessions")
async def list_sessions(
    principal: CurrentPrincipal, container: ContainerDep
) -> list[DeviceSessionOut]:
    sessions = await identity.list_device_sessions(principal, uow_factory=container.database)
    return [DeviceSessionOut.of(s, principal.device_session_id) for s in sessions]


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: UUID, principal: CurrentPrincipal, container: ContainerDep
) -> None:
    await identity.revoke_device_session(
        principal,
        DeviceSessionId(session_id),
        uow_factory=container.database,
        cache=container.session_cache,
        clock=container.clock,
    )
