"""``/auth``: register, log in, rotate the refresh token, log out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import BaseRoute

from synthia_rt.auth import sessions
from synthia_rt.auth.principal import Principal
from synthia_rt.errors import ErrorCode
from synthia_rt.rest.deps import client_ip, runtime_of
from synthia_rt.rest.routing import api
from synthia_rt.rest.schemas import LoginIn, LogoutIn, RefreshIn, RegisterIn, SessionOut, UserOut
from synthia_rt.store.users import UserRecord

TAGS = ("auth",)


def user_out(user: UserRecord) -> UserOut:
    return UserOut.model_validate(user)


def session_out(session: sessions.Login) -> SessionOut:
    return SessionOut(
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        expires_in=session.expires_in,
        user=user_out(session.user),
    )


@api(
    "POST",
    "/auth/register",
    "Create an account and log in",
    body=RegisterIn,
    response=SessionOut,
    status=201,
    auth=False,
    errors=[ErrorCode.CONFLICT, ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE],
    tags=TAGS,
    description="Limited per client address (`REGISTER_RATE`, default 20 per hour; 429 with "
    "`Retry-After`), whether or not the email is taken.",
)
async def register(request: Request, body: RegisterIn) -> SessionOut:
    session = await sessions.register(
        runtime_of(request), body.email, body.password, body.display_name, client_ip(request)
    )
    return session_out(session)


@api(
    "POST",
    "/auth/login",
    "Log in with email and password",
    body=LoginIn,
    response=SessionOut,
    auth=False,
    errors=[
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.ACCOUNT_BLOCKED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.UNAVAILABLE,
    ],
    tags=TAGS,
    description="Unknown email and wrong password get the same answer. "
    "Attempts are limited per (account, client address), per client address, and per account "
    "from unknown addresses (429 with `Retry-After`).",
)
async def login(request: Request, body: LoginIn) -> SessionOut:
    session = await sessions.login(
        runtime_of(request), body.email, body.password, client_ip(request)
    )
    return session_out(session)


@api(
    "POST",
    "/auth/refresh",
    "Exchange a refresh token for a new pair",
    body=RefreshIn,
    response=SessionOut,
    auth=False,
    errors=[
        ErrorCode.TOKEN_EXPIRED,
        ErrorCode.TOKEN_INVALID,
        ErrorCode.TOKEN_REUSED,
        ErrorCode.ACCOUNT_BLOCKED,
        ErrorCode.RATE_LIMITED,
    ],
    tags=TAGS,
    description="The presented refresh token is rotated: use the new one next time. Presenting an "
    "already-rotated token revokes the whole login (`token_reused`): every access token of it "
    "stops working. Limited per login (`REFRESH_RATE`, default 10 per minute).",
)
async def refresh(request: Request, body: RefreshIn) -> SessionOut:
    session = await sessions.refresh(runtime_of(request), body.refresh_token, client_ip(request))
    return session_out(session)


@api(
    "POST",
    "/auth/logout",
    "End this login",
    body=LogoutIn,
    status=204,
    tags=TAGS,
    description="Ends this login: every access token issued for it (not only the presented one), "
    "its refresh tokens (and the login of `refresh_token` if given); closes the user's sockets "
    "with 4010.",
)
async def logout(request: Request, principal: Principal, body: LogoutIn) -> None:
    await sessions.logout(runtime_of(request), principal, body.refresh_token)


routes: list[BaseRoute] = [register, login, refresh, logout]
